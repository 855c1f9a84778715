//! The admin commands: one gRPC call (or a few) each, printed as a table or JSON. One file
//! per command group (`orgs`, `tokens`, `keys`, `audit`, `trusted` for `trust`,
//! `upstream`); here the connection they share, the dispatch and the error description.
//! `rules|exceptions|advisories` are in `rules_cmd.rs`, `verify` in `verify.rs`.

mod audit;
mod keys;
mod orgs;
mod tokens;
mod trusted;
mod upstream;

use nproxy_proto::tokens::BearerAuth;
use serde_json::json;
use tonic::transport::Channel;

use crate::output::{print_json, Format};
use crate::{Command, Target};

pub use audit::AuditCmd;
pub use keys::KeyCmd;
pub use orgs::OrgCmd;
pub use tokens::TokenCmd;
pub use trusted::TrustCmd;
pub use upstream::UpstreamCmd;

/// A one-line description of an error, with the gRPC status made readable.
pub fn describe(e: &anyhow::Error) -> String {
    if let Some(s) = e.downcast_ref::<tonic::Status>() {
        let what = match s.code() {
            tonic::Code::Unauthenticated => {
                "not authenticated (pass --token or NPROXY_ADMIN_TOKEN)"
            }
            tonic::Code::PermissionDenied => "permission denied",
            tonic::Code::NotFound => "not found",
            tonic::Code::AlreadyExists => "already exists",
            tonic::Code::InvalidArgument => "invalid argument",
            tonic::Code::Unavailable => "control plane unavailable",
            _ => "failed",
        };
        return format!("{what}: {}", s.message());
    }
    format!("{e:#}")
}

struct Conn {
    channel: Channel,
    auth: BearerAuth,
}

impl Conn {
    /// Connects to the first control plane of `--endpoint`'s list that accepts: mutations
    /// then go to that one replica only, so none is ever applied twice.
    async fn open(t: &Target) -> anyhow::Result<Conn> {
        let urls = nproxy_proto::endpoints::parse_list(&t.endpoint)
            .ok_or_else(|| anyhow::anyhow!("endpoint {:?} lists no URL", t.endpoint))?;
        let (_, channel) =
            nproxy_proto::endpoints::first_reachable(&urls, std::time::Duration::from_secs(5))
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the control plane: {e}"))?;
        let auth = BearerAuth::optional(t.token.as_deref())?;
        Ok(Conn { channel, auth })
    }
}

pub async fn run(t: &Target, cmd: Command) -> anyhow::Result<()> {
    let conn = Conn::open(t).await?;
    let f = t.output;
    match cmd {
        Command::Org(c) => orgs::run(c, &conn, f).await?,
        Command::Token(c) => tokens::run(c, &conn, f).await?,
        Command::Key(c) => keys::run(c, &conn, f).await?,
        Command::Audit(c) => audit::run(c, &conn, f).await?,
        Command::Trust(c) => trusted::run(c, &conn, f).await?,
        Command::Upstream(c) => upstream::run(c, &conn, f).await?,
        Command::Verify(args) => {
            let v = crate::verify::run(&args, conn.channel.clone(), conn.auth.clone()).await?;
            match f {
                Format::Json => {
                    print_json(&json!({"ok": true, "key_id": v.key_id, "integrity": v.integrity}))
                }
                Format::Table => println!(
                    "{} verified: integrity {} signed by {}",
                    args_spec(&args),
                    v.integrity,
                    v.key_id
                ),
            }
        }
        Command::Rules(c) => {
            crate::rules_cmd::rules(c, conn.channel.clone(), &conn.auth, f).await?;
        }
        Command::Exceptions(c) => {
            crate::rules_cmd::exceptions(c, conn.channel.clone(), &conn.auth, f).await?;
        }
        Command::Advisories(c) => {
            crate::rules_cmd::advisories(c, conn.channel.clone(), &conn.auth, f).await?;
        }
        Command::Completions { .. } | Command::Bundle(_) => {}
        #[cfg(feature = "dev")]
        Command::Dev(_) => {}
    }
    Ok(())
}

fn args_spec(a: &crate::verify::VerifyArgs) -> String {
    a.spec().to_string()
}
