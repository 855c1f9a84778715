//! The data plane's client for the control plane: signing published versions and handing
//! over audit events. It authenticates with the data plane's own credential, which the
//! control plane allows nothing else.

use std::time::Duration;

use nproxy_proto::tokens::BearerAuth;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::audit_client::AuditClient;
use nproxy_proto::v1::keys_client::KeysClient;
use tonic::transport::Channel;

use crate::internal::error::SignUnavailable;

#[derive(Clone)]
pub struct ControlPlaneClient {
    channel: Channel,
    auth: BearerAuth,
}

impl ControlPlaneClient {
    pub fn new(url: &str, token: &str) -> Result<Self, String> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("control_plane_url: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        let auth = BearerAuth::new(token)
            .map_err(|_| "control_plane_token has characters a header can't carry".to_string())?;
        Ok(Self { channel, auth })
    }

    /// Signs with the org's active key: (key id, signature).
    pub async fn sign(
        &self,
        org_id: &str,
        payload: Vec<u8>,
    ) -> Result<(String, Vec<u8>), SignUnavailable> {
        let r = KeysClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .sign(pb::SignRequest {
                org: org_id.to_string(),
                payload,
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
        AuditClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .record_events(pb::RecordEventsRequest {
                org: org_id.to_string(),
                events,
            })
            .await
            .map(|r| r.into_inner().recorded)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }
}
