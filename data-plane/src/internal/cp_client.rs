//! The data plane's client for the control plane: signing published versions and handing
//! over audit events. It authenticates with the data plane's own credential, which the
//! control plane allows nothing else.

use std::time::Duration;

use std::sync::Arc;

use nproxy_proto::endpoints::Endpoints;
use nproxy_proto::tokens::BearerAuth;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::audit_client::AuditClient;
use nproxy_proto::v1::keys_client::KeysClient;

use crate::internal::error::SignUnavailable;

#[derive(Clone)]
pub struct ControlPlaneClient {
    /// Every configured control plane; a call fails over from one that is down (both calls
    /// are safe to repeat: a signature, and events with idempotency keys).
    endpoints: Arc<Endpoints>,
    auth: BearerAuth,
}

impl ControlPlaneClient {
    pub fn new(urls: &[String], token: &str) -> Result<Self, String> {
        let endpoints = Endpoints::lazy(urls, Duration::from_secs(2), Duration::from_secs(10))
            .map_err(|e| format!("control_plane_url: {e}"))?;
        let auth = BearerAuth::new(token)
            .map_err(|_| "control_plane_token has characters a header can't carry".to_string())?;
        Ok(Self {
            endpoints: Arc::new(endpoints),
            auth,
        })
    }

    /// Signs with the org's active key: (key id, signature).
    pub async fn sign(
        &self,
        org_id: &str,
        payload: Vec<u8>,
    ) -> Result<(String, Vec<u8>), SignUnavailable> {
        let r = self
            .endpoints
            .call(|ch| {
                let req = pb::SignRequest {
                    org: org_id.to_string(),
                    payload: payload.clone(),
                };
                let auth = self.auth.clone();
                async move { KeysClient::with_interceptor(ch, auth).sign(req).await }
            })
            .await
            .map_err(|s| {
                tracing::warn!(code = ?s.code(), error = %s.message(), "signing failed");
                SignUnavailable
            })?
            .into_inner();
        Ok((r.key_id, r.signature))
    }

    pub async fn record(&self, org_id: &str, events: Vec<pb::NewEvent>) -> Result<u32, String> {
        self.endpoints
            .call(|ch| {
                let req = pb::RecordEventsRequest {
                    org: org_id.to_string(),
                    events: events.clone(),
                };
                let auth = self.auth.clone();
                async move {
                    AuditClient::with_interceptor(ch, auth)
                        .record_events(req)
                        .await
                }
            })
            .await
            .map(|r| r.into_inner().recorded)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }
}
