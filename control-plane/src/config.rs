//! The control plane's configuration: defaults, a TOML file, `NPROXY_*` variables, flags.

use std::net::SocketAddr;
use std::time::Duration;

use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::secrets::MasterKey;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    pub listen: String,
    /// The JSON/HTTP admin API's listen address (`/api/v1`, same credentials as gRPC; its own
    /// listener, as `/api/v1` on the registry host would be a package named `api`). Empty:
    /// not served.
    pub http_listen: String,
    /// Where the control plane keeps its state: a SQLite file path (one control plane), or a
    /// `postgres://user:password@host:port/db` URL (any number of control planes sharing it;
    /// `?sslmode=require` for TLS).
    pub database: String,
    /// Redis URL (`redis://host:port/db`); empty runs without publishing (tests, dev).
    pub redis_url: String,
    /// Base64 of 32 random bytes (`openssl rand -base64 32`): encrypts private signing keys
    /// and anchors the audit chain. Losing it loses every signing key.
    pub master_key: String,
    /// An admin bearer token to accept (hashed at start). If no admin credential exists and
    /// none is configured, one is created and printed once on first start.
    pub admin_token: Option<String>,
    /// The data plane's bearer token: allowed only to sign, hand over audit events and read
    /// org config.
    pub data_plane_token: Option<String>,
    /// How often every org is written to Redis again, so a flushed Redis recovers.
    pub reconcile_interval_secs: u64,
    /// On SIGTERM or SIGINT: how long gRPC health reports NOT_SERVING (so load balancers and
    /// clients move to another replica) before the listener closes; calls under way then
    /// finish before the process exits.
    pub drain_secs: u64,
    /// Lifetime of the publish tokens trusted publishing mints (a CI job's OIDC id token
    /// exchanged for a token good for one package): 1 to 3600 seconds.
    pub trusted_publishing_token_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7443".into(),
            http_listen: String::new(),
            database: "./nproxy-control.db".into(),
            redis_url: String::new(),
            master_key: String::new(),
            admin_token: None,
            data_plane_token: None,
            reconcile_interval_secs: 60,
            drain_secs: 5,
            trusted_publishing_token_ttl_secs: 900,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub http_listen: Option<SocketAddr>,
    pub database: String,
    pub redis_url: Option<String>,
    pub master_key: MasterKey,
    pub admin_token: Option<String>,
    pub data_plane_token: Option<String>,
    pub reconcile_interval: Duration,
    pub drain: Duration,
    pub trusted_publishing_token_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    pub fn figment(file: Option<&std::path::Path>) -> Figment {
        nproxy_common::config::layered(Config::default(), file)
    }

    pub fn load(f: Figment) -> Result<Config, ConfigError> {
        f.extract().map_err(|e| ConfigError::Load(Box::new(e)))
    }

    pub fn validate(self) -> Result<Settings, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let listen = self
            .listen
            .parse()
            .map_err(|e| invalid("listen", format!("{:?} is not host:port: {e}", self.listen)))?;
        let http_listen = http_listen(&self.http_listen)?;
        if http_listen == Some(listen) {
            return Err(invalid(
                "http_listen",
                format!("{listen} is already `listen` (gRPC): give the HTTP API its own port"),
            ));
        }
        if self.master_key.is_empty() {
            return Err(invalid(
                "master_key",
                "is required: base64 of 32 random bytes (openssl rand -base64 32)".into(),
            ));
        }
        let master_key =
            MasterKey::from_base64(&self.master_key).map_err(|m| invalid("master_key", m))?;
        if self.database.trim().is_empty() {
            return Err(invalid(
                "database",
                "is required: a SQLite file path or a postgres:// URL".into(),
            ));
        }
        if crate::store::Backend::of(&self.database) == crate::store::Backend::Postgres
            && self
                .database
                .parse::<sqlx::postgres::PgConnectOptions>()
                .is_err()
        {
            // The URL itself may hold a password: never echo it.
            return Err(invalid("database", "is not a valid postgres:// URL".into()));
        }
        let redis_url = Some(self.redis_url).filter(|u| !u.is_empty());
        if let Some(u) = &redis_url {
            if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix:"))
            {
                return Err(invalid(
                    "redis_url",
                    format!("{u:?} must be a redis:// URL"),
                ));
            }
        }
        for (key, tok) in [
            ("admin_token", &self.admin_token),
            ("data_plane_token", &self.data_plane_token),
        ] {
            if tok.as_ref().is_some_and(|t| t.len() < 24) {
                return Err(invalid(key, "must be at least 24 characters".into()));
            }
        }
        if self.reconcile_interval_secs == 0 {
            return Err(invalid(
                "reconcile_interval_secs",
                "must be at least 1".into(),
            ));
        }
        let trusted_publishing_token_ttl =
            trusted_publishing_token_ttl(self.trusted_publishing_token_ttl_secs)?;
        Ok(Settings {
            listen,
            http_listen,
            database: self.database,
            redis_url,
            master_key,
            admin_token: self.admin_token,
            data_plane_token: self.data_plane_token,
            reconcile_interval: Duration::from_secs(self.reconcile_interval_secs),
            drain: Duration::from_secs(self.drain_secs),
            trusted_publishing_token_ttl,
        })
    }
}

