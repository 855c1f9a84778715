//! The connection pool and write transactions. SQLite allows one writer at a time, so every
//! write transaction first takes the in-process writer lock: writers queue here instead of
//! failing with `SQLITE_BUSY` when two deferred transactions both try to upgrade to writing.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};

use crate::error::{CpError, CpResult};

pub struct Db {
    pub(super) pool: SqlitePool,
    write: tokio::sync::Mutex<()>,
}

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

    pub async fn write(&self) -> CpResult<Write<'_>> {
        let guard = self.write.lock().await;
        let tx = self.pool.begin().await?;
        Ok(Write { tx, _guard: guard })
    }
}
