//! nproxy's data plane: the pingora HTTP server that answers npm clients.
//! See ARCHITECTURE.md at the repository root for the map and the invariants.

// The pure cores (names, routing, documents, publish validation, the rules engine, OSV)
// are `nproxy_core`, used under that name everywhere here.

// The public surface is what the CLI (`nproxyctl dev`), the integration tests and the
// benchmarks use: configuration, the org config source, the blob stores (and their
// conformance suite), and the functions below that build a server. Everything else is
// the crate's own.
pub mod config;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod internal;
pub(crate) mod metrics;
pub mod org;
pub(crate) mod public;
pub(crate) mod rules;
pub(crate) mod search;
pub(crate) mod singleflight;
pub mod store;
pub mod trust;

pub use http::lifecycle::{DrainingShutdown, Lifecycle};
/// For `nproxyctl bundle import`: the meta beside a public packument it writes.
pub use public::packuments::imported_meta;

use std::sync::Arc;

use config::{Settings, StorageKind};
use metrics::Metrics;
use org::{ConfigSource, LazyRedisSource, OrgConfigs};
use public::packuments::{Packuments, PackumentsConfig};
use public::tarballs::Tarballs;
use public::upstream::Upstream;
use store::{BlobStore, LocalStore, S3Store};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("upstream client: {0}")]
    Upstream(#[from] reqwest::Error),
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("control plane client: {0}")]
    ControlPlane(String),
}

/// Opens the configured blob store.
pub fn open_store(settings: &Settings) -> Result<Arc<dyn BlobStore>, StartError> {
    Ok(match settings.storage.kind {
        StorageKind::Local => Arc::new(LocalStore::open(&settings.storage.path)?),
        StorageKind::S3 => {
            // Staging for uploads; downloads are streamed to it before they are verified.
            let staging = std::env::temp_dir().join("nproxy-staging");
            Arc::new(S3Store::new(&settings.storage.s3, staging)?)
        }
    })
}

/// Connects the configured org config source (Redis) and starts following it. Must run
/// inside a tokio runtime that outlives the server: its tasks keep the config current.
pub async fn org_configs(settings: &Settings) -> Result<Arc<OrgConfigs>, StartError> {
    let source: Option<Arc<dyn ConfigSource>> = match &settings.redis_url {
        Some(url) => Some(Arc::new(LazyRedisSource::start(url).await)),
        None => None,
    };
    Ok(OrgConfigs::new(source, settings.org_config_refresh))
}

/// The pingora server with the npm service and (if configured) the metrics service.
/// `background` runs the data plane's own tasks (the audit outbox drainer).
/// `lifecycle` is shared with the shutdown signal watcher (`DrainingShutdown`), which turns
/// readiness off on SIGTERM and waits for open connections.
pub fn build_server(
    settings: Settings,
    orgs: Arc<OrgConfigs>,
    background: &tokio::runtime::Handle,
    lifecycle: Arc<Lifecycle>,
) -> Result<pingora::server::Server, StartError> {
    use pingora::server::configuration::ServerConf;
    let threads = if settings.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        settings.threads
    };
    let conf = ServerConf {
        threads,
        // pingora's defaults wait minutes before exiting; in-flight requests get 5 s.
        // After the drain (`DrainingShutdown`), open requests get this long; the watcher
        // exits the process as soon as none is left.
        grace_period_seconds: Some(settings.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        // pingora's "fast" timers need a clock thread that, once started, wakes every
        // millisecond for the life of the process (about a sixth of the CPU an `npm ci`
        // costs nproxy). Every timeout pingora sets for nproxy is seconds long, so tokio's
        // timer wheel, idle when nothing is due, serves them all.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let listen = settings.listen;
    let metrics_listen = settings.metrics_listen;
    let limits = http::conn_guard::ConnLimits {
        max_connections: match settings.max_connections {
            0 => automatic_max_connections(),
            n => n,
        },
        header_timeout: settings.header_timeout,
        body_timeout: settings.body_timeout,
    };
    tracing::info!(
        max_connections = limits.max_connections,
        "client connection cap"
    );
    let metrics = Metrics::new();
    let app = build_app(settings, metrics.clone(), orgs, lifecycle.clone())?;
    if let Some(outbox) = &app.outbox {
        outbox.spawn_drainer(background, std::time::Duration::from_secs(2));
    }
    let conf = server.configuration.clone();
    let proxy = pingora::proxy::http_proxy(&conf, app);
    let mut proxy = pingora::services::listening::Service::new(
        "nproxy npm".to_string(),
        http::conn_guard::Guarded::new(proxy, limits, metrics.clone(), lifecycle),
    );
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    if let Some(addr) = metrics_listen {
        let mut svc = pingora::services::listening::Service::new(
            "nproxy metrics".to_string(),
            metrics::MetricsApp(metrics),
        );
        svc.add_tcp(&addr.to_string());
        server.add_service(svc);
    }
    Ok(server)
}

/// Half the open-file limit (the rest is for the store, the upstream, Redis and logs),
/// between 64 and 10,000: idle connections cost memory too.
fn automatic_max_connections() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(64, 10_000)
}

