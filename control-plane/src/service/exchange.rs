//! `ExchangeOidcToken`: a CI job's id token for a publish token good for one package, for
//! `trusted_publishing_token_ttl_secs`. The org is the one the request names, or every org
//! whose internal scopes hold the package's scope; its trusted publishers of the package
//! are the candidates; the token must verify against one of their issuers and carry one's
//! claims. The minted token is recorded as `token.created` with the workflow's identity.

use std::collections::BTreeSet;

use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::TokenScope;
use nproxy_proto::validate::{self, FieldError};
use serde_json::{json, Map, Value};

use super::trusted::scope_of;
use super::{Change, State};
use crate::error::{CpError, CpResult};
use crate::oidc::jwks::JwksError;
use crate::oidc::verify::{self, VerifyError};
use crate::oidc::{claims, shown};
use crate::secrets::{new_api_token, sha256};
use crate::store::{new_id, now_ms, Db, OrgRow, TokenRow, TrustedPublisherRow};

/// Claims that say which workflow ran (GitHub Actions, then GitLab CI), copied into the
/// audit event when the token has them.
const IDENTITY_CLAIMS: &[&str] = &[
    "sub",
    "repository",
    "repository_owner",
    "workflow_ref",
    "job_workflow_ref",
    "environment",
    "ref",
    "sha",
    "run_id",
    "project_path",
    "pipeline_id",
    "ci_config_ref_uri",
];

fn denied(m: String) -> CpError {
    CpError::PermissionDenied(m)
}

/// The orgs the package may belong to.
async fn orgs_for(st: &State, org: &str, name: &str) -> CpResult<Vec<OrgRow>> {
    // Unscoped names are never internal.
    let Some(scope) = scope_of(name) else {
        return Ok(Vec::new());
    };
    if !org.is_empty() {
        let o = st.db.org(org).await?;
        if !o.internal_scopes.iter().any(|s| s == scope) {
            return Err(denied(format!(
                "{scope} is not an internal scope of org {}",
                o.slug
            )));
        }
        return Ok(vec![o]);
    }
    Ok(st
        .db
        .all_live_orgs()
        .await?
        .into_iter()
        .filter(|o| o.internal_scopes.iter().any(|s| s == scope))
        .collect())
}

/// The token's name: `oidc <repository, project path or subject>`, as a display name.
fn token_name(claims: &Map<String, Value>) -> String {
    let who = ["repository", "project_path", "sub"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(Value::as_str))
        .unwrap_or("unknown");
    let clean: String = who.chars().filter(|c| !c.is_control()).take(190).collect();
    validate::display_name("name", &format!("oidc {clean}")).unwrap_or_else(|_| "oidc".into())
}

