//! `npm audit` (bulk advisories): the org's imported advisories for the packages asked
//! about, merged with the upstream's answer when it has one. Bounded: the body as sent and
//! decoded, the number of packages (counted while parsing), and the names sent upstream,
//! which never include the org's internal ones.

use bytes::Bytes;
use pingora::proxy::Session;

use crate::error::NpmError;
use crate::http::respond::{header, read_body, send_json, Handled};
use crate::org::{OrgConfigs, OrgView};
use crate::public::upstream::Upstream;
use nproxy_core::names::PackageName;

/// An `npm audit` request as sent (gzip) and decoded. A 3,000-package monorepo sends
/// about 100 KB of JSON.
const AUDIT_MAX_BODY: usize = 2 * 1024 * 1024;
const AUDIT_MAX_JSON: usize = 8 * 1024 * 1024;

/// `npm audit`: imported advisories for the packages asked about, merged with the
/// upstream's answer when it has one. Bounded: the body as sent and decoded, the number
/// of packages (counted while parsing), and the names sent upstream, which never
/// include the org's internal ones.
pub(crate) async fn bulk(
    session: &mut Session,
    view: &OrgView,
    path: &str,
    orgs: &OrgConfigs,
    upstream: &Upstream,
) -> Handled {
    let raw = read_body(session, AUDIT_MAX_BODY).await?;
    let encoding = header(session, "content-encoding").map(str::to_string);
    let json = nproxy_core::publish::decode_body_limited(&raw, encoding.as_deref(), AUDIT_MAX_JSON)
        .map_err(|e| NpmError::PayloadTooLarge(e.0))?;
    drop(raw);
    let request = nproxy_core::audit_bulk::parse_request(&json, nproxy_core::audit_bulk::MAX_NAMES)
        .map_err(|e| {
            NpmError::BadRequest(format!(
                "the audit request is not {{\"pkg\": [versions]}} within bounds: {e}"
            ))
        })?;
    drop(json);
    let internal = |p: &str| match (view, PackageName::parse(p)) {
        // Internal names never leave nproxy; names of an org upstream route never reach
        // this upstream.
        (OrgView::Configured(cfg), Ok(n)) => cfg.is_internal(&n) || cfg.route_for(&n).is_some(),
        _ => false,
    };
    let public: nproxy_core::audit_bulk::BulkRequest = request
        .into_iter()
        .filter(|(p, _)| PackageName::parse(p).is_ok() && !internal(p))
        .collect();
    let mut ours = serde_json::Map::new();
    let names: Vec<(&String, &Vec<String>)> = public.iter().collect();
    // A bounded number of advisory lookups at a time.
    for batch in names.chunks(32) {
        let lookups = batch.iter().map(|(p, versions)| async move {
            let adv = orgs.advisories(p).await?;
            Ok::<_, NpmError>((
                p.to_string(),
                nproxy_core::audit_bulk::entries(p, versions, &adv.list),
            ))
        });
        for r in futures::future::join_all(lookups).await {
            let (p, entries) = r?;
            if !entries.is_empty() {
                ours.insert(p, serde_json::Value::Array(entries));
            }
        }
    }
    let body = Bytes::from(serde_json::to_vec(&public).unwrap_or_default());
    let headers = session.req_header().headers.clone();
    let upstream = match upstream
        .forward(http::Method::POST, path, &headers, body.into(), None, None)
        .await
    {
        Ok(r) if r.status().is_success() => r
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()),
        Ok(r) => {
            tracing::debug!(
                status = r.status().as_u16(),
                "upstream has no bulk advisories"
            );
            None
        }
        // An air-gapped registry: the org's own advisories are the whole answer.
        Err(crate::public::upstream::UpstreamError::NotConfigured(_)) => None,
        Err(e) => {
            tracing::warn!(error = %e, "upstream bulk advisories failed; answering with ours only");
            None
        }
    };
    let merged = nproxy_core::audit_bulk::merge(ours, upstream);
    send_json(session, 200, &merged).await
}
