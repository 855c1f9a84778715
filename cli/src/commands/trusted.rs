//! `nproxyctl trust`: trusted publishers, the CI identities (an OIDC issuer and the claims
//! its id tokens must carry) that may publish an org's internal packages without a stored
//! token.

use clap::Subcommand;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::trusted_publishers_client::TrustedPublishersClient;
use serde_json::json;

use super::Conn;
use crate::output::{print_json, time, Format, Table};

#[derive(Subcommand)]
pub enum TrustCmd {
    /// Trusts a CI identity to publish a package (or a whole internal scope).
    Add {
        #[arg(long)]
        org: String,
        /// The issuer, exactly as its tokens' `iss` (e.g. GitHub Actions'
        /// https://token.actions.githubusercontent.com, or your GitLab's URL).
        #[arg(long)]
        issuer: String,
        /// `@scope/name`, or `@scope/*` for every package of the scope.
        #[arg(long)]
        package: String,
        /// A claim the id token must carry, `name=value` (a value ending in `*` matches by
        /// prefix), e.g. `repository=acme/app` or `ref=refs/tags/v*`. Repeatable; at least one.
        #[arg(long = "claim", required = true, value_parser = parse_claim)]
        claims: Vec<(String, String)>,
    },
    List {
        #[arg(long)]
        org: String,
    },
    /// Removes a trusted publisher; tokens it already minted expire on their own.
    Remove {
        #[arg(long)]
        org: String,
        id: String,
    },
}

fn parse_claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: use name=value, e.g. repository=acme/app")),
    }
}

fn claims_text(p: &pb::TrustedPublisher) -> String {
    let mut claims: Vec<_> = p.claims.iter().collect();
    claims.sort();
    claims
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn publisher_json(p: &pb::TrustedPublisher) -> serde_json::Value {
    let claims: std::collections::BTreeMap<_, _> = p.claims.iter().collect();
    json!({
        "id": p.id, "org_id": p.org_id, "issuer": p.issuer, "package": p.package,
        "claims": claims, "created_at_ms": p.created_at_ms,
    })
}

pub(super) async fn run(c: TrustCmd, conn: &Conn, f: Format) -> anyhow::Result<()> {
    let mut client =
        TrustedPublishersClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
    match c {
        TrustCmd::Add {
            org,
            issuer,
            package,
            claims,
        } => {
            let p = client
                .add_trusted_publisher(pb::AddTrustedPublisherRequest {
                    org,
                    issuer,
                    package,
                    claims: claims.into_iter().collect(),
                })
                .await?
                .into_inner();
            match f {
                Format::Json => print_json(&publisher_json(&p)),
                Format::Table => println!(
                    "trusted publisher {} added: {} from {} when {}",
                    p.id,
                    p.package,
                    p.issuer,
                    claims_text(&p)
                ),
            }
        }
        TrustCmd::List { org } => {
            let list = client
                .list_trusted_publishers(pb::ListTrustedPublishersRequest { org })
                .await?
                .into_inner()
                .publishers;
            match f {
                Format::Json => {
                    print_json(&json!(list.iter().map(publisher_json).collect::<Vec<_>>()))
                }
                Format::Table => {
                    let mut tb = Table::new(&["ID", "PACKAGE", "ISSUER", "CLAIMS", "CREATED"]);
                    for p in &list {
                        tb.row(vec![
                            p.id.clone(),
                            p.package.clone(),
                            p.issuer.clone(),
                            claims_text(p),
                            time(p.created_at_ms),
                        ]);
                    }
                    print!("{}", tb.render());
                }
            }
        }
        TrustCmd::Remove { org, id } => {
            let removed = client
                .remove_trusted_publisher(pb::RemoveTrustedPublisherRequest {
                    org: org.clone(),
                    id: id.clone(),
                })
                .await?
                .into_inner()
                .removed;
            match f {
                Format::Json => print_json(&json!({"id": id, "removed": removed})),
                Format::Table if removed => println!("removed trusted publisher {id}"),
                Format::Table => println!("org {org} has no trusted publisher {id}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_name_value_pairs() {
        assert_eq!(
            parse_claim("ref=refs/tags/v*"),
            Ok(("ref".into(), "refs/tags/v*".into()))
        );
        assert_eq!(
            parse_claim("workflow_ref=a/b/.github/workflows/x.yml@refs/heads/main"),
            Ok((
                "workflow_ref".into(),
                "a/b/.github/workflows/x.yml@refs/heads/main".into()
            ))
        );
        assert_eq!(parse_claim("x=a=b"), Ok(("x".into(), "a=b".into())));
        for bad in ["repository", "=x", "x=", ""] {
            assert!(parse_claim(bad).is_err(), "{bad}");
        }
    }
}
