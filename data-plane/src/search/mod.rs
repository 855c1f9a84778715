//! `GET /-/v1/search`: the org's internal packages the request's token may read, ranked,
//! then the upstream's results for public packages with the org's rules applied, in npm's
//! response shape, paged by `from`/`size` over that merged list.
//!
//! - Who sees internal packages: `OrgView::authorize_internal`'s rules. A token of the org
//!   sees them all; a package-limited token only its own (and nothing public, as for any
//!   public read); anonymous clients none. A bad token is refused (401) as everywhere.
//! - What goes upstream: the text as the client wrote it and npm's weights, never a
//!   credential; a text naming one of the org's internal scopes (`@acme/…`, `scope:acme`),
//!   or a scope it routes to another registry, is not sent at all. Upstream results in the
//!   org's internal scopes, names the org routes to another registry (what it installs
//!   under that name is not this package), and packages the org's list rules refuse whole
//!   (`rules::refuses_whole_package`) are not listed.
//! - The upstream failing costs only its results: the internal ones are answered, with an
//!   `npm-notice` header npm prints. Without an upstream (air-gapped) there are only those.
//! - `index` holds the internal packages (kept current on every data plane), `upstream`
//!   the upstream's results (`nproxy_core::search` the pure parts).

pub mod index;
pub mod upstream;

use std::sync::Arc;

use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::Value;

use crate::error::NpmError;
use crate::http::respond::{insert, response, send_body, send_header, Handled};
use crate::internal::store::InternalStore;
use crate::org::error::AuthError;
use crate::org::{OrgConfig, OrgConfigs, OrgView, Principal};
use crate::public::upstream::Upstream;
use index::InternalIndex;
use nproxy_core::names::PackageName;
use nproxy_core::rules::refuses_whole_package;
use nproxy_core::search::{self as core, Params};
use nproxy_proto::v1::TokenScope;
use upstream::UpstreamSearch;

/// Which internal packages a request may see.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Internal {
    None,
    All,
    /// A package-limited token: each package is checked.
    Limited,
}

pub struct SearchApi {
    index: Arc<InternalIndex>,
    upstream: UpstreamSearch,
    orgs: Arc<OrgConfigs>,
}

impl SearchApi {
    /// The search API, following every internal document written through this data plane
    /// (told to the others over the config source) and through the others.
    pub fn new(
        internal: Arc<InternalStore>,
        upstream: Arc<Upstream>,
        orgs: Arc<OrgConfigs>,
    ) -> SearchApi {
        let index = Arc::new(InternalIndex::new(internal.clone()));
        let (ix, announcer) = (Arc::downgrade(&index), Arc::downgrade(&orgs));
        internal.on_write(Box::new(move |org_id, name| {
            if let Some(ix) = ix.upgrade() {
                ix.changed(org_id, name.as_str());
            }
            if let Some(orgs) = announcer.upgrade() {
                let (org_id, name) = (org_id.to_string(), name.to_string());
                tokio::spawn(async move { orgs.announce_internal_write(&org_id, &name).await });
            }
        }));
        let ix = Arc::downgrade(&index);
        orgs.on_internal_write(Box::new(move |change| {
            if let Some(ix) = ix.upgrade() {
                match change {
                    Some((org_id, name)) => ix.changed(org_id, name),
                    None => ix.everything_changed(),
                }
            }
        }));
        SearchApi {
            index,
            upstream: UpstreamSearch::new(upstream),
            orgs,
        }
    }

