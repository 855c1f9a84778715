//! Public packages: the packument cache and its revalidation (`packuments`), cached and
//! cold tarballs (`tarballs`), the upstream client with its deadlines (`upstream`) and
//! circuit breaker (`breaker`), and integrity checking (`integrity`).

pub mod breaker;
pub mod byte_cache;
pub mod doc_budget;
pub mod error;
pub mod health;
pub mod integrity;
pub mod packuments;
pub mod render;
pub mod routes;
pub mod serve;
pub mod tarballs;
pub mod upstream;
pub mod upstream_body;
pub mod upstream_error;
