//! `nproxyctl dev`: a whole nproxy in one process, for trying it out and for local work.
//! Control plane (SQLite in the dev folder) and data plane (local blob folder) share an
//! in-process config bus instead of Redis. First start creates an org and a token with both
//! scopes and keeps them in `<dir>/dev-credentials.json` (readable by you only), so later
//! starts print the same lines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use nproxy_control_plane::config::Settings as CpSettings;
use nproxy_control_plane::secrets::MasterKey;
use nproxy_control_plane::sink::{ConfigSink, Stamp};
use nproxy_control_plane::ControlPlane;
use nproxy_data_plane::config::Config as DpConfig;
use nproxy_data_plane::org::{ConfigSource, Invalidation, OrgConfigs};
use nproxy_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Flags of `nproxyctl dev`; each overrides the config file (`nproxyctl dev --config
/// nproxy.toml`, see `dev_config`) and the `NPROXY_*` variables.
#[derive(clap::Args)]
pub struct DevArgs {
    /// Folder for the database, the blob store, the master key and the dev credentials
    /// [default: ./nproxy-dev].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where npm clients connect [default: 127.0.0.1:4873].
    #[arg(long)]
    listen: Option<String>,
    /// Where nproxyctl connects (gRPC) [default: 127.0.0.1:7443].
    #[arg(long)]
    grpc_listen: Option<String>,
    /// Where the JSON/HTTP admin API is served ("" turns it off) [default: 127.0.0.1:7080;
    /// another free port when that one is busy].
    #[arg(long)]
    http_listen: Option<String>,
    /// Upstream registry, e.g. --upstream "$(npm config get registry)". Defaults to what
    /// `npm config get registry` prints.
    #[arg(long)]
    upstream: Option<String>,
    /// Slug of the org created on first start [default: dev].
    #[arg(long)]
    org: Option<String>,
}

/// What a slug holds: the stamp of the last publish and the snapshot (none once deleted).
type Published = (Stamp, Option<Vec<u8>>);

/// The in-process replacement for Redis: snapshots by slug plus invalidation messages.
#[derive(Default)]
struct MemoryBus {
    snapshots: Mutex<HashMap<String, Published>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Invalidation>>>,
    heads: Mutex<HashMap<String, (i64, String)>>,
    usage: Mutex<HashMap<String, HashMap<String, i64>>>,
    advisories: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryBus {
    fn announce(&self, msg: impl Fn() -> Invalidation) {
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|tx| tx.send(msg()).is_ok());
    }
}

#[async_trait::async_trait]
impl ConfigSink for MemoryBus {
    async fn publish(
        &self,
        slug: &str,
        stamp: Stamp,
        snapshot: Option<Vec<u8>>,
    ) -> Result<bool, String> {
        {
            let mut map = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
            // The same rule as Redis: a greater stamp already there stands.
            if map.get(slug).is_some_and(|(held, _)| *held > stamp) {
                return Ok(false);
            }
            map.insert(slug.to_string(), (stamp, snapshot));
        }
        self.announce(|| Invalidation::Org(slug.to_string()));
        Ok(true)
    }

