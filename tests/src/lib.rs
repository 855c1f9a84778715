//! Harness for nproxy's cross-component tests: fixture packages, a local upstream registry,
//! real data plane processes, a real S3-compatible server and real npm clients.

pub mod clients;
pub mod control;
pub mod fixtures;
pub mod procs;
pub mod registry;

/// An HTTP client builder for tests (reqwest is built without a bundled crypto provider).
pub fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    http_builder().build().expect("http client")
}
