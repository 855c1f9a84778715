//! `nproxyctl dev`'s configuration: the data plane's own keys (the same file and
//! `NPROXY_*` variables `nproxy-data-plane` reads), plus two sections only the embedded
//! server has. Order: dev defaults → `--config` file → `NPROXY_*` → flags.
//!
//! ```toml
//! upstream = "https://registry.example/"   # any data-plane key, at the top level
//! packument_max_age_secs = 60
//! [dev]
//! dir = "./nproxy-dev"                     # database, blobs, master key, credentials
//! org = "dev"                              # the org created on first start
//! [control_plane]
//! listen = "127.0.0.1:7443"                # where nproxyctl connects
//! http_listen = "127.0.0.1:7080"           # the JSON/HTTP admin API; "" turns it off
//! reconcile_interval_secs = 30
//! trusted_publishing_token_ttl_secs = 900   # tokens minted for CI jobs' id tokens
//! ```
//!
//! nproxyctl's own variables (`NPROXY_ENDPOINT`, `NPROXY_ADMIN_TOKEN`, `NPROXY_CTL_CONFIG`)
//! are not data-plane keys and are skipped. Data-plane keys the embedded server decides
//! itself (`redis_url`, `control_plane_url`, `control_plane_token`, `default_org`) are
//! reported and overridden.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, Profile, Provider};
use nproxy_data_plane::config::Config as DpConfig;
use serde::Deserialize;

/// Where `nproxyctl dev` serves the JSON/HTTP admin API unless told otherwise.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7080";

