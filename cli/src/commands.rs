//! The admin commands: one gRPC call (or a few) each, printed as a table or JSON.

use clap::{Args, Subcommand};
use nproxy_proto::tokens::BearerAuth;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::audit_client::AuditClient;
use nproxy_proto::v1::keys_client::KeysClient;
use nproxy_proto::v1::orgs_client::OrgsClient;
use nproxy_proto::v1::tokens_client::TokensClient;
use nproxy_proto::v1::{KeyStatus, TokenScope};
use serde_json::json;
use tonic::transport::Channel;

use crate::output::{opt_time, print_json, time, Format, Table};
use crate::{Command, Target};

#[derive(Subcommand)]
pub enum OrgCmd {
    /// Creates an org (and its first signing key).
    Create {
        slug: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    List,
    Get {
        org: String,
    },
    /// Deletes an org: its config leaves Redis at once; its audit log is kept.
    Delete {
        org: String,
    },
    /// Shows, or with flags changes, an org's settings.
    Settings(SettingsArgs),
}

#[derive(Args)]
pub struct SettingsArgs {
    org: String,
    /// Internal scopes, comma-separated (e.g. `@acme,@acme-tools`); `""` clears them.
    #[arg(long)]
    internal_scopes: Option<String>,
    /// Whether anonymous clients may install public packages.
    #[arg(long)]
    public_reads: Option<bool>,
}

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

#[derive(Subcommand)]
pub enum KeyCmd {
    List {
        #[arg(long)]
        org: String,
    },
    /// Creates a new active key; the old one stays listed as retired.
    Rotate {
        #[arg(long)]
        org: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCmd {
    List {
        #[arg(long)]
        org: String,
        /// Only events of this type, e.g. `token.revoked`.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only events after this: a duration ago (`24h`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Stop after this many events.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Prints new events as they happen.
    Follow {
        #[arg(long)]
        org: Option<String>,
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Recomputes the org's hash chain and checks it against its anchored head.
    Verify {
        #[arg(long)]
        org: String,
    },
}

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
    async fn open(t: &Target) -> anyhow::Result<Conn> {
        let channel = tonic::transport::Endpoint::from_shared(t.endpoint.clone())
            .map_err(|e| anyhow::anyhow!("endpoint {:?}: {e}", t.endpoint))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot reach the control plane at {}: {e}", t.endpoint)
            })?;
        let auth = BearerAuth::optional(t.token.as_deref())?;
        Ok(Conn { channel, auth })
    }
}

fn scopes_text(scopes: &[i32]) -> String {
    scopes
        .iter()
        .filter_map(|s| TokenScope::try_from(*s).ok())
        .map(TokenScope::label)
        .collect::<Vec<_>>()
        .join(",")
}

fn org_json(o: &pb::Org) -> serde_json::Value {
    json!({"id": o.id, "slug": o.slug, "display_name": o.display_name, "created_at_ms": o.created_at_ms})
}

fn print_orgs(f: Format, orgs: &[pb::Org]) {
    match f {
        Format::Json => print_json(&json!(orgs.iter().map(org_json).collect::<Vec<_>>())),
        Format::Table => {
            let mut t = Table::new(&["ID", "SLUG", "NAME", "CREATED"]);
            for o in orgs {
                t.row(vec![
                    o.id.clone(),
                    o.slug.clone(),
                    o.display_name.clone(),
                    time(o.created_at_ms),
                ]);
            }
            print!("{}", t.render());
        }
    }
}

fn print_settings(f: Format, s: &pb::OrgSettings) {
    match f {
        Format::Json => print_json(&json!({
            "org_id": s.org_id, "internal_scopes": s.internal_scopes, "public_reads": s.public_reads
        })),
        Format::Table => {
            println!("org:             {}", s.org_id);
            println!(
                "internal scopes: {}",
                if s.internal_scopes.is_empty() {
                    "-".to_string()
                } else {
                    s.internal_scopes.join(", ")
                }
            );
            println!(
                "public reads:    {}",
                if s.public_reads { "on" } else { "off" }
            );
        }
    }
}

fn token_json(t: &pb::Token) -> serde_json::Value {
    json!({
        "id": t.id, "org_id": t.org_id, "name": t.name, "scopes": scopes_text(&t.scopes).split(',').collect::<Vec<_>>(),
        "created_at_ms": t.created_at_ms, "expires_at_ms": t.expires_at_ms, "last_used_at_ms": t.last_used_at_ms,
        "revoked_at_ms": t.revoked_at_ms, "secret_prefix": t.secret_prefix,
    })
}

fn key_json(k: &pb::SigningKey) -> serde_json::Value {
    use base64::Engine;
    json!({
        "key_id": k.key_id, "org_id": k.org_id, "algorithm": k.algorithm,
        "public_key": base64::engine::general_purpose::STANDARD.encode(&k.public_key),
        "status": if k.status == KeyStatus::Active as i32 { "active" } else { "retired" },
        "created_at_ms": k.created_at_ms, "retired_at_ms": k.retired_at_ms,
    })
}

fn event_json(e: &pb::AuditEvent) -> serde_json::Value {
    json!({
        "id": e.id, "org_id": e.org_id, "seq": e.seq, "time_ms": e.time_ms, "type": e.r#type,
        "actor": e.actor, "details": serde_json::from_str::<serde_json::Value>(&e.details_json).unwrap_or_default(),
        "hash": e.hash, "prev_hash": e.prev_hash,
    })
}

/// `24h` (that long ago) or an RFC 3339 time → Unix ms.
fn parse_when(s: &str) -> anyhow::Result<i64> {
    let now = std::time::SystemTime::now();
    let t = if let Ok(d) = humantime::parse_duration(s) {
        now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH)
    } else {
        humantime::parse_rfc3339_weak(s).map_err(|_| {
            anyhow::anyhow!("{s:?} is neither a duration (24h) nor an RFC 3339 time")
        })?
    };
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

pub async fn run(t: &Target, cmd: Command) -> anyhow::Result<()> {
    let conn = Conn::open(t).await?;
    let f = t.output;
    match cmd {
        Command::Org(c) => {
            let mut orgs = OrgsClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
            match c {
                OrgCmd::Create { slug, display_name } => {
                    let o = orgs
                        .create_org(pb::CreateOrgRequest {
                            slug,
                            display_name: display_name.unwrap_or_default(),
                        })
                        .await?
                        .into_inner();
                    print_orgs(f, &[o]);
                }
                OrgCmd::List => {
                    let mut all = Vec::new();
                    let mut page = String::new();
                    loop {
                        let r = orgs
                            .list_orgs(pb::ListOrgsRequest {
                                page_size: 200,
                                page_token: page,
                            })
                            .await?
                            .into_inner();
                        all.extend(r.orgs);
                        if r.next_page_token.is_empty() {
                            break;
                        }
                        page = r.next_page_token;
                    }
                    print_orgs(f, &all);
                }
                OrgCmd::Get { org } => {
                    let o = orgs.get_org(pb::GetOrgRequest { org }).await?.into_inner();
                    print_orgs(f, &[o]);
                }
                OrgCmd::Delete { org } => {
                    orgs.delete_org(pb::DeleteOrgRequest { org: org.clone() })
                        .await?;
                    match f {
                        Format::Json => print_json(&json!({"deleted": org})),
                        Format::Table => println!("deleted org {org}"),
                    }
                }
                OrgCmd::Settings(a) => {
                    let s = if a.internal_scopes.is_none() && a.public_reads.is_none() {
                        orgs.get_settings(pb::GetSettingsRequest { org: a.org })
                            .await?
                            .into_inner()
                    } else {
                        let scopes = a.internal_scopes.map(|s| pb::ScopeList {
                            scopes: s
                                .split(',')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect(),
                        });
                        orgs.update_settings(pb::UpdateSettingsRequest {
                            org: a.org,
                            internal_scopes: scopes,
                            public_reads: a.public_reads,
                        })
                        .await?
                        .into_inner()
                    };
                    print_settings(f, &s);
                }
            }
        }
        Command::Token(c) => {
            let mut tokens =
                TokensClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
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
                            let scope = TokenScope::from_label(part.trim()).ok_or_else(|| {
                                anyhow::anyhow!("--scope {part:?}: use proxy or publish")
                            })?;
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
                        Format::Json => {
                            print_json(&json!(list.iter().map(token_json).collect::<Vec<_>>()))
                        }
                        Format::Table => {
                            let mut tb = Table::new(&[
                                "ID",
                                "NAME",
                                "SCOPES",
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
        }
        Command::Key(c) => {
            let mut keys = KeysClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
            let list = match c {
                KeyCmd::List { org } => {
                    keys.list_keys(pb::ListKeysRequest { org })
                        .await?
                        .into_inner()
                        .keys
                }
                KeyCmd::Rotate { org } => vec![keys
                    .rotate_key(pb::RotateKeyRequest { org })
                    .await?
                    .into_inner()],
            };
            match f {
                Format::Json => print_json(&json!(list.iter().map(key_json).collect::<Vec<_>>())),
                Format::Table => {
                    let mut tb =
                        Table::new(&["KEY ID", "ALGORITHM", "STATUS", "CREATED", "RETIRED"]);
                    for k in &list {
                        tb.row(vec![
                            k.key_id.clone(),
                            k.algorithm.clone(),
                            if k.status == KeyStatus::Active as i32 {
                                "active".into()
                            } else {
                                "retired".into()
                            },
                            time(k.created_at_ms),
                            opt_time(k.retired_at_ms),
                        ]);
                    }
                    print!("{}", tb.render());
                }
            }
        }
        Command::Audit(c) => {
            let mut audit = AuditClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
            match c {
                AuditCmd::List {
                    org,
                    kind,
                    since,
                    until,
                    limit,
                } => {
                    let since_ms = since.as_deref().map(parse_when).transpose()?.unwrap_or(0);
                    let until_ms = until.as_deref().map(parse_when).transpose()?.unwrap_or(0);
                    let mut events = Vec::new();
                    let mut page = String::new();
                    while events.len() < limit {
                        let r = audit
                            .list_events(pb::ListEventsRequest {
                                org: org.clone(),
                                r#type: kind.clone().unwrap_or_default(),
                                since_ms,
                                until_ms,
                                page_size: 500,
                                page_token: page,
                            })
                            .await?
                            .into_inner();
                        events.extend(r.events);
                        if r.next_page_token.is_empty() {
                            break;
                        }
                        page = r.next_page_token;
                    }
                    events.truncate(limit);
                    print_events(f, &events);
                }
                AuditCmd::Follow { org, kind } => {
                    let mut stream = audit
                        .follow_events(pb::FollowEventsRequest {
                            org: org.unwrap_or_default(),
                            r#type: kind.unwrap_or_default(),
                        })
                        .await?
                        .into_inner();
                    while let Some(e) = stream.message().await? {
                        print_events(f, std::slice::from_ref(&e));
                    }
                }
                AuditCmd::Verify { org } => {
                    let r = audit
                        .verify_chain(pb::VerifyChainRequest { org: org.clone() })
                        .await?
                        .into_inner();
                    match f {
                        Format::Json => print_json(
                            &json!({"ok": r.ok, "events_checked": r.events_checked, "problems": r.problems}),
                        ),
                        Format::Table => {
                            if r.ok {
                                println!(
                                    "audit chain of {org} intact: {} events verified",
                                    r.events_checked
                                );
                            } else {
                                println!(
                                    "audit chain of {org} BROKEN ({} events checked):",
                                    r.events_checked
                                );
                                for p in &r.problems {
                                    println!("  - {p}");
                                }
                            }
                        }
                    }
                    if !r.ok {
                        anyhow::bail!("the audit chain of {org} failed verification");
                    }
                }
            }
        }
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
        Command::Completions { .. } => {}
        #[cfg(feature = "dev")]
        Command::Dev(_) => {}
    }
    Ok(())
}

fn print_events(f: Format, events: &[pb::AuditEvent]) {
    match f {
        Format::Json => {
            for e in events {
                println!("{}", event_json(e));
            }
        }
        Format::Table => {
            let mut tb = Table::new(&["SEQ", "TIME", "TYPE", "ACTOR", "DETAILS"]);
            for e in events {
                tb.row(vec![
                    e.seq.to_string(),
                    time(e.time_ms),
                    e.r#type.clone(),
                    e.actor.clone(),
                    e.details_json.clone(),
                ]);
            }
            print!("{}", tb.render());
        }
    }
}

fn args_spec(a: &crate::verify::VerifyArgs) -> String {
    a.spec().to_string()
}
