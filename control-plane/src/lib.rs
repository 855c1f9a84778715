//! nproxy's control plane: the tonic gRPC server that owns orgs, internal scopes, API tokens,
//! signing keys, trusted publishers, upstream routes and the audit log, and publishes each
//! org's config to Redis.
//! See ARCHITECTURE.md at the repository root.

pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod http_api;
pub mod keys;
pub mod oidc;
pub mod secrets;
pub mod service;
pub mod sink;
pub mod snapshot;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use nproxy_proto::v1::advisories_server::AdvisoriesServer;
use nproxy_proto::v1::audit_server::AuditServer;
use nproxy_proto::v1::data_plane_server::DataPlaneServer;
use nproxy_proto::v1::keys_server::KeysServer;
use nproxy_proto::v1::orgs_server::OrgsServer;
use nproxy_proto::v1::rules_service_server::RulesServiceServer;
use nproxy_proto::v1::tokens_server::TokensServer;
use nproxy_proto::v1::trusted_publishers_server::TrustedPublishersServer;
use nproxy_proto::v1::upstream_routes_server::UpstreamRoutesServer;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::error::{CpError, CpResult};
use crate::secrets::{new_api_token, sha256};
use crate::service::{Api, State};
use crate::sink::ConfigSink;
use crate::store::Db;

pub struct ControlPlane {
    state: Arc<State>,
    reconcile_interval: std::time::Duration,
    drain: std::time::Duration,
    /// The JSON/HTTP admin API's listener, when served (`with_http`).
    http: Option<TcpListener>,
}

/// What `open` did that the operator must know about.
pub struct Opened {
    pub control_plane: ControlPlane,
    /// Set when no admin credential existed and none was configured: the first one, to be
    /// shown once.
    pub created_admin_token: Option<String>,
}

impl ControlPlane {
    pub async fn open(settings: &Settings, sink: Arc<dyn ConfigSink>) -> CpResult<Opened> {
        let db = Db::open(&settings.database).await?;
        if let Some(t) = &settings.admin_token {
            db.insert_admin("configured", &sha256(t)).await?;
        }
        let mut created = None;
        if db.admin_credentials().await?.is_empty() {
            let token = new_api_token().replacen("nproxy_", "nproxy_admin_", 1);
            db.insert_admin("initial", &sha256(&token)).await?;
            created = Some(token);
        }
        let auth = Authenticator::new(settings.data_plane_token.as_deref());
        auth.set_admins(
            db.admin_credentials()
                .await?
                .into_iter()
                .map(|a| (a.sha256, a.name)),
        );
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let state = Arc::new(State {
            db,
            master_key: settings.master_key.clone(),
            sink,
            auth,
            events,
            oidc: oidc::Oidc::new(settings.trusted_publishing_token_ttl)
                .map_err(CpError::Internal)?,
        });
        service::backfill_npm_keys(&state).await?;
        Ok(Opened {
            control_plane: ControlPlane {
                state,
                reconcile_interval: settings.reconcile_interval,
                drain: settings.drain,
                http: None,
            },
            created_admin_token: created,
        })
    }

    /// Also serves the JSON/HTTP admin API (`http_api`) on `listener`; it stops with gRPC.
    pub fn with_http(mut self, listener: TcpListener) -> Self {
        self.http = Some(listener);
        self
    }

    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    /// Serves gRPC on `listener` until `shutdown` resolves; reconciles Redis at start and
    /// every interval meanwhile. Stopping drains: gRPC health turns NOT_SERVING at once,
    /// the listener stays open for the drain time (a call that arrives meanwhile is still
    /// answered), then it closes and the calls under way finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let state = self.state.clone();
        let interval = self.reconcile_interval;
        let reconciler = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = service::reconcile_once(&state).await {
                    tracing::warn!(error = %e, "reconcile failed");
                }
            }
        });

        let api = Api(self.state.clone());
        let auth = self.state.auth.clone();
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<OrgsServer<Api>>().await;
        let drain = self.drain;
        // The HTTP API stops accepting when gRPC does: after the drain (or when gRPC fails).
        let (drained, drained_rx) = tokio::sync::watch::channel(false);
        let http = self
            .http
            .map(|l| tokio::spawn(http_api::serve(api.clone(), l, drained_rx)));
        let shutdown = async move {
            shutdown.await;
            tracing::info!(
                drain_secs = drain.as_secs(),
                "stopping: health is NOT_SERVING, draining"
            );
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            health.set_not_serving::<OrgsServer<Api>>().await;
            tokio::time::sleep(drain).await;
            let _ = drained.send(true);
        };
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(nproxy_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        macro_rules! guarded {
            ($server:ident) => {{
                let auth = auth.clone();
                $server::with_interceptor(api.clone(), move |req| auth.intercept(req))
            }};
        }
        let result = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(guarded!(OrgsServer))
            .add_service(guarded!(TokensServer))
            .add_service(guarded!(KeysServer))
            .add_service(guarded!(AuditServer))
            .add_service(guarded!(DataPlaneServer))
            .add_service(guarded!(RulesServiceServer))
            .add_service(guarded!(AdvisoriesServer))
            .add_service(guarded!(TrustedPublishersServer))
            .add_service(guarded!(UpstreamRoutesServer))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown,
            )
            .await;
        reconciler.abort();
        if let Some(http) = http {
            let _ = http.await;
        }
        self.state.db.close().await;
        result.map_err(Into::into)
    }
}

/// Connects the configured sink: Redis if a URL is set, else none.
pub async fn connect_sink(settings: &Settings) -> Result<Arc<dyn ConfigSink>, redis::RedisError> {
    Ok(match &settings.redis_url {
        Some(url) => Arc::new(sink::RedisSink::connect(url).await?),
        None => Arc::new(sink::NoSink),
    })
}