    pub(crate) async fn answer(
        &self,
        session: &mut Session,
        view: &OrgView,
        authorization: Option<&str>,
    ) -> Handled {
        let cfg = match view {
            OrgView::Configured(c) => Some(c.clone()),
            OrgView::Open => None,
        };
        let (internal, public) = match view.authorize(authorization, TokenScope::Proxy) {
            Ok(Principal::Token(grant)) => {
                if let Some(c) = &cfg {
                    self.orgs.record_use(&c.org_id, &grant.token_id);
                }
                (Internal::All, true)
            }
            Ok(Principal::Anonymous) => (Internal::None, true),
            Err(AuthError::OnlyForPackages { .. }) => (Internal::Limited, false),
            Err(e) => return Err(e.into()),
        };
        let req = session.req_header();
        let p = core::params(req.uri.query()).map_err(|e| NpmError::BadRequest(e.to_string()))?;
        let headers = req.headers.clone();
        let (found, mut objects) = match (&cfg, internal) {
            (Some(c), Internal::All | Internal::Limited) => {
                let entries = self.index.entries(&c.org_id).await?;
                let may_read = Reader {
                    cfg: c.clone(),
                    view: view.clone(),
                    authorization: authorization.map(str::to_string),
                    limited: internal == Internal::Limited,
                };
                internal_page(entries, may_read, p.clone()).await?
            }
            _ => (0, Vec::new()),
        };
        let split = core::split(p.from, p.size, found);
        let mut total = found;
        let mut notice = None;
        let names_internal = cfg
            .as_ref()
            .is_some_and(|c| core::names_internal_scope(&p.text, &p.query, &private_scopes(c)));
        // An air-gapped registry has no upstream: its own packages are all there is.
        if public && !names_internal && self.upstream.configured() {
            let listed = |n: &PackageName| cfg.as_ref().is_none_or(|c| publicly_listed(c, n));
            let page = self
                .upstream
                .page(
                    &p,
                    &headers,
                    split.upstream_start,
                    split.upstream_count,
                    &listed,
                )
                .await;
            match page {
                Ok(up) => {
                    total += up.total;
                    objects.extend(up.objects);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "upstream search failed; answering with internal results only");
                    notice = Some(
                        "public search results are unavailable right now (the upstream registry \
                         did not answer); only this registry's own packages are listed",
                    );
                }
            }
        }
        let body = core::answer(objects, total, &nproxy_core::internal::iso_now());
        send(session, &body, notice).await
    }
}

/// The scopes whose names must not reach the upstream in a search text: the org's
/// internal scopes and the scopes of its routes to other registries.
fn private_scopes(cfg: &OrgConfig) -> Vec<String> {
    let routed = cfg
        .upstream_routes
        .iter()
        .filter_map(|r| r.pattern.scope().map(str::to_string));
    cfg.internal_scopes.iter().cloned().chain(routed).collect()
}

/// Whether an upstream result is listed for this org: not in its internal scopes (those
/// names are the org's own), not routed to another registry, not refused whole by its
/// list rules.
fn publicly_listed(cfg: &OrgConfig, name: &PackageName) -> bool {
    !cfg.is_internal(name)
        && cfg.route_for(name).is_none()
        && !refuses_whole_package(&cfg.rules, name, cfg.exceptions.contains_key(name.as_str()))
}

/// Decides, per internal package, whether the request may read it.
struct Reader {
    cfg: Arc<OrgConfig>,
    view: OrgView,
    authorization: Option<String>,
    limited: bool,
}

impl Reader {
    fn may_read(&self, name: &str) -> bool {
        let Ok(n) = PackageName::parse(name) else {
            return false;
        };
        // A scope the org no longer calls internal is served publicly: not listed here.
        self.cfg.is_internal(&n)
            && (!self.limited
                || self
                    .view
                    .authorize_internal(self.authorization.as_deref(), TokenScope::Proxy, &n)
                    .is_ok())
    }
}

/// Matches and ranks the org's entries (off the async threads: a big org's index is tens of
/// thousands of entries) and renders the page's part of them: (matches, page objects).
async fn internal_page(
    entries: Arc<index::Entries>,
    reader: Reader,
    p: Params,
) -> Result<(usize, Vec<Value>), NpmError> {
    tokio::task::spawn_blocking(move || {
        let visible = entries
            .by_name
            .values()
            .filter(|e| reader.may_read(&e.name))
            .map(|e| e.as_ref());
        let hits = core::rank(&p.query, visible);
        let split = core::split(p.from, p.size, hits.len());
        let page = hits[split.internal].iter().map(|h| h.object()).collect();
        (hits.len(), page)
    })
    .await
    .map_err(|e| NpmError::Internal(format!("search task: {e}")))
}

