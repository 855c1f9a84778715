//! `TrustedPublishers`: admins say which CI identities (an OIDC issuer and required claims)
//! may publish which internal packages; data planes exchange a CI job's id token for a
//! short-lived publish token (`exchange.rs`).

use std::collections::BTreeMap;

use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::trusted_publishers_server::TrustedPublishers;
use nproxy_proto::validate::{self, FieldError};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{exchange, Api, Change};
use crate::auth::{require_admin, require_any};
use crate::error::CpError;
use crate::store::{new_id, now_ms, Db, OrgRow, TrustedPublisherRow};

/// Trusted publishers one org may have: every exchange for its scopes reads them all.
const MAX_PER_ORG: usize = 100;
const MAX_CLAIMS: usize = 16;

fn publisher_pb(p: &TrustedPublisherRow) -> pb::TrustedPublisher {
    pb::TrustedPublisher {
        id: p.id.clone(),
        org_id: p.org_id.clone(),
        issuer: p.issuer.clone(),
        package: p.package.clone(),
        claims: p.claims.clone().into_iter().collect(),
        created_at_ms: p.created_at_ms,
    }
}

/// The npm scope (`@acme`) of a scoped name or of a scope pattern (`@acme/*`).
pub(super) fn scope_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('@')?;
    let (scope, _) = rest.split_once('/')?;
    Some(&name[..scope.len() + 1])
}

/// `@scope/name` or `@scope/*`, in one of the org's internal scopes.
fn check_package(org: &OrgRow, package: &str) -> Result<(), FieldError> {
    match package.strip_suffix("/*") {
        Some(scope) => {
            validate::npm_scope("package", scope)?;
        }
        None => {
            validate::package_name("package", package)?;
        }
    }
    let scope = scope_of(package).ok_or_else(|| {
        FieldError::new(
            "package",
            format!("{package:?} must be @scope/name or @scope/* (internal packages are scoped)"),
        )
    })?;
    if !org.internal_scopes.iter().any(|s| s == scope) {
        return Err(FieldError::new(
            "package",
            format!(
                "{scope} is not an internal scope of org {} (internal scopes: {})",
                org.slug,
                if org.internal_scopes.is_empty() {
                    "none".to_string()
                } else {
                    org.internal_scopes.join(", ")
                }
            ),
        ));
    }
    Ok(())
}

/// 1 to 16 claims: names `[a-z0-9_]{1,64}`, values 1 to 256 characters without control
/// characters.
fn check_claims(
    claims: &std::collections::HashMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldError> {
    if claims.is_empty() || claims.len() > MAX_CLAIMS {
        return Err(FieldError::new(
            "claims",
            format!("1 to {MAX_CLAIMS} claims are required (e.g. repository=acme/app)"),
        ));
    }
    for (name, value) in claims {
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(FieldError::new(
                "claims",
                format!(
                    "claim name {:?} must be 1-64 lowercase letters, digits or underscores",
                    crate::oidc::shown(name, 64)
                ),
            ));
        }
        let len = value.chars().count();
        if !(1..=256).contains(&len) || value.chars().any(char::is_control) {
            return Err(FieldError::new(
                "claims",
                format!(
                    "claim {name}: the value must be 1-256 characters, without control characters"
                ),
            ));
        }
    }
    // Claims such as `environment` or `ref` alone match every repository the issuer serves:
    // one must say whose workflow it is, with a value that names it.
    let names_who = claims
        .iter()
        .any(|(name, value)| IDENTITY_CLAIMS.contains(&name.as_str()) && !value.contains('*'));
    if !names_who {
        return Err(FieldError::new(
            "claims",
            format!(
                "one claim must name the repository or project exactly, without `*`: one of {}",
                IDENTITY_CLAIMS.join(", ")
            ),
        ));
    }
    Ok(claims.clone().into_iter().collect())
}

/// Claims that identify whose workflow a token is for (GitHub Actions, GitLab CI).
const IDENTITY_CLAIMS: &[&str] = &[
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "job_workflow_ref",
    "workflow_ref",
    "project_path",
    "project_id",
    "namespace_path",
    "namespace_id",
];