    async fn published_stamp(&self, slug: &str) -> Result<Option<Stamp>, String> {
        let map = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map.get(slug).map(|(stamp, _)| *stamp))
    }

    async fn set_audit_head(&self, org_id: &str, seq: i64, hash: &str) -> Result<(), String> {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org_id.to_string(), (seq, hash.to_string()));
        Ok(())
    }

    async fn audit_head(&self, org_id: &str) -> Result<Option<(i64, String)>, String> {
        Ok(self
            .heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(org_id)
            .cloned())
    }

    async fn token_usage(&self, org_id: &str) -> Result<HashMap<String, i64>, String> {
        Ok(self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(org_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn publish_advisories(&self, package: &str, json: Option<Vec<u8>>) -> Result<(), String> {
        {
            let mut map = self.advisories.lock().unwrap_or_else(|p| p.into_inner());
            match json {
                Some(j) => map.insert(package.to_string(), j),
                None => map.remove(package),
            };
        }
        self.announce(|| Invalidation::Advisories(package.to_string()));
        Ok(())
    }

    async fn has_advisories(&self, package: &str) -> Result<bool, String> {
        Ok(self
            .advisories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(package))
    }
}

#[async_trait::async_trait]
impl ConfigSource for MemoryBus {
    async fn fetch(&self, slug: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(slug)
            .and_then(|(_, snapshot)| snapshot.clone()))
    }

    async fn fetch_advisories(&self, package: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .advisories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(package)
            .cloned())
    }

    async fn report_usage(&self, used: Vec<(String, String, i64)>) -> Result<(), String> {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        for (org, token, ms) in used {
            usage.entry(org).or_default().insert(token, ms);
        }
        Ok(())
    }

    async fn announce_package_write(&self, package: &str) -> Result<(), String> {
        self.announce(|| Invalidation::PackageWritten(package.to_string()));
        Ok(())
    }

    fn invalidations(&self) -> Option<mpsc::UnboundedReceiver<Invalidation>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        Some(rx)
    }
}

/// Bridges the control plane's sink to the shared bus.
struct SinkHandle(Arc<MemoryBus>);

#[async_trait::async_trait]
impl ConfigSink for SinkHandle {
    async fn publish(
        &self,
        slug: &str,
        stamp: Stamp,
        snapshot: Option<Vec<u8>>,
    ) -> Result<bool, String> {
        self.0.publish(slug, stamp, snapshot).await
    }
    async fn published_stamp(&self, slug: &str) -> Result<Option<Stamp>, String> {
        self.0.published_stamp(slug).await
    }
    async fn set_audit_head(&self, org_id: &str, seq: i64, hash: &str) -> Result<(), String> {
        self.0.set_audit_head(org_id, seq, hash).await
    }
    async fn audit_head(&self, org_id: &str) -> Result<Option<(i64, String)>, String> {
        self.0.audit_head(org_id).await
    }
    async fn token_usage(&self, org_id: &str) -> Result<HashMap<String, i64>, String> {
        self.0.token_usage(org_id).await
    }
    async fn publish_advisories(&self, package: &str, json: Option<Vec<u8>>) -> Result<(), String> {
        self.0.publish_advisories(package, json).await
    }
    async fn has_advisories(&self, package: &str) -> Result<bool, String> {
        self.0.has_advisories(package).await
    }
}

struct SourceHandle(Arc<MemoryBus>);

#[async_trait::async_trait]
impl ConfigSource for SourceHandle {
    async fn fetch(&self, slug: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.fetch(slug).await
    }
    fn invalidations(&self) -> Option<mpsc::UnboundedReceiver<Invalidation>> {
        self.0.invalidations()
    }
    async fn report_usage(&self, used: Vec<(String, String, i64)>) -> Result<(), String> {
        self.0.report_usage(used).await
    }
    async fn fetch_advisories(&self, package: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.fetch_advisories(package).await
    }
    async fn announce_package_write(&self, package: &str) -> Result<(), String> {
        self.0.announce_package_write(package).await
    }
}

#[derive(Serialize, Deserialize)]
struct DevCredentials {
    admin_token: String,
    org: String,
    token: String,
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents)?;
    Ok(())
}

fn master_key(dir: &Path) -> anyhow::Result<MasterKey> {
    let path = dir.join("master.key");
    if path.exists() {
        let s = std::fs::read_to_string(&path)?;
        return MasterKey::from_base64(&s).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let k = MasterKey::generate();
    write_private(&path, k.to_base64().as_bytes())?;
    Ok(k)
}

fn default_upstream() -> anyhow::Result<String> {
    let out = std::process::Command::new("npm")
        .args(["config", "get", "registry"])
        .output()
        .context("no --upstream given and `npm config get registry` could not run")?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(
        out.status.success() && url.starts_with("http"),
        "no --upstream given and `npm config get registry` printed nothing usable"
    );
    Ok(url)
}

/// The admin API's listener: the address asked for, or any free port when the default one
/// is busy (another nproxyctl dev, say).
async fn bind_http(
    addr: std::net::SocketAddr,
    is_default: bool,
) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if is_default => {
            eprintln!("warning: {addr} is busy ({e}): the admin HTTP API takes another port");
            Ok(tokio::net::TcpListener::bind((addr.ip(), 0)).await?)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} (http_listen)")),
    }
}

