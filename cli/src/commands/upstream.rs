//! `nproxyctl upstream`: per-org upstream routes, names (a scope, an exact name, a prefix)
//! an org fetches from another registry, with that registry's credential. The credential is
//! read from a file or an environment variable, never from the command line (shell history,
//! `ps`), sent once to the control plane, which seals it; nothing shows it again.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::upstream_routes_client::UpstreamRoutesClient;
use serde_json::json;

use super::Conn;
use crate::output::{print_json, time, Format, Table};

#[derive(Subcommand)]
pub enum UpstreamCmd {
    /// Routes names to another registry: they are fetched from it alone (never from the
    /// default upstream, even while it is down), with its credential.
    Add {
        #[arg(long)]
        org: String,
        /// `@vendor` (a whole scope), an exact name (`vendor-sdk`, `@other/sdk`) or a prefix
        /// ending in `*` (`vendor-*`). Never one of the org's internal scopes.
        #[arg(long)]
        pattern: String,
        /// The registry's base URL, may carry a path (https; http only on a loopback host).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        credential: CredentialArgs,
    },
    /// Changes a route's URL or credential (its pattern stays; remove and add to change it).
    Update {
        #[arg(long)]
        org: String,
        id: String,
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        credential: CredentialArgs,
        /// Removes the route's credential.
        #[arg(long, conflicts_with_all = ["credential_file", "credential_env"])]
        no_credential: bool,
    },
    List {
        #[arg(long)]
        org: String,
    },
    /// Removes a route: its names come from the default upstream again.
    Remove {
        #[arg(long)]
        org: String,
        id: String,
    },
}

/// Where the registry's credential comes from (sent as `Authorization: Bearer <credential>`
/// to that registry only). Never a flag's value: it would land in shell history and `ps`.
#[derive(Args)]
pub struct CredentialArgs {
    /// A file holding the credential (its final newline is dropped); `-` reads stdin.
    #[arg(long, value_name = "FILE", conflicts_with = "credential_env")]
    credential_file: Option<PathBuf>,
    /// The name of an environment variable holding the credential.
    #[arg(long, value_name = "VAR")]
    credential_env: Option<String>,
}

impl CredentialArgs {
    fn given(&self) -> bool {
        self.credential_file.is_some() || self.credential_env.is_some()
    }

    /// The credential, if one is given; errors name the file or variable, never the value.
    fn read(&self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<String>> {
        let raw = match (&self.credential_file, &self.credential_env) {
            (Some(path), _) => read_file(path)?,
            (None, Some(var)) => env(var).with_context(|| {
                format!("environment variable {var} is not set (or is not UTF-8)")
            })?,
            (None, None) => return Ok(None),
        };
        let value = raw.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            let from = match (&self.credential_file, &self.credential_env) {
                (Some(p), _) => p.display().to_string(),
                (None, Some(v)) => format!("${v}"),
                (None, None) => String::new(),
            };
            bail!("{from} holds no credential (use --no-credential to remove one)");
        }
        Ok(Some(value.to_string()))
    }
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("cannot read the credential from stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the credential file {}", path.display()))
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn route_json(r: &pb::UpstreamRoute) -> serde_json::Value {
    json!({
        "id": r.id, "org_id": r.org_id, "pattern": r.pattern, "url": r.url,
        "has_credential": r.has_credential, "version": r.version,
        "created_at_ms": r.created_at_ms,
    })
}

fn has(r: &pb::UpstreamRoute) -> &'static str {
    if r.has_credential {
        "set"
    } else {
        "none"
    }
}

fn print_route(r: &pb::UpstreamRoute, done: &str, f: Format) {
    match f {
        Format::Json => print_json(&route_json(r)),
        Format::Table => println!(
            "upstream route {} {done}: {} -> {} (credential: {}, version {})",
            r.id,
            r.pattern,
            r.url,
            has(r),
            r.version
        ),
    }
}

