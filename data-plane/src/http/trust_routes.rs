//! The trust endpoints at the HTTP edge: registry keys, attestations and the trusted
//! publishing token exchange (the work is in `crate::trust`).

use pingora::proxy::Session;

use nproxy_core::names::{OrgSlug, PackageName};
use nproxy_core::route::{self, Route};
use nproxy_core::upstream_route::Forwarded;
use nproxy_proto::v1::TokenScope;

use crate::config::OrgMode;
use crate::error::NpmError;
use crate::http::respond::{send_json, send_small, Handled};
use crate::http::server::App;
use crate::http::tenant::{self, RequestFacts};
use crate::org::OrgView;

impl App {
    /// npm posts the token exchange to the registry host's root, whatever the registry
    /// URL's path: `Some(package)` for such a request (the org is then not in the path).
    pub(crate) fn root_oidc_exchange(path: &str) -> Option<PackageName> {
        // Every request passes here: only this prefix is worth routing.
        if !path.starts_with("/-/npm/v1/oidc/") {
            return None;
        }
        match route::route(path) {
            Ok(Route::Forwarded(Forwarded::OidcExchange(name))) => Some(name),
            _ => None,
        }
    }

    /// The org a root-level exchange is for, when the address says it (host mode, single
    /// mode); in path mode the control plane finds it from the package's scope.
    pub(crate) fn root_exchange_org(&self, facts: &RequestFacts<'_>) -> Option<OrgSlug> {
        match self.settings.org_mode {
            OrgMode::Path => None,
            _ => tenant::resolve(&self.settings, facts).ok().map(|t| t.org),
        }
    }

    pub(crate) async fn oidc_exchange(
        &self,
        session: &mut Session,
        org: Option<&OrgSlug>,
        name: &PackageName,
        host: &str,
    ) -> Handled {
        if session.req_header().method != http::Method::POST {
            return Err(NpmError::MethodNotAllowed.into());
        }
        let authorization =
            crate::http::respond::header(session, "authorization").map(str::to_string);
        let answer = crate::trust::oidc::exchange(
            self.cp.as_ref(),
            org.map(OrgSlug::as_str),
            name,
            authorization.as_deref(),
            host,
        )
        .await?;
        send_json(session, answer.status, &answer.body).await
    }

    /// `GET /-/npm/v1/keys`: the upstream's keys and the org's.
    pub(crate) async fn registry_keys(
        &self,
        session: &mut Session,
        view: &OrgView,
        authorization: Option<&str>,
    ) -> Handled {
        self.authorize_public(view, authorization)?;
        let upstream = self.trust.keys.upstream_keys().await;
        let own: &[serde_json::Value] = match view {
            OrgView::Configured(cfg) => &cfg.npm_keys,
            OrgView::Open => &[],
        };
        let body = crate::trust::keys::merged(&upstream, own);
        send_json(session, 200, &body).await
    }

    /// `GET /-/npm/v1/attestations/<name>@<version>`, internal or public.
    pub(crate) async fn attestations(
        &self,
        session: &mut Session,
        view: &OrgView,
        authorization: Option<&str>,
        name: &PackageName,
        version: &semver::Version,
    ) -> Handled {
        let body = match view {
            OrgView::Configured(cfg) if cfg.is_internal(name) => {
                let grant = view.authorize_internal(authorization, TokenScope::Proxy, name)?;
                self.orgs.record_use(&cfg.org_id, &grant.token_id);
                self.trust
                    .attestations
                    .internal(&cfg.org_id, name, version)
                    .await?
            }
            _ => {
                self.authorize_public(view, authorization)?;
                self.refuse_blocked(view, name, &version.to_string())
                    .await?;
                let public = self.public_for(view, name).await?;
                (self.trust.attestations)
                    .public(&public.packuments, name, version)
                    .await?
            }
        };
        send_small(session, 200, "application/json", body).await
    }
}
