//! The schema: embedded migrations (`control-plane/migrations/{sqlite,postgres}/`), the same
//! numbered steps in each backend's dialect, applied in order, each once, in one write
//! transaction when the database is opened. On PostgreSQL several control planes may start
//! at once: the transaction first takes a transaction-scoped advisory lock, so one migrates
//! and the others then find every step done.

use nproxy_common::time::now_ms;
use sqlx::Executor;

use super::db::{Backend, Db};
use crate::error::CpResult;

/// Embedded migrations, applied in order, each once.
const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_rules.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_npm_trust.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_upstream_routes.sql"),
    ),
];

const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_rules.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_npm_trust.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_upstream_routes.sql"),
    ),
];

/// The advisory lock key migrations hold on PostgreSQL (any fixed number: ASCII "nprxmig").
const MIGRATION_LOCK: i64 = 0x006e_7072_786d_6967;

impl Db {
    pub(super) async fn migrate(&self) -> CpResult<()> {
        let mut w = self.write().await?;
        let steps = match self.backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => {
                // Selected from, not selected: `void` is no type sqlx can return.
                sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                    .bind(MIGRATION_LOCK)
                    .execute(w.conn())
                    .await?;
                POSTGRES
            }
        };
        w.conn()
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
            )
            .await?;
        for (version, sql) in steps {
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(w.conn())
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sql).execute(w.conn()).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at_ms) VALUES ($1, $2)")
                .bind(version)
                .bind(now_ms())
                .execute(w.conn())
                .await?;
        }
        w.commit().await
    }
}
