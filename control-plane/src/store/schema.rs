//! The schema: embedded migrations (`control-plane/migrations/`), applied in order, each
//! once, in one write transaction when the database is opened.

use nproxy_common::time::now_ms;

use super::db::Db;
use crate::error::CpResult;

/// Embedded migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_rules.sql")),
];

impl Db {
    pub(super) async fn migrate(&self) -> CpResult<()> {
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
}
