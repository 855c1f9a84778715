//! Harness for nproxy's cross-component tests: fixture packages, a local upstream registry
//! (signing like the public one), a local OIDC issuer, real data plane processes, a real
//! S3-compatible server, real npm clients and npm's own signature verifier.

pub mod clients;
pub mod control;
pub mod faults;
pub mod fixtures;
pub mod haproxy;
pub mod manifest;
pub mod npm_keys;
pub mod oidc;
pub mod procs;
pub mod registry;
pub mod search_fixture;
pub mod stack;
pub mod verify;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some` or `within` has passed (then panics with `what`).
/// Returns the value and how long it took: tests assert mechanisms with a generous bound,
/// never timings.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An HTTP client builder for tests (reqwest is built without a bundled crypto provider).
pub fn http_builder() -> reqwest::ClientBuilder {
    nproxy_common::tls::install_crypto_provider();
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    http_builder().build().expect("http client")
}
