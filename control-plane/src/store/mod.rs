//! The control plane's database layer: SQLite through sqlx, runtime-checked queries in
//! portable SQL so a PostgreSQL backend can follow. All writes of one mutation run in one
//! transaction together with its audit event, under a writer lock (SQLite has one writer);
//! reads never take that lock (WAL mode: see `db::Read`).
//!
//! One file per table group, each adding its queries to `Db`: `orgs`, `tokens`, `keys`
//! (signing keys), `events` (the audit log and its anchors), `rules` (rules and exceptions),
//! `advisories`, `admins` (admin credentials). `db` holds the pool and the transactions,
//! `schema` the migrations.

mod admins;
mod advisories;
mod db;
mod events;
mod keys;
mod orgs;
mod rules;
mod schema;
mod tokens;

pub use admins::AdminRow;
pub use db::{Db, Read, Write};
pub use events::{AnchorRow, AuditQuery, EventRow};
pub use keys::KeyRow;
pub use nproxy_common::time::now_ms;
pub use orgs::OrgRow;
pub use tokens::TokenRow;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests;
