//! The control plane's database layer (SQLite through sqlx, runtime-checked queries in
//! portable SQL so a PostgreSQL backend can follow). All writes of one mutation run in one
//! transaction together with its audit event, under a writer lock (SQLite has one writer).

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::error::{CpError, CpResult};

/// Which audit events to list (an org, optionally one kind and a time window).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: String,
    pub kind: String,
    pub since_ms: i64,
    pub until_ms: i64,
}

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_rules.sql")),
];

pub use nproxy_common::time::now_ms;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub slug: String,
    pub display_name: String,
    pub created_at_ms: i64,
    pub config_version: i64,
    pub internal_scopes: Vec<String>,
    pub public_reads: bool,
}

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

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub key_id: String,
    pub org_id: String,
    pub public_key: Vec<u8>,
    pub private_key_sealed: Vec<u8>,
    pub created_at_ms: i64,
    pub retired_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    pub org_id: String,
    pub seq: i64,
    pub time_ms: i64,
    pub kind: String,
    pub actor: String,
    pub details_json: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct AnchorRow {
    pub seq: i64,
    pub hash: String,
    pub mac: String,
}

#[derive(Debug, Clone)]
pub struct AdminRow {
    pub id: String,
    pub name: String,
    pub sha256: Vec<u8>,
}

pub struct Db {
    pool: SqlitePool,
    write: tokio::sync::Mutex<()>,
}

fn org_from_row(r: &sqlx::sqlite::SqliteRow) -> CpResult<OrgRow> {
    let scopes: String = r.try_get("internal_scopes")?;
    Ok(OrgRow {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        display_name: r.try_get("display_name")?,
        created_at_ms: r.try_get("created_at_ms")?,
        config_version: r.try_get("config_version")?,
        internal_scopes: serde_json::from_str(&scopes)
            .map_err(|e| CpError::Internal(format!("corrupt internal_scopes: {e}")))?,
        public_reads: r.try_get::<i64, _>("public_reads")? != 0,
    })
}

fn token_from_row(r: &sqlx::sqlite::SqliteRow) -> CpResult<TokenRow> {
    let scopes: String = r.try_get("scopes")?;
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
    })
}

fn key_from_row(r: &sqlx::sqlite::SqliteRow) -> CpResult<KeyRow> {
    Ok(KeyRow {
        key_id: r.try_get("key_id")?,
        org_id: r.try_get("org_id")?,
        public_key: r.try_get("public_key")?,
        private_key_sealed: r.try_get("private_key_sealed")?,
        created_at_ms: r.try_get("created_at_ms")?,
        retired_at_ms: r.try_get("retired_at_ms")?,
    })
}