/// pingora's shutdown hook, fired by the dev command on Ctrl-C.
struct Shutdown(tokio::sync::watch::Receiver<bool>);

#[async_trait::async_trait]
impl pingora::server::ShutdownSignalWatch for Shutdown {
    async fn recv(&self) -> pingora::server::ShutdownSignal {
        let mut rx = self.0.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        pingora::server::ShutdownSignal::FastShutdown
    }
}

async fn bootstrap(grpc: &str, admin: &str, org: &str) -> anyhow::Result<DevCredentials> {
    use nproxy_proto::tokens::BearerAuth;
    use nproxy_proto::v1::orgs_client::OrgsClient;
    use nproxy_proto::v1::tokens_client::TokensClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))?
        .connect()
        .await?;
    let auth = BearerAuth::new(admin)?;
    let mut orgs = OrgsClient::with_interceptor(channel.clone(), auth.clone());
    let mut created = orgs
        .create_org(pb::CreateOrgRequest {
            slug: org.to_string(),
            display_name: "nproxy dev".into(),
        })
        .await;
    if let Err(s) = &created {
        if s.code() == tonic::Code::AlreadyExists {
            created = orgs
                .get_org(pb::GetOrgRequest {
                    org: org.to_string(),
                })
                .await;
        }
    }
    created?;
    let mut tokens = TokensClient::with_interceptor(channel, auth);
    let t = tokens
        .create_token(pb::CreateTokenRequest {
            org: org.to_string(),
            name: "dev".into(),
            scopes: vec![pb::TokenScope::Proxy as i32, pb::TokenScope::Publish as i32],
            expires_at_ms: None,
        })
        .await?
        .into_inner();
    Ok(DevCredentials {
        admin_token: admin.to_string(),
        org: org.to_string(),
        token: t.secret,
    })
}