pub(super) async fn run(c: UpstreamCmd, conn: &Conn, f: Format) -> anyhow::Result<()> {
    let mut client =
        UpstreamRoutesClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
    match c {
        UpstreamCmd::Add {
            org,
            pattern,
            url,
            credential,
        } => {
            let credential = credential.read(env_var)?.unwrap_or_default();
            let r = client
                .add_upstream_route(pb::AddUpstreamRouteRequest {
                    org,
                    pattern,
                    url,
                    credential,
                })
                .await?
                .into_inner();
            print_route(&r, "added", f);
        }
        UpstreamCmd::Update {
            org,
            id,
            url,
            credential,
            no_credential,
        } => {
            if url.is_none() && !credential.given() && !no_credential {
                bail!("nothing to change: pass --url, --credential-file, --credential-env or --no-credential");
            }
            let credential = if no_credential {
                Some(String::new())
            } else {
                credential.read(env_var)?
            };
            let r = client
                .update_upstream_route(pb::UpdateUpstreamRouteRequest {
                    org,
                    id,
                    url,
                    credential,
                })
                .await?
                .into_inner();
            print_route(&r, "updated", f);
        }
        UpstreamCmd::List { org } => {
            let list = client
                .list_upstream_routes(pb::ListUpstreamRoutesRequest { org })
                .await?
                .into_inner()
                .routes;
            match f {
                Format::Json => print_json(&json!(list.iter().map(route_json).collect::<Vec<_>>())),
                Format::Table => {
                    let mut tb =
                        Table::new(&["ID", "PATTERN", "URL", "CREDENTIAL", "VERSION", "CREATED"]);
                    for r in &list {
                        tb.row(vec![
                            r.id.clone(),
                            r.pattern.clone(),
                            r.url.clone(),
                            has(r).into(),
                            r.version.to_string(),
                            time(r.created_at_ms),
                        ]);
                    }
                    print!("{}", tb.render());
                }
            }
        }
        UpstreamCmd::Remove { org, id } => {
            let removed = client
                .remove_upstream_route(pb::RemoveUpstreamRouteRequest {
                    org: org.clone(),
                    id: id.clone(),
                })
                .await?
                .into_inner()
                .removed;
            match f {
                Format::Json => print_json(&json!({"id": id, "removed": removed})),
                Format::Table if removed => println!("removed upstream route {id}"),
                Format::Table => println!("org {org} has no upstream route {id}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<UpstreamCmd, clap::Error> {
        let argv = ["nproxyctl", "upstream"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Upstream(c) => Ok(c),
            _ => panic!("not an upstream command"),
        }
    }

    #[test]
    fn a_credential_never_comes_from_a_flag_value() {
        let add = [
            "add",
            "--org",
            "acme",
            "--pattern",
            "@vendor",
            "--url",
            "https://v.test",
        ];
        assert!(parse(&add).is_ok());
        let with = |extra: &[&str]| parse(&[&add[..], extra].concat());
        assert!(with(&["--credential", "s3cret"]).is_err(), "no such flag");
        assert!(with(&["--credential-env", "V"]).is_ok());
        assert!(with(&["--credential-file", "f", "--credential-env", "V"]).is_err());
        let update = ["update", "--org", "acme", "r1"];
        let upd = |extra: &[&str]| parse(&[&update[..], extra].concat());
        assert!(upd(&["--no-credential"]).is_ok());
        assert!(upd(&["--no-credential", "--credential-env", "V"]).is_err());
        assert!(upd(&["--no-credential", "--credential-file", "f"]).is_err());
        assert!(upd(&["--url", "https://v.test", "--credential-file", "-"]).is_ok());
    }

    #[test]
    fn credentials_are_read_from_a_file_or_a_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cred");
        std::fs::write(&file, "tok-123\r\n").expect("write");
        let args = |file: Option<PathBuf>, var: Option<&str>| CredentialArgs {
            credential_file: file,
            credential_env: var.map(Into::into),
        };
        let env = |name: &str| (name == "VENDOR_TOKEN").then(|| "tok-456\n".to_string());
        let read = |a: CredentialArgs| a.read(env).map_err(|e| format!("{e:#}"));
        assert_eq!(
            read(args(Some(file.clone()), None)),
            Ok(Some("tok-123".into()))
        );
        assert_eq!(
            read(args(None, Some("VENDOR_TOKEN"))),
            Ok(Some("tok-456".into()))
        );
        assert_eq!(read(args(None, None)), Ok(None));
        let unset = read(args(None, Some("UNSET_VAR"))).expect_err("unset");
        assert!(unset.contains("UNSET_VAR"), "{unset}");
        std::fs::write(&file, "\n").expect("write");
        let empty = read(args(Some(file.clone()), None)).expect_err("empty");
        assert!(empty.contains("holds no credential"), "{empty}");
        let missing = read(args(Some(dir.path().join("nope")), None)).expect_err("missing");
        assert!(missing.contains("nope"), "{missing}");
    }
}