fn event_from_row(r: &sqlx::sqlite::SqliteRow) -> CpResult<EventRow> {
    Ok(EventRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        seq: r.try_get("seq")?,
        time_ms: r.try_get("time_ms")?,
        kind: r.try_get("type")?,
        actor: r.try_get("actor")?,
        details_json: r.try_get("details_json")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const ORG_COLUMNS: &str =
    "id, slug, display_name, created_at_ms, config_version, internal_scopes, public_reads";

/// A write transaction holding the writer lock.
pub struct Write<'a> {
    pub tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Write<'_> {
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> CpResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Db {
    pub async fn open(path: &std::path::Path) -> CpResult<Db> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| CpError::Internal(format!("database folder: {e}")))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        let db = Db {
            pool,
            write: tokio::sync::Mutex::new(()),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> CpResult<()> {
        let mut w = self.write().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
        )
        .execute(w.conn())
        .await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(w.conn())
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sql).execute(w.conn()).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)")
                .bind(version)
                .bind(now_ms())
                .execute(w.conn())
                .await?;
        }
        w.commit().await
    }

    pub async fn write(&self) -> CpResult<Write<'_>> {
        let guard = self.write.lock().await;
        let tx = self.pool.begin().await?;
        Ok(Write { tx, _guard: guard })
    }

    // ------------------------------------------------------------------ orgs

    /// Finds a live org by id or slug.
    pub async fn org(&self, id_or_slug: &str) -> CpResult<OrgRow> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE (id = ? OR slug = ?) AND deleted_at_ms IS NULL"
        ))
        .bind(id_or_slug)
        .bind(id_or_slug)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => org_from_row(&r),
            None => Err(CpError::NotFound(format!("org {id_or_slug:?}"))),
        }
    }

    pub async fn org_in(conn: &mut SqliteConnection, id: &str) -> CpResult<OrgRow> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE id = ? AND deleted_at_ms IS NULL"
        ))
        .bind(id)
        .fetch_optional(conn)
        .await?;
        match row {
            Some(r) => org_from_row(&r),
            None => Err(CpError::NotFound(format!("org {id:?}"))),
        }
    }

    pub async fn list_orgs(&self, after: &str, limit: u32) -> CpResult<Vec<OrgRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE deleted_at_ms IS NULL AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    pub async fn all_live_orgs(&self) -> CpResult<Vec<OrgRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE deleted_at_ms IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Slugs of deleted orgs that no live org reuses: their Redis keys must not exist.
    pub async fn dead_slugs(&self) -> CpResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT slug FROM orgs d WHERE deleted_at_ms IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM orgs l WHERE l.slug = d.slug AND l.deleted_at_ms IS NULL)",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn insert_org(conn: &mut SqliteConnection, org: &OrgRow) -> CpResult<()> {
        let res = sqlx::query(
            "INSERT INTO orgs (id, slug, display_name, created_at_ms, config_version, internal_scopes, public_reads)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.display_name)
        .bind(org.created_at_ms)
        .bind(org.config_version)
        .bind(serde_json::to_string(&org.internal_scopes).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(org.public_reads))
        .execute(conn)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(CpError::AlreadyExists(format!("org {:?}", org.slug)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    pub async fn delete_org(conn: &mut SqliteConnection, id: &str) -> CpResult<()> {
        sqlx::query(
            "UPDATE orgs SET deleted_at_ms = ?, config_version = config_version + 1 WHERE id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE tokens SET revoked_at_ms = ? WHERE org_id = ? AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn update_settings(
        conn: &mut SqliteConnection,
        id: &str,
        scopes: &[String],
        public_reads: bool,
    ) -> CpResult<()> {
        sqlx::query(
            "UPDATE orgs SET internal_scopes = ?, public_reads = ?, config_version = config_version + 1 WHERE id = ?",
        )
        .bind(serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(public_reads))
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn bump_config_version(conn: &mut SqliteConnection, id: &str) -> CpResult<()> {
        sqlx::query("UPDATE orgs SET config_version = config_version + 1 WHERE id = ?")
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------------ tokens

    pub async fn insert_token(conn: &mut SqliteConnection, t: &TokenRow) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO tokens (id, org_id, name, sha256, secret_prefix, scopes, created_at_ms, expires_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.org_id)
        .bind(&t.name)
        .bind(&t.sha256)
        .bind(&t.secret_prefix)
        .bind(serde_json::to_string(&t.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(t.created_at_ms)
        .bind(t.expires_at_ms)
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
            "SELECT * FROM tokens WHERE org_id = ? AND id > ? AND (? OR revoked_at_ms IS NULL) ORDER BY id LIMIT ?",
        )
        .bind(org_id)
        .bind(after)
        .bind(include_revoked)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn live_tokens(conn: &mut SqliteConnection, org_id: &str) -> CpResult<Vec<TokenRow>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE org_id = ? AND revoked_at_ms IS NULL ORDER BY id",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn token(conn: &mut SqliteConnection, org_id: &str, id: &str) -> CpResult<TokenRow> {
        let row = sqlx::query("SELECT * FROM tokens WHERE org_id = ? AND id = ?")
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
                "UPDATE tokens SET last_used_at_ms = ? WHERE org_id = ? AND id = ?
                 AND (last_used_at_ms IS NULL OR last_used_at_ms < ?)",
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

    pub async fn revoke_token(conn: &mut SqliteConnection, id: &str) -> CpResult<()> {
        sqlx::query("UPDATE tokens SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------------ keys

    pub async fn insert_key(conn: &mut SqliteConnection, k: &KeyRow) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (key_id, org_id, public_key, private_key_sealed, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&k.key_id)
        .bind(&k.org_id)
        .bind(&k.public_key)
        .bind(&k.private_key_sealed)
        .bind(k.created_at_ms)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn retire_keys(conn: &mut SqliteConnection, org_id: &str) -> CpResult<()> {
        sqlx::query(
            "UPDATE signing_keys SET retired_at_ms = ? WHERE org_id = ? AND retired_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(org_id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn keys(conn: &mut SqliteConnection, org_id: &str) -> CpResult<Vec<KeyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM signing_keys WHERE org_id = ? ORDER BY created_at_ms, key_id",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn keys_of(&self, org_id: &str) -> CpResult<Vec<KeyRow>> {
        let mut conn = self.pool.acquire().await?;
        Self::keys(&mut conn, org_id).await
    }

    // ------------------------------------------------------------------ audit

    pub async fn last_event(
        conn: &mut SqliteConnection,
        org_id: &str,
    ) -> CpResult<Option<EventRow>> {
        let row =
            sqlx::query("SELECT * FROM audit_events WHERE org_id = ? ORDER BY seq DESC LIMIT 1")
                .bind(org_id)
                .fetch_optional(conn)
                .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    pub async fn has_idempotency_key(
        conn: &mut SqliteConnection,
        org_id: &str,
        key: &str,
    ) -> CpResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = ? AND idempotency_key = ?",
        )
        .bind(org_id)
        .bind(key)
        .fetch_one(conn)
        .await?;
        Ok(n > 0)
    }

    pub async fn insert_event(
        conn: &mut SqliteConnection,
        e: &EventRow,
        idempotency_key: Option<&str>,
    ) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, org_id, seq, time_ms, type, actor, details_json, prev_hash, hash, idempotency_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(&e.org_id)
        .bind(e.seq)
        .bind(e.time_ms)
        .bind(&e.kind)
        .bind(&e.actor)
        .bind(&e.details_json)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .bind(idempotency_key)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn set_anchor(
        conn: &mut SqliteConnection,
        org_id: &str,
        a: &AnchorRow,
    ) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO audit_anchors (org_id, seq, hash, mac) VALUES (?, ?, ?, ?)
             ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
        )
        .bind(org_id)
        .bind(a.seq)
        .bind(&a.hash)
        .bind(&a.mac)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn anchor(&self, org_id: &str) -> CpResult<Option<AnchorRow>> {
        let row = sqlx::query("SELECT seq, hash, mac FROM audit_anchors WHERE org_id = ?")
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(AnchorRow {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
                mac: r.try_get("mac")?,
            })
        })
        .transpose()
    }

    pub async fn events(
        &self,
        q: &AuditQuery,
        after_seq: i64,
        limit: u32,
    ) -> CpResult<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE org_id = ? AND seq > ?
               AND (? = '' OR type = ?) AND (? = 0 OR time_ms >= ?) AND (? = 0 OR time_ms < ?)
             ORDER BY seq LIMIT ?",
        )
        .bind(&q.org_id)
        .bind(after_seq)
        .bind(&q.kind)
        .bind(&q.kind)
        .bind(q.since_ms)
        .bind(q.since_ms)
        .bind(q.until_ms)
        .bind(q.until_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    pub async fn all_events(&self, org_id: &str) -> CpResult<Vec<EventRow>> {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE org_id = ? ORDER BY seq")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Any org id, live or deleted, by id or slug (audit history outlives orgs).
    pub async fn any_org_id(&self, id_or_slug: &str) -> CpResult<String> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM orgs WHERE id = ? OR slug = ? ORDER BY deleted_at_ms IS NOT NULL, created_at_ms DESC LIMIT 1",
        )
        .bind(id_or_slug)
        .bind(id_or_slug)
        .fetch_optional(&self.pool)
        .await?;
        id.ok_or_else(|| CpError::NotFound(format!("org {id_or_slug:?}")))
    }

    // ------------------------------------------------------------------ rules

    pub async fn rules(conn: &mut SqliteConnection, org_id: &str) -> CpResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT rules FROM orgs WHERE id = ?")
            .bind(org_id)
            .fetch_optional(conn)
            .await?
            .flatten())
    }

    pub async fn set_rules(
        conn: &mut SqliteConnection,
        org_id: &str,
        rules: &[u8],
    ) -> CpResult<()> {
        sqlx::query("UPDATE orgs SET rules = ?, config_version = config_version + 1 WHERE id = ?")
            .bind(rules)
            .bind(org_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn exceptions(
        conn: &mut SqliteConnection,
        org_id: &str,
    ) -> CpResult<Vec<(String, String, String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, package, version, reason, created_at_ms FROM rule_exceptions WHERE org_id = ? ORDER BY package, version",
        )
        .bind(org_id)
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("package")?,
                    r.try_get("version")?,
                    r.try_get("reason")?,
                    r.try_get("created_at_ms")?,
                ))
            })
            .collect()
    }

    pub async fn add_exception(
        conn: &mut SqliteConnection,
        id: &str,
        org_id: &str,
        package: &str,
        version: &str,
        reason: &str,
    ) -> CpResult<()> {
        let res = sqlx::query(
            "INSERT INTO rule_exceptions (id, org_id, package, version, reason, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(org_id)
        .bind(package)
        .bind(version)
        .bind(reason)
        .bind(now_ms())
        .execute(&mut *conn)
        .await;
        match res {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                CpError::AlreadyExists(format!("exception for {package}@{version}")),
            ),
            Err(e) => Err(e.into()),
            Ok(_) => Self::bump_config_version(conn, org_id).await,
        }
    }

    pub async fn remove_exception(
        conn: &mut SqliteConnection,
        org_id: &str,
        id: &str,
    ) -> CpResult<(String, String)> {
        let row =
            sqlx::query("SELECT package, version FROM rule_exceptions WHERE org_id = ? AND id = ?")
                .bind(org_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| CpError::NotFound(format!("exception {id:?}")))?;
        let found: (String, String) = (row.try_get("package")?, row.try_get("version")?);
        sqlx::query("DELETE FROM rule_exceptions WHERE org_id = ? AND id = ?")
            .bind(org_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Self::bump_config_version(conn, org_id).await?;
        Ok(found)
    }

    // ------------------------------------------------------------------ advisories

    pub async fn upsert_advisory(
        conn: &mut SqliteConnection,
        id: &str,
        osv_json: &str,
        summary: &str,
        severity: &str,
        packages: &[String],
    ) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO advisories (id, osv_json, summary, severity, imported_at_ms) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET osv_json = excluded.osv_json, summary = excluded.summary,
               severity = excluded.severity, imported_at_ms = excluded.imported_at_ms",
        )
        .bind(id)
        .bind(osv_json)
        .bind(summary)
        .bind(severity)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM advisory_packages WHERE advisory_id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        for p in packages {
            sqlx::query(
                "INSERT OR IGNORE INTO advisory_packages (advisory_id, package) VALUES (?, ?)",
            )
            .bind(id)
            .bind(p)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// (id, osv json, summary, severity, packages) of advisories, all or about one package.
    pub async fn advisories(
        &self,
        package: Option<&str>,
    ) -> CpResult<Vec<(String, String, String, String, Vec<String>)>> {
        let rows = sqlx::query(
            "SELECT a.id, a.osv_json, a.summary, a.severity, group_concat(p.package, char(10)) AS packages
             FROM advisories a JOIN advisory_packages p ON p.advisory_id = a.id
             WHERE ? IS NULL OR a.id IN (SELECT advisory_id FROM advisory_packages WHERE package = ?)
             GROUP BY a.id ORDER BY a.id",
        )
        .bind(package)
        .bind(package)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let packages: String = r.try_get("packages")?;
                Ok((
                    r.try_get("id")?,
                    r.try_get("osv_json")?,
                    r.try_get("summary")?,
                    r.try_get("severity")?,
                    packages.lines().map(str::to_string).collect(),
                ))
            })
            .collect()
    }

    pub async fn advised_packages(&self) -> CpResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT package FROM advisory_packages ORDER BY package")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    // ------------------------------------------------------------------ admin credentials

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
            "INSERT INTO admin_credentials (id, name, sha256, created_at_ms) VALUES (?, ?, ?, ?)
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
