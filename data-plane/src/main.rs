//! `nproxy-data-plane`: serves npm clients. Configuration: `--config FILE`, `NPROXY_*`
//! variables and the flags below, in increasing precedence.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use figment::providers::Serialized;
use nproxy_data_plane::config::{Config, LogFormat};
use nproxy_data_plane::metrics::{Metrics, MetricsApp};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;

// jemalloc returns freed memory to the OS on a timer: rendering a large packument allocates
// a lot briefly, and glibc's malloc keeps such memory resident (see bench/README.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "nproxy-data-plane",
    version,
    about = "nproxy's npm-facing server"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "NPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// Upstream registry URL, e.g. --upstream "$(npm config get registry)".
    #[arg(long)]
    upstream: Option<String>,
    /// Address to listen on for npm clients (host:port).
    #[arg(long)]
    listen: Option<String>,
    /// Address for Prometheus /metrics ("" disables it).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Folder of the local blob store.
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Public URL clients use to reach this server (with any path prefix).
    #[arg(long)]
    public_url: Option<String>,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut figment = Config::figment(cli.config.as_deref());
    if let Some(u) = cli.upstream {
        figment = figment.merge(Serialized::default("upstream", u));
    }
    if let Some(l) = cli.listen {
        figment = figment.merge(Serialized::default("listen", l));
    }
    if let Some(m) = cli.metrics_listen {
        figment = figment.merge(Serialized::default("metrics_listen", m));
    }
    if let Some(d) = cli.storage_dir {
        figment = figment.merge(Serialized::default("storage.path", d));
    }
    if let Some(p) = cli.public_url {
        figment = figment.merge(Serialized::default("public_url", p));
    }
    let settings = Config::load(figment)?.validate()?;
    init_logs(settings.log_format);

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
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let listen = settings.listen;
    let metrics_listen = settings.metrics_listen;
    let metrics = Metrics::new();
    let app = nproxy_data_plane::build_app(settings, metrics.clone())
        .context("cannot start the data plane")?;
    let conf = server.configuration.clone();
    let mut proxy = pingora::proxy::http_proxy_service_with_name(&conf, app, "nproxy npm");
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    if let Some(addr) = metrics_listen {
        let mut svc = Service::new("nproxy metrics".to_string(), MetricsApp(metrics));
        svc.add_tcp(&addr.to_string());
        server.add_service(svc);
    }
    tracing::info!(%listen, ?metrics_listen, "nproxy data plane listening");
    server.run_forever();
}
