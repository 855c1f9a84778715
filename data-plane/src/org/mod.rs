//! What the data plane knows about orgs: their config snapshots, published by the control
//! plane to Redis (or an in-process bus under `nproxyctl dev`). A snapshot is loaded on first
//! use, kept in memory (no Redis round-trip per request), dropped when an invalidation names
//! its org, and kept while Redis is unreachable. Without a config source every org is open:
//! anonymous, public packages only.
//!
//! `snapshot` is the model (an org's config, its tokens, who a request is), `configs` the
//! in-memory cache that loads, follows invalidations and batches token use, `source` the
//! contract a config source fulfils, `redis` the Redis implementation of it, and `error`
//! what the layer refuses (`AuthError`) or cannot answer (`OrgError`).

mod configs;
pub mod error;
mod redis;
mod snapshot;
mod source;

pub use configs::{OrgConfigs, PackageAdvisories};
pub use redis::{LazyRedisSource, RedisSource};
pub use snapshot::{OrgConfig, OrgView, Principal, RouteEntry, TokenGrant};
pub use source::{ConfigSource, InternalWriteListener, Invalidation, PackageWriteListener};