/// `http_listen`, checked (also for `nproxyctl dev`'s own section): empty is off.
pub fn http_listen(s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse()
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            key: "http_listen",
            message: format!("{s:?} is not host:port: {e}"),
        })
}

/// `trusted_publishing_token_ttl_secs`, checked (also for `nproxyctl dev`'s own section).
pub fn trusted_publishing_token_ttl(secs: u64) -> Result<Duration, ConfigError> {
    if !(1..=3600).contains(&secs) {
        return Err(ConfigError::Invalid {
            key: "trusted_publishing_token_ttl_secs",
            message: format!("{secs} must be 1 to 3600 seconds"),
        });
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_api_is_off_by_default_and_errors_name_its_key() {
        assert_eq!(http_listen("").expect("empty"), None);
        assert_eq!(
            http_listen("127.0.0.1:7080").expect("an address"),
            Some("127.0.0.1:7080".parse().expect("addr"))
        );
        let e = http_listen("localhost").expect_err("no port");
        assert!(e.to_string().contains("`http_listen`"), "{e}");
        let f = Config::figment(None)
            .merge(figment::providers::Serialized::default(
                "master_key",
                MasterKey::generate().to_base64(),
            ))
            .merge(figment::providers::Serialized::default(
                "http_listen",
                "127.0.0.1:7443",
            ));
        let e = Config::load(f)
            .expect("loads")
            .validate()
            .expect_err("the gRPC port");
        assert!(e.to_string().contains("`http_listen`"), "{e}");
    }

    #[test]
    fn the_trusted_publishing_ttl_is_1_to_3600_seconds_and_errors_name_the_key() {
        assert_eq!(Config::default().trusted_publishing_token_ttl_secs, 900);
        assert_eq!(
            trusted_publishing_token_ttl(1).expect("1 s"),
            Duration::from_secs(1)
        );
        trusted_publishing_token_ttl(3600).expect("an hour");
        for bad in [0, 3601] {
            let e = trusted_publishing_token_ttl(bad).expect_err("out of range");
            assert!(
                e.to_string()
                    .contains("`trusted_publishing_token_ttl_secs`"),
                "{e}"
            );
        }
        let f = Config::figment(None)
            .merge(figment::providers::Serialized::default(
                "master_key",
                MasterKey::generate().to_base64(),
            ))
            .merge(figment::providers::Serialized::default(
                "trusted_publishing_token_ttl_secs",
                7200,
            ));
        let e = Config::load(f)
            .expect("loads")
            .validate()
            .expect_err("validated");
        assert!(
            e.to_string().contains("trusted_publishing_token_ttl_secs"),
            "{e}"
        );
    }
}
