//! The `signing_keys` table: each org's keys (Ed25519 and npm-format ECDSA P-256), the
//! private half sealed under the master key; retired keys stay listed so old signatures
//! still verify.

use nproxy_common::time::now_ms;
use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::CpResult;

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub key_id: String,
    pub org_id: String,
    /// `crate::keys::Algorithm` label.
    pub algorithm: String,
    pub public_key: Vec<u8>,
    pub private_key_sealed: Vec<u8>,
    pub created_at_ms: i64,
    pub retired_at_ms: Option<i64>,
}

fn key_from_row(r: &sqlx::any::AnyRow) -> CpResult<KeyRow> {
    Ok(KeyRow {
        key_id: r.try_get("key_id")?,
        org_id: r.try_get("org_id")?,
        algorithm: r.try_get("algorithm")?,
        public_key: r.try_get("public_key")?,
        private_key_sealed: r.try_get("private_key_sealed")?,
        created_at_ms: r.try_get("created_at_ms")?,
        retired_at_ms: r.try_get("retired_at_ms")?,
    })
}

impl Db {
    pub async fn insert_key(conn: &mut AnyConnection, k: &KeyRow) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (key_id, org_id, public_key, private_key_sealed, created_at_ms, algorithm) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.key_id)
        .bind(&k.org_id)
        .bind(&k.public_key)
        .bind(&k.private_key_sealed)
        .bind(k.created_at_ms)
        .bind(&k.algorithm)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn retire_keys(conn: &mut AnyConnection, org_id: &str) -> CpResult<()> {
        sqlx::query(
            "UPDATE signing_keys SET retired_at_ms = $1 WHERE org_id = $2 AND retired_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(org_id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn keys(conn: &mut AnyConnection, org_id: &str) -> CpResult<Vec<KeyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM signing_keys WHERE org_id = $1 ORDER BY created_at_ms, key_id",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Orgs (live ones) without an active key of `algorithm`: those created before it existed.
    pub async fn orgs_without_active_key(&self, algorithm: &str) -> CpResult<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        let ids = sqlx::query_scalar(
            "SELECT id FROM orgs WHERE deleted_at_ms IS NULL AND id NOT IN \
             (SELECT org_id FROM signing_keys WHERE algorithm = $1 AND retired_at_ms IS NULL) \
             ORDER BY id",
        )
        .bind(algorithm)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids)
    }

    pub async fn keys_of(&self, org_id: &str) -> CpResult<Vec<KeyRow>> {
        let mut conn = self.pool.acquire().await?;
        Self::keys(&mut conn, org_id).await
    }
}