/// `NPROXY_*` variables that belong to nproxyctl or the test tools, not to the data plane.
const NOT_DATA_PLANE: &[&str] = &["endpoint", "admin_token", "ctl_config", "tools_dir"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevSection {
    dir: Option<PathBuf>,
    org: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlPlaneSection {
    listen: Option<String>,
    http_listen: Option<String>,
    reconcile_interval_secs: Option<u64>,
    trusted_publishing_token_ttl_secs: Option<u64>,
}

/// What the flags say (each overrides the file and the environment).
#[derive(Debug, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub grpc_listen: Option<String>,
    pub http_listen: Option<String>,
    pub upstream: Option<String>,
    pub org: Option<String>,
}

/// The resolved configuration of the embedded servers.
#[derive(Debug)]
pub struct DevConfig {
    pub dir: PathBuf,
    pub org: String,
    pub grpc_listen: String,
    /// The JSON/HTTP admin API's address; `None`: not served.
    pub http_listen: Option<std::net::SocketAddr>,
    /// Whether `http_listen` is the default (another port is taken if it is busy).
    pub http_listen_is_default: bool,
    pub reconcile_interval: Duration,
    pub trusted_publishing_token_ttl: Duration,
    /// The data plane's configuration, before dev's own overrides.
    pub data_plane: DpConfig,
    /// Keys the embedded server decides itself that the file or environment set.
    pub ignored: Vec<&'static str>,
}

fn section<T: for<'de> Deserialize<'de> + Default>(
    dict: &mut Dict,
    key: &str,
    file: &Path,
) -> anyhow::Result<T> {
    match dict.remove(key) {
        Some(v) => v
            .deserialize()
            .with_context(|| format!("{}: section [{key}]", file.display())),
        None => Ok(T::default()),
    }
}

/// Resolves the configuration from the flags, the file they name and `env` (the `NPROXY_`
/// variables; a parameter so tests can supply their own).
pub fn resolve(flags: &Flags, env: Env) -> anyhow::Result<DevConfig> {
    let mut file_keys = Dict::new();
    let (mut dev, mut cp) = (DevSection::default(), ControlPlaneSection::default());
    if let Some(path) = &flags.config {
        let mut data = Figment::from(Toml::file_exact(path))
            .data()
            .with_context(|| format!("config file {}", path.display()))?;
        file_keys = data.remove(&Profile::Default).unwrap_or_default();
        dev = section(&mut file_keys, "dev", path)?;
        cp = section(&mut file_keys, "control_plane", path)?;
    }
    let dir = flags
        .dir
        .clone()
        .or(dev.dir)
        .unwrap_or_else(|| PathBuf::from("./nproxy-dev"));
    let defaults = DpConfig {
        // One process answers everything; metrics only when asked for.
        metrics_listen: String::new(),
        storage: nproxy_data_plane::config::StorageConfig {
            path: dir.join("blobs"),
            ..DpConfig::default().storage
        },
        ..DpConfig::default()
    };
    let mut figment = Figment::from(Serialized::defaults(defaults))
        .merge(Serialized::defaults(Value::from(file_keys)))
        .merge(env.ignore(NOT_DATA_PLANE).split("__"));
    if let Some(l) = &flags.listen {
        figment = figment.merge(Serialized::default("listen", l));
    }
    if let Some(u) = &flags.upstream {
        figment = figment.merge(Serialized::default("upstream", u));
    }
    let mut data_plane: DpConfig = figment
        .extract()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let defaults = DpConfig::default();
    let mut ignored = Vec::new();
    if data_plane.redis_url.is_some() {
        ignored.push("redis_url");
    }
    if data_plane.control_plane_url.is_some() {
        ignored.push("control_plane_url");
    }
    if data_plane.control_plane_token.is_some() {
        ignored.push("control_plane_token");
    }
    if data_plane.default_org != defaults.default_org {
        ignored.push("default_org");
    }
    data_plane.redis_url = None;
    let trusted_publishing_token_ttl = nproxy_control_plane::config::trusted_publishing_token_ttl(
        cp.trusted_publishing_token_ttl_secs.unwrap_or(
            nproxy_control_plane::config::Config::default().trusted_publishing_token_ttl_secs,
        ),
    )?;
    let http_listen_set = flags.http_listen.clone().or(cp.http_listen);
    let http_listen_is_default = http_listen_set.is_none();
    let http_listen = nproxy_control_plane::config::http_listen(
        http_listen_set.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN),
    )?;
    Ok(DevConfig {
        dir,
        org: flags
            .org
            .clone()
            .or(dev.org)
            .unwrap_or_else(|| "dev".into()),
        grpc_listen: flags
            .grpc_listen
            .clone()
            .or(cp.listen)
            .unwrap_or_else(|| "127.0.0.1:7443".into()),
        http_listen,
        http_listen_is_default,
        reconcile_interval: Duration::from_secs(cp.reconcile_interval_secs.unwrap_or(30)),
        trusted_publishing_token_ttl,
        data_plane,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_none() -> Env {
        Env::prefixed("NPROXY_TEST_NOTHING_SET_")
    }

    #[test]
    fn file_sections_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nproxy.toml");
        std::fs::write(
            &file,
            "upstream = \"http://127.0.0.1:9/\"\npackument_max_age_secs = 7\nredis_url = \"redis://x\"\n\
             [storage]\nkind = \"local\"\npath = \"/tmp/blobs-x\"\n\
             [dev]\norg = \"team\"\n[control_plane]\nlisten = \"127.0.0.1:7999\"\nhttp_listen = \"\"\n\
             trusted_publishing_token_ttl_secs = 5\n",
        )
        .unwrap();
        let c = resolve(
            &Flags {
                config: Some(file.clone()),
                listen: Some("127.0.0.1:5000".into()),
                ..Flags::default()
            },
            env_none(),
        )
        .unwrap();
        assert_eq!(c.data_plane.packument_max_age_secs, 7);
        assert_eq!(c.data_plane.upstream, "http://127.0.0.1:9/");
        assert_eq!(c.data_plane.listen, "127.0.0.1:5000");
        assert_eq!(c.data_plane.storage.path, PathBuf::from("/tmp/blobs-x"));
        assert_eq!(c.org, "team");
        assert_eq!(c.grpc_listen, "127.0.0.1:7999");
        assert_eq!(c.http_listen, None, "turned off");
        assert!(!c.http_listen_is_default);
        assert_eq!(c.trusted_publishing_token_ttl, Duration::from_secs(5));
        assert_eq!(c.ignored, vec!["redis_url"]);
        assert!(c.data_plane.redis_url.is_none());
    }

    #[test]
    fn defaults_put_blobs_in_the_dev_folder() {
        let c = resolve(
            &Flags {
                dir: Some("/srv/nproxy".into()),
                ..Flags::default()
            },
            env_none(),
        )
        .unwrap();
        assert_eq!(
            c.data_plane.storage.path,
            PathBuf::from("/srv/nproxy/blobs")
        );
        assert_eq!(c.data_plane.metrics_listen, "");
        assert!(c.ignored.is_empty());
        assert_eq!(c.trusted_publishing_token_ttl, Duration::from_secs(900));
        assert_eq!(
            c.http_listen,
            Some(DEFAULT_HTTP_LISTEN.parse().expect("addr"))
        );
        assert!(c.http_listen_is_default);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nproxy.toml");
        std::fs::write(&file, "packument_max_age = 7\n").unwrap();
        let e = resolve(
            &Flags {
                config: Some(file),
                ..Flags::default()
            },
            env_none(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("packument_max_age"), "{e:#}");
    }
}
