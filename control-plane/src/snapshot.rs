//! Builds an org's config snapshot (what data planes see) from the database.

use nproxy_proto::v1::{OrgConfigSnapshot, PublicKey, TokenEntry, UpstreamRouteEntry};
use nproxy_proto::SNAPSHOT_SCHEMA_VERSION;
use prost::Message;
use sqlx::AnyConnection;

use crate::error::CpResult;
use crate::store::{now_ms, Db, OrgRow};

pub async fn build(conn: &mut AnyConnection, org: &OrgRow) -> CpResult<OrgConfigSnapshot> {
    let now = now_ms();
    let tokens = Db::live_tokens(&mut *conn, &org.id)
        .await?
        .into_iter()
        // Expired tokens are refused by data planes anyway; leaving them out keeps it small.
        .filter(|t| t.expires_at_ms.is_none_or(|e| e > now))
        .map(|t| TokenEntry {
            scopes: t.scope_values(),
            token_id: t.id,
            name: t.name,
            sha256: t.sha256,
            expires_at_ms: t.expires_at_ms,
            packages: t.packages,
        })
        .collect();
    let rules = Db::rules(&mut *conn, &org.id)
        .await?
        .and_then(|b| nproxy_proto::v1::Rules::decode(b.as_slice()).ok());
    let exceptions = Db::exceptions(&mut *conn, &org.id)
        .await?
        .into_iter()
        .map(
            |(id, package, version, reason, created_at_ms)| nproxy_proto::v1::RuleException {
                id,
                package,
                version,
                reason,
                created_at_ms,
            },
        )
        .collect();
    // Never a credential: only whether a route has one (data planes ask for it apart).
    let upstream_routes = Db::upstream_routes(&mut *conn, &org.id)
        .await?
        .into_iter()
        .map(|r| UpstreamRouteEntry {
            has_credential: r.credential_sealed.is_some(),
            id: r.id,
            pattern: r.pattern,
            url: r.url,
            version: r.version,
        })
        .collect();
    let signing_keys = Db::keys(conn, &org.id)
        .await?
        .into_iter()
        .map(|k| PublicKey {
            active: k.retired_at_ms.is_none(),
            key_id: k.key_id,
            public_key: k.public_key,
            algorithm: k.algorithm,
            created_at_ms: k.created_at_ms,
            retired_at_ms: k.retired_at_ms,
        })
        .collect();
    Ok(OrgConfigSnapshot {
        schema_version: SNAPSHOT_SCHEMA_VERSION,
        org_id: org.id.clone(),
        slug: org.slug.clone(),
        version: u64::try_from(org.config_version).unwrap_or(0),
        internal_scopes: org.internal_scopes.clone(),
        public_reads: org.public_reads,
        tokens,
        signing_keys,
        generated_at_ms: now,
        rules,
        exceptions,
        upstream_routes,
    })
}

pub fn encode(s: &OrgConfigSnapshot) -> Vec<u8> {
    s.encode_to_vec()
}
