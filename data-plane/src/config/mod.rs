//! The data plane's configuration: defaults, then a TOML file, then `NPROXY_*` environment
//! variables (nested keys joined by `__`, e.g. `NPROXY_STORAGE__KIND=s3`), then flags.
//! Validated once at start; every error names the key that is wrong.

use std::path::PathBuf;

use figment::Figment;
use serde::{Deserialize, Serialize};

mod settings;
pub use settings::{url_base, Cidr, ConfigError, Settings};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the npm-facing HTTP server listens on.
    pub listen: String,
    /// Address of the Prometheus `/metrics` listener; empty disables it. Kept off the npm
    /// listener because `metrics` is also a package name.
    pub metrics_listen: String,
    /// The registry nproxy fetches public packages from. May carry a path. Empty (the
    /// default): no upstream, as in an air-gapped network; only what is stored (e.g. by
    /// `nproxyctl bundle import`) is served, anything else is a 404.
    pub upstream: String,
    /// Connect timeout to the upstream, milliseconds.
    pub upstream_connect_timeout_ms: u64,
    /// Time allowed for a whole packument fetch (headers and body), milliseconds.
    pub upstream_timeout_ms: u64,
    /// Time from sending a request to the upstream's response headers (connect included),
    /// milliseconds. A black-holed upstream costs this much, once, before the breaker opens.
    pub upstream_first_byte_timeout_ms: u64,
    /// Longest silence between two body chunks from the upstream, milliseconds: a tarball
    /// trickling at 1 byte/s is cut here, not held for a whole-request timeout.
    pub upstream_idle_timeout_ms: u64,
    /// Largest tarball taken from the upstream, bytes (announced or, without
    /// `Content-Length`, counted while it arrives).
    pub upstream_max_tarball_bytes: u64,
    /// Consecutive upstream failures (unreachable, timed out, 5xx) that open the circuit
    /// breaker; 0 disables it.
    pub upstream_breaker_failures: u32,
    /// While the breaker is open, how often a probe asks the upstream, seconds.
    pub upstream_breaker_probe_secs: u64,
    /// The URL clients use to reach this data plane, with any path prefix. When unset, it is
    /// derived per request from `Host` (or `X-Forwarded-*` from trusted proxies).
    pub public_url: Option<String>,
    /// Addresses or CIDR ranges whose `X-Forwarded-Host`/`-Proto` headers are believed.
    pub trusted_proxies: Vec<String>,
    /// How a request's org is found: `single` (always the default org), `host`
    /// (`{org}.{base_domain}`, else the default org) or `path` (`/{org}/…`).
    pub org_mode: OrgMode,
    pub base_domain: Option<String>,
    pub default_org: Option<String>,
    /// How long a cached packument is served before it is revalidated upstream, seconds.
    pub packument_max_age_secs: u64,
    /// Past its max age, how much longer a cached packument is still answered at once while
    /// one refresh runs in the background, seconds. 0: strict freshness (clients wait on the
    /// upstream for every stale packument; the copy is still served if the upstream fails).
    pub stale_while_revalidate_secs: u64,
    /// How long an upstream 404 is remembered, seconds.
    pub negative_cache_secs: u64,
    /// Bound on the in-memory cache of ready-to-send packuments (held gzip'd), bytes.
    pub memory_cache_bytes: u64,
    /// Packuments parsed, merged or rendered at once, by document size, bytes. Each costs a
    /// few times its size while worked on; one larger than this runs alone.
    pub packument_work_bytes: u64,
    /// Bound on small tarballs kept in memory (each at most 512 KiB), bytes; 0 disables.
    pub tarball_memory_cache_bytes: u64,
    /// Cold tarballs up to this size are verified before the first byte goes out, so a bad
    /// one gets a clean 502; larger ones stream while verified and are cut off on mismatch.
    pub verify_before_send_bytes: u64,
    /// Worker threads for the HTTP server; 0 means one per core.
    pub threads: usize,
    /// How long an idle keep-alive connection is kept between requests, seconds.
    pub keepalive_idle_secs: u64,
    /// Client connections served at once; one more gets a 503 and is closed. 0: derived
    /// from the open-file limit, keeping half of it for the store and the upstream.
    pub max_connections: usize,
    /// A new connection's first byte, and a whole request header once begun, must arrive
    /// within this many seconds, however slowly the bytes are paced.
    pub header_timeout_secs: u64,
    /// A whole request body must arrive within this many seconds of its header.
    pub body_timeout_secs: u64,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Redis the control plane publishes org config to (`redis://host:port`). Unset: every
    /// org is open (anonymous, public packages only).
    pub redis_url: Option<String>,
    /// How often held org configs are re-read even without an invalidation, seconds.
    pub org_config_refresh_secs: u64,
    /// How long an audit outbox entry waits for the change it describes to land before it
    /// is dropped as abandoned (the change failed, or its data plane died first), seconds.
    pub audit_outbox_grace_secs: u64,
    /// On SIGTERM, how long readiness (`/-/health/ready`) answers 503 while everything is
    /// still served, so a load balancer takes this process out of rotation first, seconds.
    pub drain_secs: u64,
    /// After the drain, how long open requests get to finish before the process exits
    /// anyway (it exits as soon as none is left), seconds.
    pub shutdown_grace_secs: u64,
    /// The control plane's gRPC URL, or several, comma-separated (replicas, failed over in
    /// turn): publishing internal packages signs and audits there.
    pub control_plane_url: Option<String>,
    /// This data plane's credential for the control plane.
    pub control_plane_token: Option<String>,
    pub storage: StorageConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgMode {
    Single,
    Host,
    Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `local` or `s3`.
    pub kind: StorageKind,
    /// Root folder of the local store.
    pub path: PathBuf,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Local,
    S3,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Custom endpoint for S3-compatible servers; unset means AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Key prefix inside the bucket, e.g. `nproxy/`.
    pub prefix: String,
    pub path_style: bool,
    /// Falls back to `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Connect deadline for every S3 call, milliseconds (0: 3000).
    #[serde(default)]
    pub connect_timeout_ms: u64,
    /// Deadline for the first byte of an S3 answer, milliseconds, for every call but file
    /// uploads (0: 20000). The SDK retries a timed-out call up to three times in all.
    #[serde(default)]
    pub first_byte_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4873".into(),
            metrics_listen: "127.0.0.1:9464".into(),
            upstream: String::new(),
            upstream_connect_timeout_ms: 5_000,
            upstream_timeout_ms: 30_000,
            upstream_first_byte_timeout_ms: 10_000,
            upstream_idle_timeout_ms: 10_000,
            upstream_max_tarball_bytes: 1024 * 1024 * 1024,
            upstream_breaker_failures: 5,
            upstream_breaker_probe_secs: 5,
            public_url: None,
            trusted_proxies: Vec::new(),
            org_mode: OrgMode::Single,
            base_domain: None,
            default_org: Some("default".into()),
            packument_max_age_secs: 300,
            stale_while_revalidate_secs: 86_400,
            negative_cache_secs: 30,
            // gzip'd documents: ~2,500 typical packuments. With the tarball cache and the
            // work budget this keeps a data plane under 100 MiB resident (bench/npm-ci.sh).
            memory_cache_bytes: 32 * 1024 * 1024,
            packument_work_bytes: 16 * 1024 * 1024,
            tarball_memory_cache_bytes: 16 * 1024 * 1024,
            verify_before_send_bytes: 1024 * 1024,
            threads: 0,
            keepalive_idle_secs: 60,
            max_connections: 0,
            header_timeout_secs: 20,
            body_timeout_secs: 600,
            log_format: LogFormat::Text,
            redis_url: None,
            org_config_refresh_secs: 30,
            // Longer than one store write with its retries (see `internal::outbox`).
            audit_outbox_grace_secs: 120,
            drain_secs: 5,
            shutdown_grace_secs: 30,
            control_plane_url: None,
            control_plane_token: None,
            storage: StorageConfig {
                kind: StorageKind::Local,
                path: PathBuf::from("./nproxy-data"),
                s3: S3Config {
                    region: "us-east-1".into(),
                    ..S3Config::default()
                },
            },
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `NPROXY_*` variables.
    pub fn figment(file: Option<&std::path::Path>) -> Figment {
        nproxy_common::config::layered(Config::default(), file)
    }

    pub fn load(figment: Figment) -> Result<Config, ConfigError> {
        figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }
}

#[cfg(test)]
mod tests;
