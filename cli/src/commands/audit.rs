//! `nproxyctl audit`: listing, following and verifying the audit log.

use clap::Subcommand;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::audit_client::AuditClient;
use serde_json::json;

use super::Conn;
use crate::output::{print_json, time, Format, Table};

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

pub(super) async fn run(c: AuditCmd, conn: &Conn, f: Format) -> anyhow::Result<()> {
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
