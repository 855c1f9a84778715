//! The connection pool and the two kinds of transaction. SQLite allows one writer at a time,
//! so every write transaction first takes the in-process writer lock: writers queue here
//! instead of failing with `SQLITE_BUSY` when two deferred transactions both try to upgrade
//! to writing. Reads take no lock (see `Read`).

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

/// A read transaction: several queries that see one consistent state of the database,
/// without the writer lock, so a snapshot or a listing never queues behind a write.
///
/// Why this is as consistent as reading under the writer lock: the database is in WAL mode
/// (`open`), where readers and the writer never wait for each other and every statement of
/// a transaction sees the database as of the transaction's first read (snapshot isolation):
/// a write committed meanwhile is invisible to it, an uncommitted one always is. A read that
/// starts after a commit has returned sees that commit, so publishing after a commit still
/// publishes what was committed. `BEGIN` is deferred: a reading transaction holds only a
/// shared lock, never the reserved lock writers take, so it can't make a writer fail with
/// `SQLITE_BUSY` either.
///
/// There is no `commit`: dropping a `Read` rolls it back, so nothing written through it by
/// mistake could ever persist.
pub struct Read {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
}

impl Read {
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
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
            // WAL: readers don't wait for the writer (`Read` relies on it).
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

    pub async fn read(&self) -> CpResult<Read> {
        Ok(Read {
            tx: self.pool.begin().await?,
        })
    }
}
