//! `nproxyctl key`: the org's signing keys, Ed25519 (nproxy's own signatures) and ECDSA
//! P-256 (`ecdsa-p256`: the npm-format signatures `npm audit signatures` checks).

use clap::Subcommand;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::keys_client::KeysClient;
use nproxy_proto::v1::KeyStatus;
use serde_json::json;

use super::Conn;
use crate::output::{opt_time, print_json, time, Format, Table};

#[derive(Subcommand)]
pub enum KeyCmd {
    List {
        #[arg(long)]
        org: String,
    },
    /// Creates new active keys (one per algorithm); the old ones stay listed as retired, and
    /// what they signed keeps verifying.
    Rotate {
        #[arg(long)]
        org: String,
    },
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

pub(super) async fn run(c: KeyCmd, conn: &Conn, f: Format) -> anyhow::Result<()> {
    let mut keys = KeysClient::with_interceptor(conn.channel.clone(), conn.auth.clone());
    let list = match c {
        KeyCmd::List { org } => {
            keys.list_keys(pb::ListKeysRequest { org })
                .await?
                .into_inner()
                .keys
        }
        KeyCmd::Rotate { org } => {
            keys.rotate_key(pb::RotateKeyRequest { org: org.clone() })
                .await?;
            // Shows the new key of each algorithm.
            keys.list_keys(pb::ListKeysRequest { org })
                .await?
                .into_inner()
                .keys
                .into_iter()
                .filter(|k| k.status == KeyStatus::Active as i32)
                .collect()
        }
    };
    match f {
        Format::Json => print_json(&json!(list.iter().map(key_json).collect::<Vec<_>>())),
        Format::Table => {
            let mut tb = Table::new(&["KEY ID", "ALGORITHM", "STATUS", "CREATED", "RETIRED"]);
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
    Ok(())
}