pub async fn run(args: &DevArgs, config: Option<PathBuf>) -> anyhow::Result<()> {
    nproxy_common::logging::init("info", nproxy_common::logging::Format::Text);
    let cfg = crate::dev_config::resolve(
        &crate::dev_config::Flags {
            config,
            dir: args.dir.clone(),
            listen: args.listen.clone(),
            grpc_listen: args.grpc_listen.clone(),
            http_listen: args.http_listen.clone(),
            upstream: args.upstream.clone(),
            org: args.org.clone(),
        },
        figment::providers::Env::prefixed("NPROXY_"),
    )?;
    if !cfg.ignored.is_empty() {
        eprintln!(
            "warning: nproxyctl dev ignores {}: it embeds the control plane, replaces Redis \
             with an in-process bus and serves the org it created",
            cfg.ignored.join(", ")
        );
    }
    std::fs::create_dir_all(&cfg.dir)
        .with_context(|| format!("cannot create {}", cfg.dir.display()))?;
    let upstream = if cfg.data_plane.upstream.is_empty() {
        default_upstream()?
    } else {
        cfg.data_plane.upstream.clone()
    };
    let creds_path = cfg.dir.join("dev-credentials.json");
    let saved: Option<DevCredentials> = std::fs::read(&creds_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());

    let bus = Arc::new(MemoryBus::default());
    // The data plane's service credential, fresh for each run: both ends live here.
    let data_plane_token = nproxy_control_plane::secrets::new_api_token();
    let cp_settings = CpSettings {
        listen: cfg
            .grpc_listen
            .parse()
            .with_context(|| format!("control_plane.listen {:?}", cfg.grpc_listen))?,
        http_listen: cfg.http_listen,
        database: cfg.dir.join("control.db").display().to_string(),
        redis_url: None,
        master_key: master_key(&cfg.dir)?,
        admin_token: saved.as_ref().map(|c| c.admin_token.clone()),
        data_plane_token: Some(data_plane_token.clone()),
        reconcile_interval: cfg.reconcile_interval,
        trusted_publishing_token_ttl: cfg.trusted_publishing_token_ttl,
        // One process on a laptop: nothing to drain to.
        drain: std::time::Duration::ZERO,
    };
    let opened = ControlPlane::open(&cp_settings, Arc::new(SinkHandle(bus.clone()))).await?;
    let listener = tokio::net::TcpListener::bind(cp_settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cp_settings.listen))?;
    let grpc_addr = listener.local_addr()?;
    let mut control_plane = opened.control_plane;
    let mut http_addr = None;
    if let Some(addr) = cp_settings.http_listen {
        let http = bind_http(addr, cfg.http_listen_is_default).await?;
        http_addr = Some(http.local_addr()?);
        control_plane = control_plane.with_http(http);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut cp_stop = stop_rx.clone();
    let cp = tokio::spawn(control_plane.serve(listener, async move {
        let _ = cp_stop.wait_for(|v| *v).await;
    }));

    let creds = match saved {
        Some(c) => c,
        None => {
            let admin = opened
                .created_admin_token
                .context("the dev database has an admin credential but no dev-credentials.json; remove the folder to start over")?;
            let c = bootstrap(&grpc_addr.to_string(), &admin, &cfg.org).await?;
            write_private(&creds_path, &serde_json::to_vec_pretty(&c)?)?;
            c
        }
    };

    let dp_settings = DpConfig {
        upstream,
        default_org: Some(creds.org.clone()),
        control_plane_url: Some(format!("http://{grpc_addr}")),
        control_plane_token: Some(data_plane_token),
        redis_url: None,
        ..cfg.data_plane
    }
    .validate()?;
    let orgs = OrgConfigs::new(
        Some(Arc::new(SourceHandle(bus.clone()))),
        dp_settings.org_config_refresh,
    );
    let registry = format!("http://{}", dp_settings.listen);
    let server = nproxy_data_plane::build_server(
        dp_settings,
        orgs,
        &tokio::runtime::Handle::current(),
        std::sync::Arc::default(),
    )?;
    let dp = std::thread::spawn(move || {
        server.run(pingora::server::RunArgs {
            shutdown_signal: Box::new(Shutdown(stop_rx)),
        })
    });

    let host = registry.trim_start_matches("http://");
    let admin_api = http_addr.map_or(String::new(), |a| {
        format!(
            "\n  admin API: curl -H 'Authorization: Bearer {}' http://{a}/api/v1/orgs",
            creds.admin_token
        )
    });
    println!(
        "nproxy dev is running (data in {dir}).\n\n  registry:  {registry}/\n  org:       {org}\n  token:     {token}  (scopes: proxy, publish)\n  admin:     nproxyctl --endpoint http://{grpc_addr} --token {admin} org list{admin_api}\n\nnpm and pnpm: put these lines in your project's .npmrc\n\n  registry={registry}/\n  //{host}/:_authToken={token}\n\nyarn 4: put these lines in your project's .yarnrc.yml\n\n  npmRegistryServer: \"{registry}\"\n  npmAlwaysAuth: true\n  npmAuthToken: \"{token}\"\n  unsafeHttpWhitelist:\n    - \"{unsafe_host}\"\n\nPress Ctrl-C to stop.",
        dir = cfg.dir.display(),
        org = creds.org,
        token = creds.token,
        admin = creds.admin_token,
        unsafe_host = host.split(':').next().unwrap_or("127.0.0.1"),
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let _ = tokio::signal::ctrl_c().await;
    let _ = stop_tx.send(true);
    let _ = cp.await;
    let _ = tokio::task::spawn_blocking(move || dp.join()).await;
    Ok(())
}
