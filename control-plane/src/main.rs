//! `nproxy-control-plane`: the gRPC server admins and data planes talk to.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use figment::providers::Serialized;
use nproxy_control_plane::config::Config;
use nproxy_control_plane::{connect_sink, ControlPlane};

#[derive(Parser, Debug)]
#[command(
    name = "nproxy-control-plane",
    version,
    about = "nproxy's control plane (gRPC)"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "NPROXY_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address (host:port).
    #[arg(long)]
    listen: Option<String>,
    /// The JSON/HTTP admin API's listen address (host:port); empty: not served.
    #[arg(long)]
    http_listen: Option<String>,
    /// SQLite database file, or a postgres:// URL (several control planes may share one).
    #[arg(long)]
    database: Option<String>,
    /// Redis URL the org config is published to.
    #[arg(long)]
    redis_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut f = Config::figment(cli.config.as_deref());
    if let Some(v) = cli.listen {
        f = f.merge(Serialized::default("listen", v));
    }
    if let Some(v) = cli.http_listen {
        f = f.merge(Serialized::default("http_listen", v));
    }
    if let Some(v) = cli.database {
        f = f.merge(Serialized::default("database", v));
    }
    if let Some(v) = cli.redis_url {
        f = f.merge(Serialized::default("redis_url", v));
    }
    let settings = Config::load(f)?.validate()?;
    nproxy_common::logging::init("info", nproxy_common::logging::Format::Text);

    let sink = connect_sink(&settings)
        .await
        .context("cannot connect to Redis")?;
    let opened = ControlPlane::open(&settings, sink).await?;
    if let Some(token) = &opened.created_admin_token {
        // Shown once: only its hash is stored.
        eprintln!("Created the first admin credential. Store it now; it is not shown again:\n\n    {token}\n");
    }
    let mut control_plane = opened.control_plane;
    if let Some(addr) = settings.http_listen {
        let http = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
        tracing::info!(http_listen = %http.local_addr()?, "admin HTTP API listening");
        control_plane = control_plane.with_http(http);
    }
    // gRPC last: once it accepts, everything is listening.
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "nproxy control plane listening");
    control_plane
        .serve(listener, stop_signal())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

/// SIGTERM (what Kubernetes and systemd send) or SIGINT: both drain (see `serve`).
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
