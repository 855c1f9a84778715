//! The validated configuration the data plane runs on (`Settings`), and the checks that
//! produce it from a loaded `Config`: every error names the key that is wrong.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::Url;

use super::{Config, LogFormat, OrgMode, StorageConfig, StorageKind};
use nproxy_core::names::OrgSlug;

/// The validated form the server runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    /// `None`: no upstream (an air-gapped registry): only stored packages are served.
    pub upstream: Option<Url>,
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
    pub drain: Duration,
    pub shutdown_grace: Duration,
    /// Every control plane endpoint (failed over in turn) and this data plane's token.
    pub control_plane: Option<(Vec<String>, String)>,
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
        let upstream = match self.upstream.trim() {
            "" => None,
            u => Some(parse_http_url("upstream", u)?),
        };
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
            (Some(u), Some(t)) => {
                let urls = nproxy_proto::endpoints::parse_list(&u)
                    .unwrap_or_default()
                    .iter()
                    .map(|one| parse_http_url("control_plane_url", one).map(|url| url_base(&url)))
                    .collect::<Result<Vec<_>, _>>()?;
                if urls.is_empty() {
                    return Err(invalid("control_plane_url", "lists no URL"));
                }
                Some((urls, t))
            }
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
        if self.drain_secs > 3600 {
            return Err(invalid("drain_secs", "must be at most 3600"));
        }
        if self.shutdown_grace_secs > 3600 {
            return Err(invalid("shutdown_grace_secs", "must be at most 3600"));
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
            drain: Duration::from_secs(self.drain_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
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