#[tonic::async_trait]
impl TrustedPublishers for Api {
    async fn add_trusted_publisher(
        &self,
        req: Request<pb::AddTrustedPublisherRequest>,
    ) -> Result<Response<pb::TrustedPublisher>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        crate::oidc::check_issuer(&r.issuer).map_err(|m| FieldError::new("issuer", m))?;
        let claims = check_claims(&r.claims)?;
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        check_package(&org, &r.package)?;
        let row = TrustedPublisherRow {
            id: new_id(),
            org_id: org.id.clone(),
            issuer: r.issuer,
            package: r.package,
            claims,
            created_at_ms: now_ms(),
        };
        st.mutate(&org, &actor, async |conn| {
            let existing = Db::trusted_publishers(conn, &org.id).await?;
            if let Some(same) = existing.iter().find(|p| {
                (&p.issuer, &p.package, &p.claims) == (&row.issuer, &row.package, &row.claims)
            }) {
                return Err(CpError::AlreadyExists(format!(
                    "trusted publisher {} with this issuer, package and claims",
                    same.id
                )));
            }
            if existing.len() >= MAX_PER_ORG {
                return Err(CpError::FailedPrecondition(format!(
                    "org {} already has {MAX_PER_ORG} trusted publishers; remove one first",
                    org.slug
                )));
            }
            Db::insert_trusted_publisher(conn, &row).await?;
            Ok(Change::new(
                (),
                events::TRUSTED_PUBLISHER_ADDED,
                json!({"id": row.id, "issuer": row.issuer, "package": row.package, "claims": row.claims}),
            ))
        })
        .await?;
        Ok(Response::new(publisher_pb(&row)))
    }

    async fn list_trusted_publishers(
        &self,
        req: Request<pb::ListTrustedPublishersRequest>,
    ) -> Result<Response<pb::ListTrustedPublishersResponse>, Status> {
        require_admin(&req)?;
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        let list = st.db.trusted_publishers_of(&org.id).await?;
        Ok(Response::new(pb::ListTrustedPublishersResponse {
            publishers: list.iter().map(publisher_pb).collect(),
        }))
    }

    async fn remove_trusted_publisher(
        &self,
        req: Request<pb::RemoveTrustedPublisherRequest>,
    ) -> Result<Response<pb::RemoveTrustedPublisherResponse>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let removed = st
            .mutate(&org, &actor, async |conn| {
                match Db::delete_trusted_publisher(conn, &org.id, &r.id).await? {
                    // Not (or no longer) there: nothing recorded.
                    None => Ok(Change::none(false)),
                    Some(p) => Ok(Change::new(
                        true,
                        events::TRUSTED_PUBLISHER_REMOVED,
                        json!({"id": p.id, "issuer": p.issuer, "package": p.package, "claims": p.claims}),
                    )),
                }
            })
            .await?;
        Ok(Response::new(pb::RemoveTrustedPublisherResponse {
            removed,
        }))
    }

    async fn exchange_oidc_token(
        &self,
        req: Request<pb::ExchangeOidcTokenRequest>,
    ) -> Result<Response<pb::ExchangeOidcTokenResponse>, Status> {
        // The data plane's credential (admins hold no narrower one to refuse it from).
        require_any(&req)?;
        let r = req.into_inner();
        Ok(Response::new(exchange::exchange(&self.0, r).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(scopes: &[&str]) -> OrgRow {
        OrgRow {
            id: "o".into(),
            slug: "acme".into(),
            display_name: String::new(),
            created_at_ms: 0,
            config_version: 1,
            internal_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            public_reads: true,
        }
    }

    #[test]
    fn packages_are_names_or_scopes_within_the_orgs_internal_scopes() {
        let acme = org(&["@acme", "@tools"]);
        for ok in ["@acme/app", "@acme/*", "@tools/x.y"] {
            assert_eq!(check_package(&acme, ok), Ok(()), "{ok}");
        }
        for bad in [
            "@other/app",
            "@other/*",
            "lodash",
            "*",
            "@acme",
            "@acme/",
            "@acme/a*",
            "@acme/**",
            "@acme/App",
            "@acmex/app",
        ] {
            let e = check_package(&acme, bad).expect_err(bad);
            assert_eq!(e.field, "package");
        }
        let e = check_package(&org(&[]), "@acme/app").expect_err("no scopes");
        assert!(e.message.contains("internal scopes: none"), "{e}");
        assert_eq!(scope_of("@acme/app"), Some("@acme"));
        assert_eq!(scope_of("@acme/*"), Some("@acme"));
        assert_eq!(scope_of("acme"), None);
    }

    #[test]
    fn claims_are_bounded_and_plain() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let ok = check_claims(&map(&[("repository", "acme/app"), ("ref", "refs/tags/v*")]))
            .expect("valid");
        assert_eq!(ok.len(), 2);
        let many: Vec<(String, String)> = (0..17)
            .map(|i| (format!("c{i}"), "v".to_string()))
            .collect();
        let long = "v".repeat(257);
        for bad in [
            map(&[]),
            many.into_iter().collect(),
            map(&[("Repository", "x")]),
            map(&[("repo-name", "x")]),
            map(&[("", "x")]),
            map(&[(&"n".repeat(65), "x")]),
            map(&[("repository", "")]),
            map(&[("repository", &long)]),
            map(&[("repository", "a\nb")]),
        ] {
            assert_eq!(check_claims(&bad).expect_err("invalid").field, "claims");
        }
        check_claims(&map(&[("repository", &"é".repeat(256))])).expect("256 characters");
        // Whose workflow it is must be named, exactly.
        for wide in [
            map(&[("environment", "release")]),
            map(&[("ref", "refs/heads/main")]),
            map(&[("repository", "acme*")]),
            map(&[("repository_owner", "*")]),
        ] {
            assert_eq!(check_claims(&wide).expect_err("too wide").field, "claims");
        }
        check_claims(&map(&[
            ("repository_owner", "acme"),
            ("ref", "refs/tags/v*"),
        ]))
        .expect("an owner and a ref pattern");
    }
}
