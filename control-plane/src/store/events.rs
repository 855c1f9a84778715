//! The audit log's tables: `audit_events` (each org's hash chain, appended only) and
//! `audit_anchors` (each chain's MAC'd head). The chain itself is computed in `crate::audit`.

use sqlx::{AnyConnection, Row};

use super::db::{Backend, Db};
use crate::error::CpResult;

/// Which audit events to list (an org, optionally one kind and a time window).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: String,
    pub kind: String,
    pub since_ms: i64,
    pub until_ms: i64,
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

fn event_from_row(r: &sqlx::any::AnyRow) -> CpResult<EventRow> {
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

impl Db {
    pub async fn last_event(conn: &mut AnyConnection, org_id: &str) -> CpResult<Option<EventRow>> {
        let row =
            sqlx::query("SELECT * FROM audit_events WHERE org_id = $1 ORDER BY seq DESC LIMIT 1")
                .bind(org_id)
                .fetch_optional(conn)
                .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// Serialises appends to one org's chain across control planes (PostgreSQL): locks the
    /// org's head row (`audit_anchors`, created empty for a new chain) until the caller's
    /// transaction ends. A second replica appending to the same org waits here, then reads
    /// the head the first one committed. SQLite needs nothing: its writer lock already
    /// admits one write transaction at a time.
    pub async fn lock_chain_head(
        conn: &mut AnyConnection,
        backend: Backend,
        org_id: &str,
    ) -> CpResult<()> {
        if backend != Backend::Postgres {
            return Ok(());
        }
        // A placeholder head for a chain's first event; the append in the same transaction
        // replaces it before commit, so no placeholder is ever seen outside it.
        sqlx::query(
            "INSERT INTO audit_anchors (org_id, seq, hash, mac) VALUES ($1, 0, '', '')
             ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org_id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("SELECT seq FROM audit_anchors WHERE org_id = $1 FOR UPDATE")
            .bind(org_id)
            .fetch_one(&mut *conn)
            .await?;
        Ok(())
    }

    pub async fn has_idempotency_key(
        conn: &mut AnyConnection,
        org_id: &str,
        key: &str,
    ) -> CpResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE org_id = $1 AND idempotency_key = $2",
        )
        .bind(org_id)
        .bind(key)
        .fetch_one(conn)
        .await?;
        Ok(n > 0)
    }

    pub async fn insert_event(
        conn: &mut AnyConnection,
        e: &EventRow,
        idempotency_key: Option<&str>,
    ) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, org_id, seq, time_ms, type, actor, details_json, prev_hash, hash, idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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

    pub async fn set_anchor(conn: &mut AnyConnection, org_id: &str, a: &AnchorRow) -> CpResult<()> {
        sqlx::query(
            "INSERT INTO audit_anchors (org_id, seq, hash, mac) VALUES ($1, $2, $3, $4)
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
        let row = sqlx::query("SELECT seq, hash, mac FROM audit_anchors WHERE org_id = $1")
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
            "SELECT * FROM audit_events WHERE org_id = $1 AND seq > $2
               AND ($3 = '' OR type = $4) AND ($5 = 0 OR time_ms >= $6) AND ($7 = 0 OR time_ms < $8)
             ORDER BY seq LIMIT $9",
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
        let rows = sqlx::query("SELECT * FROM audit_events WHERE org_id = $1 ORDER BY seq")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}
