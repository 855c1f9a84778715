//! The `tokens` table: npm clients' API tokens, stored as the SHA-256 of their secret (the
//! secret itself exists only in the client's hands).

use nproxy_common::time::now_ms;
use sqlx::{AnyConnection, Row};

use super::db::Db;
use crate::error::{CpError, CpResult};

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub sha256: Vec<u8>,
    pub secret_prefix: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// Not empty: the only packages the token is good for (stored as a JSON array; NULL
    /// when empty). Tokens minted by trusted publishing.
    pub packages: Vec<String>,
}

impl TokenRow {
    /// The stored scope labels as protobuf enum values.
    pub fn scope_values(&self) -> Vec<i32> {
        self.scopes
            .iter()
            .filter_map(|s| nproxy_proto::v1::TokenScope::from_label(s))
            .map(|s| s as i32)
            .collect()
    }
}

fn token_from_row(r: &sqlx::any::AnyRow) -> CpResult<TokenRow> {
    let scopes: String = r.try_get("scopes")?;
    let packages: Option<String> = r.try_get("packages")?;
    Ok(TokenRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        sha256: r.try_get("sha256")?,
        secret_prefix: r.try_get("secret_prefix")?,
        scopes: serde_json::from_str(&scopes)
            .map_err(|e| CpError::Internal(format!("corrupt token scopes: {e}")))?,
        created_at_ms: r.try_get("created_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        last_used_at_ms: r.try_get("last_used_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
        packages: match packages {
            None => Vec::new(),
            Some(p) => serde_json::from_str(&p)
                .map_err(|e| CpError::Internal(format!("corrupt token packages: {e}")))?,
        },
    })
}

impl Db {
    pub async fn insert_token(conn: &mut AnyConnection, t: &TokenRow) -> CpResult<()> {
        // Never a fallback here: a limited token stored without its list would be unlimited.
        let packages = match t.packages.is_empty() {
            true => None,
            false => Some(
                serde_json::to_string(&t.packages)
                    .map_err(|e| CpError::Internal(format!("token packages: {e}")))?,
            ),
        };
        sqlx::query(
            "INSERT INTO tokens (id, org_id, name, sha256, secret_prefix, scopes, created_at_ms, expires_at_ms, packages)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.id)
        .bind(&t.org_id)
        .bind(&t.name)
        .bind(&t.sha256)
        .bind(&t.secret_prefix)
        .bind(serde_json::to_string(&t.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(t.created_at_ms)
        .bind(t.expires_at_ms)
        .bind(packages)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn list_tokens(
        &self,
        org_id: &str,
        after: &str,
        limit: u32,
        include_revoked: bool,
    ) -> CpResult<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE org_id = $1 AND id > $2 AND ($3 OR revoked_at_ms IS NULL) ORDER BY id LIMIT $4",
        )
        .bind(org_id)
        .bind(after)
        .bind(include_revoked)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn live_tokens(conn: &mut AnyConnection, org_id: &str) -> CpResult<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE org_id = $1 AND revoked_at_ms IS NULL ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Deletes tokens minted for packages (trusted publishing: one per CI publish, minutes
    /// long) that expired before `before_ms`, at most 1,000 at a time; their audit events
    /// stay. Returns how many went.
    pub async fn prune_minted_tokens(&self, before_ms: i64) -> CpResult<u64> {
        let mut w = self.write().await?;
        let done = sqlx::query(
            "DELETE FROM tokens WHERE id IN (SELECT id FROM tokens WHERE packages IS NOT NULL \
             AND expires_at_ms < $1 ORDER BY expires_at_ms LIMIT 1000)",
        )
        .bind(before_ms)
        .execute(w.conn())
        .await?
        .rows_affected();
        w.commit().await?;
        Ok(done)
    }

    pub async fn token(conn: &mut AnyConnection, org_id: &str, id: &str) -> CpResult<TokenRow> {
        let row = sqlx::query("SELECT * FROM tokens WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(conn)
            .await?;
        match row {
            Some(r) => token_from_row(&r),
            None => Err(CpError::NotFound(format!("token {id:?}"))),
        }
    }

    /// Moves tokens' last-use times forward (never back).
    pub async fn record_token_use(
        &self,
        org_id: &str,
        used: &std::collections::HashMap<String, i64>,
    ) -> CpResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        let mut w = self.write().await?;
        for (id, ms) in used {
            sqlx::query(
                "UPDATE tokens SET last_used_at_ms = $1 WHERE org_id = $2 AND id = $3
                 AND (last_used_at_ms IS NULL OR last_used_at_ms < $4)",
            )
            .bind(ms)
            .bind(org_id)
            .bind(id)
            .bind(ms)
            .execute(w.conn())
            .await?;
        }
        w.commit().await
    }

    pub async fn revoke_token(conn: &mut AnyConnection, id: &str) -> CpResult<()> {
        sqlx::query("UPDATE tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }
}
