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

    /// Signs with the org's active keys: the Ed25519 one and the npm-format ECDSA one.
    pub async fn sign(
        &self,
        org_id: &str,
        payload: Vec<u8>,
    ) -> Result<pb::SignResponse, SignUnavailable> {
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
        if r.npm_key_id.is_empty() {
            tracing::warn!("the control plane signed without an npm-format key (older version?); the version gets no dist.signatures");
        }
        Ok(r)
    }

    /// Trusted publishing: a CI job's OIDC id token for a short-lived publish token. The
    /// status is the control plane's verdict (UNAUTHENTICATED, PERMISSION_DENIED, …).
    pub async fn exchange_oidc(
        &self,
        req: pb::ExchangeOidcTokenRequest,
    ) -> Result<pb::ExchangeOidcTokenResponse, tonic::Status> {
        use nproxy_proto::v1::trusted_publishers_client::TrustedPublishersClient;
        self.endpoints
            .call(|ch| {
                let req = req.clone();
                let auth = self.auth.clone();
                async move {
                    TrustedPublishersClient::with_interceptor(ch, auth)
                        .exchange_oidc_token(req)
                        .await
                }
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The org's upstream routes' credentials (data-plane credential only). Kept in memory
    /// by the caller, never logged.
    pub async fn upstream_credentials(
        &self,
        org_id: &str,
    ) -> Result<Vec<pb::UpstreamCredential>, tonic::Status> {
        use nproxy_proto::v1::upstream_routes_client::UpstreamRoutesClient;
        self.endpoints
            .call(|ch| {
                let req = pb::GetUpstreamCredentialsRequest {
                    org: org_id.to_string(),
                };
                let auth = self.auth.clone();
                async move {
                    UpstreamRoutesClient::with_interceptor(ch, auth)
                        .get_upstream_credentials(req)
                        .await
                }
            })
            .await
            .map(|r| r.into_inner().credentials)
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
