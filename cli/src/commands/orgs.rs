//! `nproxyctl org`: orgs and their settings.

use clap::{Args, Subcommand};
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::orgs_client::OrgsClient;
use serde_json::json;

use super::Conn;
use crate::output::{print_json, time, Format, Table};

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

pub(super) async fn run(c: OrgCmd, conn: &Conn, f: Format) -> anyhow::Result<()> {
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
    Ok(())
}
