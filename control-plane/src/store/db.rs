//! The connection pool and the two kinds of transaction, on either backend:
//! - **SQLite** (a file path; the embedded default): one writer at a time, so every write
//!   transaction first takes an in-process writer lock. Writers queue here instead of
//!   failing with `SQLITE_BUSY` when two deferred transactions both try to upgrade to
//!   writing. One process per file: SQLite is not for several control planes.
//! - **PostgreSQL** (`postgres://…`): many writers, in many control planes. A write
//!   transaction takes no process lock; what must be serialised is serialised by the
//!   database (the per-org chain head row, see `events::lock_chain_head`), so two replicas
//!   appending to one org's audit chain queue on that row.
//!
//! Queries are written once, in SQL both accept (`$n` placeholders, `ON CONFLICT`), through
//! sqlx's `Any` driver.

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor};

use crate::error::{CpError, CpResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Which backend a `database` setting names: a `postgres://` (or `postgresql://`) URL,
    /// else a SQLite file path (optionally as a `sqlite://` URL).
    pub fn of(database: &str) -> Backend {
        if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

pub struct Db {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// SQLite only: the one writer.
    write: Option<tokio::sync::Mutex<()>>,
}

/// A write transaction (holding the writer lock on SQLite).
pub struct Write<'a> {
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    pub(super) backend: Backend,
    _guard: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Write<'_> {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn commit(self) -> CpResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A read transaction: several queries that see one consistent state of the database,
/// without the writer lock, so a snapshot or a listing never queues behind a write.
///
/// Why it is as consistent as reading under the writer lock:
/// - SQLite is in WAL mode (`open`), where readers and the writer never wait for each other
///   and every statement of a transaction sees the database as of the transaction's first
///   read (snapshot isolation). `BEGIN` is deferred: a reading transaction holds only a
///   shared lock, never the reserved lock writers take, so it can't make a writer fail with
///   `SQLITE_BUSY` either.
/// - PostgreSQL runs it `REPEATABLE READ READ ONLY`: one snapshot for the whole
///   transaction, taken at its first statement.
///
/// Either way a write committed meanwhile is invisible to it and an uncommitted one always
/// is; a read that starts after a commit has returned sees that commit, so publishing after
/// a commit publishes what was committed. There is no `commit`: dropping a `Read` rolls it
/// back, so nothing written through it by mistake could ever persist.
pub struct Read {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Read {
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// Connections per control plane. PostgreSQL's default `max_connections` is 100: two
/// replicas at 16 leave most of it to migrations, backups and operators.
const POOL_SIZE: u32 = 16;

impl Db {
    /// Opens (creating a SQLite file if missing) and migrates the database `database` names.
    pub async fn open(database: &str) -> CpResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(database);
        let url = match backend {
            Backend::Postgres => database.to_string(),
            Backend::Sqlite => {
                let path = database.strip_prefix("sqlite://").unwrap_or(database);
                let path = std::path::Path::new(path);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| CpError::Internal(format!("database folder: {e}")))?;
                }
                format!("sqlite://{}?mode=rwc", path.display())
            }
        };
        let opts: AnyConnectOptions = url
            .parse()
            .map_err(|e| CpError::Internal(format!("database URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => POOL_SIZE,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers don't wait for the writer (`Read` relies on it).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let db = Db {
            pool,
            backend,
            write: (backend == Backend::Sqlite).then(|| tokio::sync::Mutex::new(())),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn write(&self) -> CpResult<Write<'_>> {
        let guard = match &self.write {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(Write {
            tx,
            backend: self.backend,
            _guard: guard,
        })
    }

    pub async fn read(&self) -> CpResult<Read> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
        }
        Ok(Read { tx })
    }

    /// Closes every connection (a clean shutdown: PostgreSQL sees no dropped sessions).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
