//! `nproxy-data-plane`: serves npm clients. Configuration: `--config FILE`, `NPROXY_*`
//! variables and the flags below, in increasing precedence.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use figment::providers::Serialized;
use nproxy_data_plane::config::{Config, LogFormat};

// jemalloc returns freed memory to the OS on a timer: rendering a large packument allocates
// a lot briefly, and glibc's malloc keeps such memory resident (see bench/README.md). Its
// tuning (faster purging, two arenas) is baked in at build time: `.cargo/config.toml`.
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
    /// Redis the control plane publishes org config to.
    #[arg(long)]
    redis_url: Option<String>,
}

fn init_logs(format: LogFormat) {
    nproxy_common::logging::init(
        "info",
        match format {
            LogFormat::Json => nproxy_common::logging::Format::Json,
            LogFormat::Text => nproxy_common::logging::Format::Text,
        },
    );
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
    if let Some(r) = cli.redis_url {
        figment = figment.merge(Serialized::default("redis_url", r));
    }
    if let Some(p) = cli.public_url {
        figment = figment.merge(Serialized::default("public_url", p));
    }
    let settings = Config::load(figment)?.validate()?;
    init_logs(settings.log_format);
    // Each connection, staging file and store read is a descriptor: raise the soft limit to
    // the hard one where the system allows, and say what we got.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(nofile = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }

    // A small runtime of our own for Redis and config-following tasks: pingora builds its
    // runtimes only when the server runs, and these must run for the whole process.
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("nproxy-config")
        .enable_all()
        .build()
        .context("cannot start the background runtime")?;
    let orgs = background.block_on(nproxy_data_plane::org_configs(&settings))?;
    // The control plane client's connection task must live on a runtime that outlives it.
    let _in_background = background.enter();
    let (listen, metrics_listen) = (settings.listen, settings.metrics_listen);
    let lifecycle = std::sync::Arc::new(nproxy_data_plane::Lifecycle::default());
    let shutdown = nproxy_data_plane::DrainingShutdown {
        lifecycle: lifecycle.clone(),
        drain: settings.drain,
        grace: settings.shutdown_grace,
    };
    let server = nproxy_data_plane::build_server(settings, orgs, background.handle(), lifecycle)
        .context("cannot start the data plane")?;
    tracing::info!(%listen, ?metrics_listen, "nproxy data plane listening");
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(shutdown),
    });
    Ok(())
}