/// Builds the request-handling application from validated settings.
pub fn build_app(
    settings: Settings,
    metrics: Metrics,
    orgs: Arc<OrgConfigs>,
    lifecycle: Arc<Lifecycle>,
) -> Result<http::server::App, StartError> {
    let store = open_store(&settings)?;
    let upstream = Arc::new(Upstream::new(&settings, metrics.clone())?);
    let internal = Arc::new(internal::store::InternalStore::new(store.clone()));
    let cp = match &settings.control_plane {
        Some((urls, token)) => Some(
            internal::cp_client::ControlPlaneClient::new(urls, token)
                .map_err(StartError::ControlPlane)?,
        ),
        None => None,
    };
    let outbox = cp.clone().map(|cp| {
        internal::outbox::Outbox::new(
            store.clone(),
            internal.clone(),
            cp,
            settings.audit_outbox_grace,
        )
    });
    let packuments = Arc::new(
        Packuments::new(
            store.clone(),
            upstream.clone(),
            metrics.clone(),
            PackumentsConfig {
                max_age: settings.packument_max_age,
                stale_while_revalidate: settings.stale_while_revalidate,
                negative_ttl: settings.negative_cache,
                memory_bytes: settings.memory_cache_bytes,
                work_bytes: settings.packument_work_bytes,
            },
        )
        .with_outbox(outbox.clone()),
    );
    // Writes accepted upstream through any data plane reach this one's packument cache.
    let weak = Arc::downgrade(&packuments);
    orgs.on_package_write(Box::new(move |pkg| {
        if let (Some(p), Ok(name)) = (weak.upgrade(), nproxy_core::names::PackageName::parse(pkg)) {
            p.written_upstream(&name);
        }
    }));
    let tarballs = Arc::new(Tarballs::new(
        store.clone(),
        upstream.clone(),
        packuments.clone(),
        metrics.clone(),
        settings.tarball_memory_cache_bytes,
    ));
    Ok(http::server::App {
        internal_api: internal::api::InternalApi {
            internal: internal.clone(),
            outbox: outbox.clone(),
            cp: cp.clone(),
            metrics: metrics.clone(),
        },
        search: search::SearchApi::new(internal.clone(), upstream.clone(), orgs.clone()),
        public: Arc::new(public::serve::PublicApi {
            packuments: packuments.clone(),
            tarballs: tarballs.clone(),
            metrics: metrics.clone(),
            verify_before_send_bytes: settings.verify_before_send_bytes,
        }),
        routes: Arc::new(public::routes::Routes::new(
            packuments.clone(),
            Arc::new(settings.clone()),
            store.clone(),
            metrics.clone(),
            outbox.clone(),
            cp.clone(),
        )),
        forwarder: http::forward::Forwarder {
            upstream: upstream.clone(),
            packuments: packuments.clone(),
            orgs: orgs.clone(),
            uploads: Arc::new(tokio::sync::Semaphore::new(
                http::forward::MAX_FORWARD_UPLOADS,
            )),
        },
        trust: trust::TrustApi {
            keys: trust::RegistryKeys::new(upstream.clone(), store.clone()),
            attestations: trust::Attestations {
                store: store.clone(),
                internal: internal.clone(),
            },
        },
        internal,
        outbox,
        cp,
        orgs,
        settings: Arc::new(settings),
        packuments,
        tarballs,
        upstream,
        metrics,
        lifecycle,
    })
}
