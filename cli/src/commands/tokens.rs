//! `nproxyctl token`: API tokens for npm clients.

use clap::Subcommand;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::tokens_client::TokensClient;
use nproxy_proto::v1::TokenScope;
use serde_json::json;

use super::Conn;
use crate::output::{opt_time, print_json, time, Format, Table};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Creates a token; its secret is printed once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        /// `proxy` (install) and/or `publish` (includes install). Repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime, e.g. `90d` or `12h`.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
    },
    List {
        #[arg(long)]
        org: String,
        /// Include revoked tokens.
        #[arg(long)]
        all: bool,
    },
    Revoke {
        #[arg(long)]
        org: String,
        token_id: String,
    },
}

fn scopes_text(scopes: &[i32]) -> String {
    scopes
        .iter()
        .filter_map(|s| TokenScope::try_from(*s).ok())
        .map(TokenScope::label)
        .collect::<Vec<_>>()
        .join(",")
}

fn token_json(t: &pb::Token) -> serde_json::Value {
    json!({
        "id": t.id, "org_id": t.org_id, "name": t.name, "scopes": scopes_text(&t.scopes).split(',').collect::<Vec<_>>(),
        "created_at_ms": t.created_at_ms, "expires_at_ms": t.expires_at_ms, "last_used_at_ms": t.last_used_at_ms,
        "revoked_at_ms": t.revoked_at_ms, "secret_prefix": t.secret_prefix, "packages": t.packages,
    })
}

pub(super) async fn run(c: TokenCmd, conn: &Conn, f: Format) -> anyhow::Result<()> {
    let mut tokens = TokensClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
    match c {
        TokenCmd::Create {
            org,
            name,
            scopes,
            expires_in,
        } => {
            let mut parsed = Vec::new();
            for s in &scopes {
                for part in s.split(',') {
                    let scope = TokenScope::from_label(part.trim())
                        .ok_or_else(|| anyhow::anyhow!("--scope {part:?}: use proxy or publish"))?;
                    parsed.push(scope as i32);
                }
            }
            let expires_at_ms = expires_in.map(|d| {
                (std::time::SystemTime::now() + *d)
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0)
            });
            let r = tokens
                .create_token(pb::CreateTokenRequest {
                    org,
                    name,
                    scopes: parsed,
                    expires_at_ms,
                })
                .await?
                .into_inner();
            let tok = r.token.unwrap_or_default();
            match f {
                Format::Json => {
                    let mut v = token_json(&tok);
                    v["secret"] = json!(r.secret);
                    print_json(&v);
                }
                Format::Table => {
                    println!(
                        "token {} ({}) created with scopes {}",
                        tok.id,
                        tok.name,
                        scopes_text(&tok.scopes)
                    );
                    println!("secret (shown once, store it now): {}", r.secret);
                }
            }
        }
        TokenCmd::List { org, all } => {
            let mut list = Vec::new();
            let mut page = String::new();
            loop {
                let r = tokens
                    .list_tokens(pb::ListTokensRequest {
                        org: org.clone(),
                        page_size: 200,
                        page_token: page,
                        include_revoked: all,
                    })
                    .await?
                    .into_inner();
                list.extend(r.tokens);
                if r.next_page_token.is_empty() {
                    break;
                }
                page = r.next_page_token;
            }
            match f {
                Format::Json => print_json(&json!(list.iter().map(token_json).collect::<Vec<_>>())),
                Format::Table => {
                    let mut tb = Table::new(&[
                        "ID",
                        "NAME",
                        "SCOPES",
                        "PACKAGES",
                        "PREFIX",
                        "CREATED",
                        "EXPIRES",
                        "LAST USED",
                        "REVOKED",
                    ]);
                    for t in &list {
                        tb.row(vec![
                            t.id.clone(),
                            t.name.clone(),
                            scopes_text(&t.scopes),
                            if t.packages.is_empty() {
                                "all".into()
                            } else {
                                t.packages.join(",")
                            },
                            format!("{}…", t.secret_prefix),
                            time(t.created_at_ms),
                            opt_time(t.expires_at_ms),
                            opt_time(t.last_used_at_ms),
                            opt_time(t.revoked_at_ms),
                        ]);
                    }
                    print!("{}", tb.render());
                }
            }
        }
        TokenCmd::Revoke { org, token_id } => {
            let t = tokens
                .revoke_token(pb::RevokeTokenRequest { org, token_id })
                .await?
                .into_inner();
            match f {
                Format::Json => print_json(&token_json(&t)),
                Format::Table => println!("revoked token {} ({})", t.id, t.name),
            }
        }
    }
    Ok(())
}