pub(super) async fn exchange(
    st: &State,
    r: pb::ExchangeOidcTokenRequest,
) -> CpResult<pb::ExchangeOidcTokenResponse> {
    let name = r.package.as_str();
    validate::package_name("package", name)?;
    if r.audience.is_empty() || r.audience.len() > 300 {
        return Err(FieldError::new("audience", "must be 1 to 300 characters").into());
    }
    if r.id_token.is_empty() {
        return Err(CpError::Unauthenticated(
            "an OIDC id token is required".into(),
        ));
    }
    let orgs = orgs_for(st, &r.org, name).await?;
    let mut candidates: Vec<(usize, TrustedPublisherRow)> = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        for p in st.db.trusted_publishers_of(&org.id).await? {
            if p.covers(name) {
                candidates.push((i, p));
            }
        }
    }
    if candidates.is_empty() {
        return Err(denied(format!("no trusted publisher for {name}")));
    }
    let issuers: BTreeSet<&str> = candidates.iter().map(|(_, p)| p.issuer.as_str()).collect();
    let issuers: Vec<&str> = issuers.into_iter().collect();
    let now_secs = now_ms() as f64 / 1000.0;
    let verified = verify::verify(
        &r.id_token,
        &r.audience,
        &issuers,
        now_secs,
        async |iss: &str, kid: &str| {
            st.oidc.jwks.key(iss, kid).await.map_err(|e| match e {
                JwksError::Unavailable(detail) => {
                    tracing::warn!(issuer = iss, error = %detail, "cannot fetch the issuer's keys");
                    VerifyError::KeysUnavailable
                }
                JwksError::UnknownKey(k) => VerifyError::Rejected(format!(
                    "the id token's key {:?} is not among the issuer's keys",
                    shown(&k, 64)
                )),
            })
        },
    )
    .await
    .map_err(|e| {
        tracing::info!(package = name, error = %e, "trusted publishing: id token refused");
        match e {
            VerifyError::Rejected(m) => CpError::Unauthenticated(m),
            VerifyError::KeysUnavailable => CpError::Unavailable(e.to_string()),
        }
    })?;

    let same_issuer: Vec<&(usize, TrustedPublisherRow)> = candidates
        .iter()
        .filter(|(_, p)| p.issuer == verified.issuer)
        .collect();
    let matching: Vec<&(usize, TrustedPublisherRow)> = same_issuer
        .iter()
        .copied()
        .filter(|(_, p)| claims::mismatches(&p.claims, &verified.claims).is_empty())
        .collect();
    let Some(&&(org_index, ref publisher)) = matching.first() else {
        let closest = same_issuer
            .iter()
            .map(|(_, p)| claims::mismatches(&p.claims, &verified.claims))
            .min_by_key(Vec::len)
            .unwrap_or_default();
        let what: Vec<String> = closest
            .iter()
            .map(|c| claims::describe(c, &verified.claims))
            .collect();
        tracing::info!(package = name, issuer = %verified.issuer, mismatched = ?closest, "trusted publishing: claims do not match");
        return Err(denied(format!(
            "the id token's claims do not match a trusted publisher of {name}: {}",
            what.join(", ")
        )));
    };
    let in_orgs: BTreeSet<usize> = matching.iter().map(|(i, _)| *i).collect();
    if in_orgs.len() > 1 {
        let slugs: Vec<&str> = in_orgs.iter().map(|i| orgs[*i].slug.as_str()).collect();
        return Err(denied(format!(
            "ambiguous: the id token matches trusted publishers of {name} in several orgs ({}); publish through one org's URL",
            slugs.join(", ")
        )));
    }
    let org = &orgs[org_index];
    mint(st, org, publisher, name, &verified).await
}

async fn mint(
    st: &State,
    org: &OrgRow,
    publisher: &TrustedPublisherRow,
    name: &str,
    verified: &verify::Verified,
) -> CpResult<pb::ExchangeOidcTokenResponse> {
    let secret = new_api_token();
    let now = now_ms();
    let ttl_ms = i64::try_from(st.oidc.token_ttl.as_millis()).unwrap_or(i64::MAX);
    let row = TokenRow {
        id: new_id(),
        org_id: org.id.clone(),
        name: token_name(&verified.claims),
        sha256: sha256(&secret).to_vec(),
        secret_prefix: secret.chars().take(12).collect(),
        scopes: vec![TokenScope::Publish.label().to_string()],
        created_at_ms: now,
        expires_at_ms: Some(now.saturating_add(ttl_ms)),
        last_used_at_ms: None,
        revoked_at_ms: None,
        packages: vec![name.to_string()],
    };
    let mut details = json!({
        "token_id": row.id, "name": row.name, "scopes": row.scopes,
        "expires_at_ms": row.expires_at_ms, "packages": row.packages,
        "via": "trusted-publishing", "issuer": publisher.issuer, "publisher_id": publisher.id,
    });
    for c in IDENTITY_CLAIMS {
        let v = match verified.claims.get(*c) {
            Some(Value::String(s)) => json!(shown(s, 256)),
            Some(n @ Value::Number(_)) => n.clone(),
            _ => continue,
        };
        details[*c] = v;
    }
    let actor = format!("trusted-publisher:{}", publisher.id);
    st.mutate(org, &actor, async |conn| {
        Db::insert_token(conn, &row).await?;
        Db::bump_config_version(conn, &org.id).await?;
        Ok(Change::new((), events::TOKEN_CREATED, details))
    })
    .await?;
    tracing::info!(org = %org.slug, package = name, token_id = %row.id, publisher = %publisher.id, "trusted publishing: token minted");
    Ok(pb::ExchangeOidcTokenResponse {
        token: secret,
        expires_at_ms: row.expires_at_ms.unwrap_or(now),
        org_slug: org.slug.clone(),
    })
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