async fn send(session: &mut Session, body: &Value, notice: Option<&str>) -> Handled {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut resp = response(200)?;
    insert(&mut resp, "content-type", "application/json")?;
    insert(&mut resp, "content-length", bytes.len())?;
    // The answer depends on who asks.
    insert(&mut resp, "cache-control", "private, no-store")?;
    insert(&mut resp, "vary", "Authorization")?;
    if let Some(n) = notice {
        insert(&mut resp, "npm-notice", n)?;
    }
    let head = session.req_header().method == http::Method::HEAD;
    send_header(session, resp).await?;
    send_body(session, if head { Bytes::new() } else { bytes }, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use nproxy_proto::v1::{OrgConfigSnapshot, TokenEntry, UpstreamRouteEntry};
    use sha2::{Digest, Sha256};

    fn token(secret: &str, packages: &[&str]) -> TokenEntry {
        TokenEntry {
            token_id: secret.into(),
            name: secret.into(),
            sha256: Sha256::digest(secret.as_bytes()).to_vec(),
            scopes: vec![TokenScope::Publish as i32],
            expires_at_ms: None,
            packages: packages.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// What a request may see: a package-limited token its own packages only and nothing
    /// public; a token of the org everything; anonymous no internal package; a bad token
    /// is refused.
    #[test]
    fn who_sees_which_internal_packages() {
        let cfg = Arc::new(OrgConfig::from_snapshot(OrgConfigSnapshot {
            org_id: "o1".into(),
            slug: "acme".into(),
            internal_scopes: vec!["@acme".into()],
            public_reads: true,
            tokens: vec![token("nproxy_ci", &["@acme/app"]), token("nproxy_all", &[])],
            upstream_routes: vec![UpstreamRouteEntry {
                id: "r1".into(),
                pattern: "@vendor".into(),
                url: "https://vendor.example/npm/".into(),
                has_credential: true,
                version: 1,
            }],
            ..Default::default()
        }));
        let view = OrgView::Configured(cfg.clone());
        let reader = |auth: &str, limited| Reader {
            cfg: cfg.clone(),
            view: view.clone(),
            authorization: Some(auth.to_string()),
            limited,
        };
        let ci = reader("Bearer nproxy_ci", true);
        assert!(ci.may_read("@acme/app") && !ci.may_read("@acme/other"));
        let all = reader("Bearer nproxy_all", false);
        assert!(all.may_read("@acme/app") && all.may_read("@acme/other"));
        assert!(
            !all.may_read("@beta/app"),
            "not an internal scope: not listed"
        );
        assert!(matches!(
            view.authorize(Some("Bearer nproxy_ci"), TokenScope::Proxy),
            Err(AuthError::OnlyForPackages { .. })
        ));
        assert!(matches!(
            view.authorize(None, TokenScope::Proxy),
            Ok(Principal::Anonymous)
        ));
        assert!(view
            .authorize(Some("Bearer nproxy_bad"), TokenScope::Proxy)
            .is_err());
        // The list rules refuse whole packages only in block mode, without a range and
        // without an exception.
        assert!(publicly_listed(
            &cfg,
            &PackageName::parse("left-pad").unwrap()
        ));
        assert!(!publicly_listed(
            &cfg,
            &PackageName::parse("@acme/x").unwrap()
        ));
        let vendor = PackageName::parse("@vendor/x").unwrap();
        assert!(!publicly_listed(&cfg, &vendor), "routed elsewhere");
        assert_eq!(private_scopes(&cfg), vec!["@acme", "@vendor"]);
    }
}
