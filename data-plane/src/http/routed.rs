//! Org upstream routes at the HTTP edge: which public pipeline serves a name for this org,
//! and the refusal of everything but installs for routed names (their writes, tags and
//! account calls would otherwise go to the data plane's upstream, which must never hear of
//! them).

use std::sync::Arc;

use nproxy_core::names::PackageName;
use nproxy_core::route::Route;
use nproxy_core::upstream_route::Forwarded;

use crate::error::NpmError;
use crate::http::server::App;
use crate::org::OrgView;
use crate::public::serve::PublicApi;

impl App {
    /// The public API `name` is served through for this org: its upstream route's, else the
    /// data plane's own.
    pub(crate) async fn public_for(
        &self,
        view: &OrgView,
        name: &PackageName,
    ) -> Result<Arc<PublicApi>, NpmError> {
        if let OrgView::Configured(cfg) = view {
            if let Some(route) = cfg.route_for(name) {
                return self.routes.api(&cfg.org_id, route).await;
            }
        }
        Ok(self.public.clone())
    }

    /// Names of an org upstream route are installed from it (packuments, tarballs,
    /// attestations, the explain endpoint); nothing else about them is relayed anywhere.
    /// Whole-tree audits, which would carry internal or routed names upstream, are refused.
    pub(crate) fn refuse_routed(
        &self,
        view: &OrgView,
        route: &Route,
        read_only: bool,
        wants_write: bool,
        authorization: Option<&str>,
    ) -> Result<(), NpmError> {
        let OrgView::Configured(cfg) = view else {
            return Ok(());
        };
        // npm's old whole-tree audits carry every name of the tree, which nproxy forwards
        // as they are: for an org with names of its own (internal or routed), only the bulk
        // audit (which leaves them out) is answered.
        if matches!(
            route,
            Route::Forwarded(Forwarded::AuditQuick | Forwarded::AuditFull)
        ) && !(cfg.internal_scopes.is_empty() && cfg.upstream_routes.is_empty())
        {
            // Credentials first: a bad one is a 401 here as on every other route.
            self.authorize_public(view, authorization)?;
            return Err(NpmError::NotFound(
                "this registry answers npm audit at /-/npm/v1/security/advisories/bulk only \
                 (the whole-tree audit would send this org's own package names upstream)"
                    .into(),
            ));
        }
        if cfg.upstream_routes.is_empty() {
            return Ok(());
        }
        let (name, install) = match route {
            Route::Packument(n) => (n, read_only && !wants_write),
            Route::Tarball(n, _) | Route::Explain(n) => (n, read_only),
            Route::Forwarded(Forwarded::Attestations(n, _)) => (n, read_only),
            Route::PackumentRev(n, _)
            | Route::TarballRev(n, _, _)
            | Route::DistTags(n)
            | Route::DistTag(n, _) => (n, false),
            Route::Forwarded(u) => match u.package() {
                Some(n) => (n, false),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        match cfg.route_for(name) {
            Some(_) if !install => {
                // Credentials first; the answer names no registry (who may ask is not known).
                view.check_presented(authorization)?;
                Err(NpmError::Forbidden(format!(
                    "{name} comes from another registry for this org; nproxy installs it from \
                     there and relays nothing else about it (no writes, tags or account calls)"
                )))
            }
            _ => Ok(()),
        }
    }
}
