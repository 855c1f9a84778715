//! The test environment builder: a fixture upstream, a data plane in front of it, a temp dir.

use std::sync::Arc;

use nproxy_tests::faults::FaultProxy;
use nproxy_tests::fixtures::{self, FixturePackage};
use nproxy_tests::procs::{DataPlane, DataPlaneOptions, Storage};
use nproxy_tests::registry::Registry;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub registry: Arc<Registry>,
    /// The fault proxy between the data plane and the upstream, when asked for.
    pub upstream_faults: Option<Arc<FaultProxy>>,
    pub fixtures: Vec<FixturePackage>,
    pub dp: DataPlane,
}

pub struct EnvBuilder {
    faulty_upstream: bool,
    env: Vec<(String, String)>,
    extra: Vec<FixturePackage>,
    storage: Option<Storage>,
}

impl EnvBuilder {
    /// Adds an `NPROXY_*` setting for the data plane.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Puts a `FaultProxy` between the data plane and the upstream (`Env::upstream_faults`).
    pub fn faulty_upstream(mut self) -> Self {
        self.faulty_upstream = true;
        self
    }

    pub fn package(mut self, p: FixturePackage) -> Self {
        self.extra.push(p);
        self
    }

    pub fn storage(mut self, s: Storage) -> Self {
        self.storage = Some(s);
        self
    }

    pub async fn start(self) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fixtures = fixtures::standard();
        fixtures.extend(self.extra);
        let registry = Registry::start(&fixtures).await;
        let upstream_faults = if self.faulty_upstream {
            Some(
                FaultProxy::start(
                    registry
                        .url()
                        .trim_start_matches("http://")
                        .trim_end_matches('/'),
                )
                .await,
            )
        } else {
            None
        };
        let upstream = match &upstream_faults {
            Some(f) => f.url(),
            None => registry.url(),
        };
        let storage = self
            .storage
            .unwrap_or_else(|| Storage::Local(dir.path().join("store")));
        let dp = DataPlane::start(
            &dir.path().join("dp"),
            DataPlaneOptions {
                upstream,
                storage,
                env: self.env,
            },
        )
        .await;
        Env {
            dir,
            registry,
            upstream_faults,
            fixtures,
            dp,
        }
    }
}

impl Env {
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            faulty_upstream: false,
            env: Vec::new(),
            extra: Vec::new(),
            storage: None,
        }
    }

    pub async fn start() -> Env {
        Self::builder().start().await
    }

    pub fn fixture(&self, name: &str) -> &FixturePackage {
        self.fixtures
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }

    /// A data plane URL for a path (the path starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.dp.url())
    }

    pub fn local_store(&self) -> std::path::PathBuf {
        self.dir.path().join("store")
    }
}

/// A client that shows the bytes as sent: no transparent gzip decoding.
pub fn raw_http() -> reqwest::Client {
    nproxy_tests::http_builder()
        .no_gzip()
        .build()
        .expect("client")
}

/// Runs a blocking client (npm, pnpm, yarn) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// `sha512-<base64>` of some bytes, as `dist.integrity` writes it.
pub fn sri_sha512(bytes: &[u8]) -> String {
    nproxy_core::publish::sri_sha512(bytes).0
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
