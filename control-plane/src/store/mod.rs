//! The control plane's database layer: SQLite (embedded, one control plane) or PostgreSQL
//! (several control planes on one database) through sqlx's `Any` driver, with runtime
//! queries written once in SQL both accept. All writes of one mutation run in one
//! transaction together with its audit event; reads run in snapshot transactions that never
//! wait for a writer (see `db::Read`).
//!
//! One file per table group, each adding its queries to `Db`: `orgs`, `tokens`, `keys`
//! (signing keys), `events` (the audit log and its anchors), `rules` (rules and exceptions),
//! `advisories`, `admins` (admin credentials), `trusted` (trusted OIDC publishers),
//! `upstream_routes` (per-org upstreams, credentials sealed). `db`
//! holds the pool and the transactions, `schema` the migrations.

mod admins;
mod advisories;
mod db;
mod events;
mod keys;
mod orgs;
mod rules;
mod schema;
mod tokens;
mod trusted;
mod upstream_routes;

pub use admins::AdminRow;
pub use db::{Backend, Db, Read, Write};
pub use events::{AnchorRow, AuditQuery, EventRow};
pub use keys::KeyRow;
pub use nproxy_common::time::now_ms;
pub use orgs::OrgRow;
pub use tokens::TokenRow;
pub use trusted::TrustedPublisherRow;
pub use upstream_routes::UpstreamRouteRow;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A fresh database for a test: a SQLite file in a temporary folder (returned, to keep it
/// alive), or a database of its own on the shared PostgreSQL test server.
#[cfg(test)]
pub(crate) async fn test_db(b: Backend) -> (Option<tempfile::TempDir>, Db) {
    match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Db::open(&dir.path().join("cp.db").display().to_string())
                .await
                .expect("open sqlite");
            (Some(dir), db)
        }
        Backend::Postgres => {
            let url = nproxy_test_postgres::database_url();
            let db = Db::open(&url).await.expect("open postgres");
            assert_eq!(db.backend(), Backend::Postgres);
            (None, db)
        }
    }
}

/// Runs each listed `async fn(Backend)` as two tests, `sqlite::<name>` and `postgres::<name>`.
#[cfg(test)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}

#[cfg(test)]
pub(crate) use on_both_backends;

#[cfg(test)]
mod tests;
