//! The `admin_credentials` table: admin tokens, stored as the SHA-256 of their secret.

use nproxy_common::time::now_ms;
use sqlx::Row;

use super::db::Db;
use super::new_id;
use crate::error::CpResult;

#[derive(Debug, Clone)]
pub struct AdminRow {
    pub id: String,
    pub name: String,
    pub sha256: Vec<u8>,
}

impl Db {
    pub async fn admin_credentials(&self) -> CpResult<Vec<AdminRow>> {
        let rows = sqlx::query(
            "SELECT id, name, sha256 FROM admin_credentials WHERE revoked_at_ms IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AdminRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    sha256: r.try_get("sha256")?,
                })
            })
            .collect()
    }

    pub async fn insert_admin(&self, name: &str, sha256: &[u8]) -> CpResult<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO admin_credentials (id, name, sha256, created_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(new_id())
        .bind(name)
        .bind(sha256)
        .bind(now_ms())
        .execute(w.conn())
        .await?;
        w.commit().await
    }
}
