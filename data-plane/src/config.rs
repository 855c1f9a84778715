//! The data plane's configuration: defaults, then a TOML file, then `NPROXY_*` environment
//! variables (nested keys joined by `__`, e.g. `NPROXY_STORAGE__KIND=s3`), then flags.
//! Validated once at start; every error names the key that is wrong.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

use nproxy_core::names::OrgSlug;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the npm-facing HTTP server listens on.
    pub listen: String,
    /// Address of the Prometheus `/metrics` listener; empty disables it. Kept off the npm
    /// listener because `metrics` is also a package name.
    pub metrics_listen: String,
    /// The registry nproxy fetches public packages from. May carry a path.
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
    /// The control plane's gRPC URL: publishing internal packages signs and audits there.
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

/// The validated form the server runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub upstream: Url,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub upstream_first_byte_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub upstream_max_tarball_bytes: u64,
    pub upstream_breaker_failures: u32,
    pub upstream_breaker_probe: Duration,
    pub public_url: Option<Url>,
    pub trusted_proxies: Vec<Cidr>,
    pub org_mode: OrgMode,
    pub base_domain: Option<String>,
    pub default_org: Option<OrgSlug>,
    pub packument_max_age: Duration,
    pub stale_while_revalidate: Duration,
    pub negative_cache: Duration,
    pub memory_cache_bytes: u64,
    pub packument_work_bytes: u64,
    pub tarball_memory_cache_bytes: u64,
    pub verify_before_send_bytes: u64,
    pub threads: usize,
    pub keepalive_idle: Duration,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub log_format: LogFormat,
    pub redis_url: Option<String>,
    pub org_config_refresh: Duration,
    pub audit_outbox_grace: Duration,
    pub control_plane: Option<(Url, String)>,
    pub storage: StorageConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// An address range for `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `NPROXY_*` variables.
    pub fn figment(file: Option<&std::path::Path>) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            f = f.merge(Toml::file_exact(file));
        }
        f.merge(Env::prefixed("NPROXY_").split("__"))
    }

    pub fn load(figment: Figment) -> Result<Config, ConfigError> {
        figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }

    pub fn validate(self) -> Result<Settings, ConfigError> {
        let listen = self
            .listen
            .parse()
            .map_err(|e| invalid("listen", format!("{:?} is not host:port: {e}", self.listen)))?;
        let metrics_listen = if self.metrics_listen.is_empty() {
            None
        } else {
            Some(self.metrics_listen.parse().map_err(|e| {
                invalid(
                    "metrics_listen",
                    format!("{:?} is not host:port: {e}", self.metrics_listen),
                )
            })?)
        };
        if self.upstream.is_empty() {
            return Err(invalid(
                "upstream",
                "is required (for example --upstream \"$(npm config get registry)\")",
            ));
        }
        let upstream = parse_http_url("upstream", &self.upstream)?;
        let public_url = self
            .public_url
            .as_deref()
            .map(|u| parse_http_url("public_url", u))
            .transpose()?;
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    invalid(
                        "trusted_proxies",
                        format!("{s:?} is not an address or CIDR"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let default_org = self
            .default_org
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| OrgSlug::parse(s).map_err(|e| invalid("default_org", e.to_string())))
            .transpose()?;
        let base_domain = self
            .base_domain
            .filter(|s| !s.is_empty())
            .map(|d| d.trim_start_matches('.').to_ascii_lowercase());
        match self.org_mode {
            OrgMode::Host if base_domain.is_none() => {
                return Err(invalid(
                    "base_domain",
                    "is required when org_mode = \"host\"",
                ))
            }
            OrgMode::Single if default_org.is_none() => {
                return Err(invalid(
                    "default_org",
                    "is required when org_mode = \"single\"",
                ))
            }
            _ => {}
        }
        if self.upstream_timeout_ms == 0 || self.upstream_connect_timeout_ms == 0 {
            return Err(invalid("upstream_timeout_ms", "must be greater than 0"));
        }
        for (key, v) in [
            (
                "upstream_first_byte_timeout_ms",
                self.upstream_first_byte_timeout_ms,
            ),
            ("upstream_idle_timeout_ms", self.upstream_idle_timeout_ms),
        ] {
            if v == 0 || v > 3_600_000 {
                return Err(invalid(key, "must be between 1 and 3600000"));
            }
        }
        if self.upstream_max_tarball_bytes < 1024 * 1024 {
            return Err(invalid(
                "upstream_max_tarball_bytes",
                "must be at least 1 MiB",
            ));
        }
        if self.upstream_breaker_probe_secs == 0 || self.upstream_breaker_probe_secs > 3600 {
            return Err(invalid(
                "upstream_breaker_probe_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.storage.kind == StorageKind::S3 && self.storage.s3.bucket.is_empty() {
            return Err(invalid(
                "storage.s3.bucket",
                "is required for storage.kind = \"s3\"",
            ));
        }
        if let Some(ep) = &self.storage.s3.endpoint {
            parse_http_url("storage.s3.endpoint", ep)?;
        }
        let redis_url = self.redis_url.filter(|u| !u.is_empty());
        if let Some(u) = &redis_url {
            if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix:"))
            {
                return Err(invalid(
                    "redis_url",
                    format!("{u:?} must be a redis:// URL"),
                ));
            }
        }
        let control_plane = match (
            self.control_plane_url.filter(|u| !u.is_empty()),
            self.control_plane_token,
        ) {
            (Some(u), Some(t)) => Some((parse_http_url("control_plane_url", &u)?, t)),
            (Some(_), None) => {
                return Err(invalid(
                    "control_plane_token",
                    "is required with control_plane_url",
                ))
            }
            (None, _) => None,
        };
        if self.keepalive_idle_secs == 0 || self.keepalive_idle_secs > 3600 {
            return Err(invalid("keepalive_idle_secs", "must be between 1 and 3600"));
        }
        if self.header_timeout_secs == 0 || self.header_timeout_secs > 600 {
            return Err(invalid("header_timeout_secs", "must be between 1 and 600"));
        }
        if self.body_timeout_secs < self.header_timeout_secs || self.body_timeout_secs > 86_400 {
            return Err(invalid(
                "body_timeout_secs",
                "must be at least header_timeout_secs and at most 86400",
            ));
        }
        if self.max_connections > 1_000_000 {
            return Err(invalid(
                "max_connections",
                "must be at most 1000000 (0: automatic)",
            ));
        }
        if self.audit_outbox_grace_secs == 0 {
            return Err(invalid("audit_outbox_grace_secs", "must be at least 1"));
        }
        if self.org_config_refresh_secs == 0 {
            return Err(invalid("org_config_refresh_secs", "must be at least 1"));
        }
        Ok(Settings {
            listen,
            metrics_listen,
            upstream,
            upstream_connect_timeout: Duration::from_millis(self.upstream_connect_timeout_ms),
            upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
            upstream_first_byte_timeout: Duration::from_millis(self.upstream_first_byte_timeout_ms),
            upstream_idle_timeout: Duration::from_millis(self.upstream_idle_timeout_ms),
            upstream_max_tarball_bytes: self.upstream_max_tarball_bytes,
            upstream_breaker_failures: self.upstream_breaker_failures,
            upstream_breaker_probe: Duration::from_secs(self.upstream_breaker_probe_secs),
            public_url,
            trusted_proxies,
            org_mode: self.org_mode,
            base_domain,
            default_org,
            packument_max_age: Duration::from_secs(self.packument_max_age_secs),
            stale_while_revalidate: Duration::from_secs(self.stale_while_revalidate_secs),
            negative_cache: Duration::from_secs(self.negative_cache_secs),
            memory_cache_bytes: self.memory_cache_bytes,
            packument_work_bytes: self.packument_work_bytes,
            tarball_memory_cache_bytes: self.tarball_memory_cache_bytes,
            verify_before_send_bytes: self.verify_before_send_bytes,
            threads: self.threads,
            keepalive_idle: Duration::from_secs(self.keepalive_idle_secs),
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            log_format: self.log_format,
            redis_url,
            org_config_refresh: Duration::from_secs(self.org_config_refresh_secs),
            audit_outbox_grace: Duration::from_secs(self.audit_outbox_grace_secs),
            control_plane,
            storage: self.storage,
        })
    }
}

fn parse_http_url(key: &'static str, s: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(s).map_err(|e| invalid(key, format!("{s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            key,
            format!("{s:?} must be an http(s) URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            key,
            format!("{s:?} may not have a query or fragment"),
        ));
    }
    // One canonical form, without a trailing slash, so joining paths is plain concatenation.
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

/// A URL's text without the trailing slash `Url` keeps on an empty path.
pub fn url_base(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config {
            upstream: "http://127.0.0.1:1/registry/".into(),
            ..Config::default()
        }
    }

    #[test]
    fn defaults_with_upstream_validate() {
        let s = base().validate().unwrap();
        assert_eq!(url_base(&s.upstream), "http://127.0.0.1:1/registry");
        assert_eq!(s.default_org.unwrap().as_str(), "default");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::default().validate().unwrap_err().to_string();
        assert!(e.contains("`upstream`"), "{e}");
        let e = Config {
            listen: "nope".into(),
            ..base()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`listen`"), "{e}");
        let e = Config {
            org_mode: OrgMode::Host,
            ..base()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`base_domain`"), "{e}");
        let e = Config {
            trusted_proxies: vec!["10.0.0.0/99".into()],
            ..base()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("`trusted_proxies`"), "{e}");
        let mut c = base();
        c.storage.kind = StorageKind::S3;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`storage.s3.bucket`"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn env_overrides_file_and_unknown_keys_fail() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "n.toml",
                "upstream = \"http://a.test\"\n[storage]\nkind = \"local\"\npath = \"/x\"\n",
            )?;
            jail.set_env("NPROXY_STORAGE__PATH", "/y");
            let c = Config::load(Config::figment(Some(std::path::Path::new("n.toml")))).unwrap();
            assert_eq!(c.storage.path, PathBuf::from("/y"));
            assert_eq!(c.upstream, "http://a.test");
            jail.create_file("bad.toml", "upstrem = \"http://a.test\"\n")?;
            let e = Config::load(Config::figment(Some(std::path::Path::new("bad.toml"))))
                .unwrap_err()
                .to_string();
            assert!(e.contains("upstrem"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("x").is_none());
    }
}
