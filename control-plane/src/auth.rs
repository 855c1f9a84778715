//! Who is calling: an admin (bearer token, stored hashed) or the data plane (its own
//! service token, allowed only a few calls). Checked by an interceptor on every service
//! except health and reflection.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tonic::{Request, Status};

use nproxy_common::secret::SecretDigest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin { name: String },
    DataPlane,
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Admin { name } => format!("admin:{name}"),
            Caller::DataPlane => "data-plane".into(),
        }
    }
}

#[derive(Clone, Default)]
pub struct Authenticator {
    admins: Arc<RwLock<HashMap<SecretDigest, String>>>,
    data_plane: Option<SecretDigest>,
}

impl Authenticator {
    pub fn new(data_plane_token: Option<&str>) -> Self {
        Self {
            admins: Arc::default(),
            data_plane: data_plane_token.map(|t| SecretDigest::sha256(t.as_bytes())),
        }
    }

    pub fn set_admins(&self, admins: impl IntoIterator<Item = (Vec<u8>, String)>) {
        let map = admins
            .into_iter()
            .filter(|(h, _)| h.len() == 32)
            .map(|(h, name)| (SecretDigest::from_bytes(&h), name))
            .collect();
        *self.admins.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    fn identify(&self, token: &str) -> Option<Caller> {
        let h = SecretDigest::sha256(token.as_bytes());
        if self.data_plane.as_ref() == Some(&h) {
            return Some(Caller::DataPlane);
        }
        let admins = self.admins.read().unwrap_or_else(|p| p.into_inner());
        // Lookup by the hash of the presented secret: timing reveals nothing about stored ones.
        admins
            .get(&h)
            .map(|name| Caller::Admin { name: name.clone() })
    }

    pub fn intercept(&self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "missing authorization: send `authorization: Bearer <admin token>`",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <token>`"))?
            .trim();
        let caller = self
            .identify(token)
            .ok_or_else(|| Status::unauthenticated("invalid credential"))?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no credential"))
}

/// Admin calls: the data plane's credential is refused.
pub fn require_admin<T>(req: &Request<T>) -> Result<Caller, Status> {
    match caller(req)? {
        c @ Caller::Admin { .. } => Ok(c),
        Caller::DataPlane => Err(Status::permission_denied(
            "the data plane credential may not make admin calls",
        )),
    }
}

/// Calls both admins and data planes may make.
pub fn require_any<T>(req: &Request<T>) -> Result<Caller, Status> {
    caller(req)
}

/// Calls only data planes make (reading upstream credentials back): an admin credential is
/// refused, so a secret an admin stored can't be read back with anything an admin holds.
pub fn require_data_plane<T>(req: &Request<T>) -> Result<Caller, Status> {
    match caller(req)? {
        c @ Caller::DataPlane => Ok(c),
        Caller::Admin { .. } => Err(Status::permission_denied(
            "only the data plane credential may make this call",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use nproxy_proto::tokens::BearerAuth;
    use nproxy_proto::v1 as pb;
    use nproxy_proto::v1::keys_client::KeysClient;
    use nproxy_proto::v1::orgs_client::OrgsClient;
    use nproxy_proto::v1::upstream_routes_client::UpstreamRoutesClient;

    use crate::config::Settings;
    use crate::secrets::MasterKey;
    use crate::sink::NoSink;
    use crate::ControlPlane;

    /// The clients' one bearer interceptor against this one: over a real gRPC connection.
    #[tokio::test]
    async fn the_clients_bearer_auth_is_what_the_interceptor_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            http_listen: None,
            database: dir.path().join("cp.db").display().to_string(),
            redis_url: None,
            master_key: MasterKey::generate(),
            admin_token: Some("nproxy_admin_t".into()),
            data_plane_token: Some("nproxy_dp_t".into()),
            reconcile_interval: Duration::from_secs(3600),
            drain: Duration::ZERO,
            trusted_publishing_token_ttl: Duration::from_secs(900),
        };
        let opened = ControlPlane::open(&settings, Arc::new(NoSink))
            .await
            .expect("open");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(opened.control_plane.serve(listener, async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let auth = |t: Option<&str>| BearerAuth::optional(t).expect("sendable");

        let mut admin = OrgsClient::with_interceptor(channel.clone(), auth(Some("nproxy_admin_t")));
        admin
            .create_org(pb::CreateOrgRequest {
                slug: "acme".into(),
                display_name: String::new(),
            })
            .await
            .expect("an admin may create an org");
        let get = || pb::GetOrgRequest { org: "acme".into() };
        let anonymous = OrgsClient::with_interceptor(channel.clone(), auth(None))
            .get_org(get())
            .await
            .expect_err("no credential");
        assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
        let wrong = OrgsClient::with_interceptor(channel.clone(), auth(Some("nproxy_nope")))
            .get_org(get())
            .await
            .expect_err("unknown credential");
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        let dp = auth(Some("nproxy_dp_t"));
        let refused = OrgsClient::with_interceptor(channel.clone(), dp.clone())
            .get_org(get())
            .await
            .expect_err("the data plane makes no admin calls");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        KeysClient::with_interceptor(channel.clone(), dp.clone())
            .sign(pb::SignRequest {
                org: "acme".into(),
                payload: b"x".to_vec(),
            })
            .await
            .expect("the data plane may sign");
        let creds = || pb::GetUpstreamCredentialsRequest { org: "acme".into() };
        UpstreamRoutesClient::with_interceptor(channel.clone(), dp)
            .get_upstream_credentials(creds())
            .await
            .expect("the data plane reads upstream credentials");
        let admin_reads =
            UpstreamRoutesClient::with_interceptor(channel, auth(Some("nproxy_admin_t")))
                .get_upstream_credentials(creds())
                .await
                .expect_err("an admin never reads them back");
        assert_eq!(admin_reads.code(), tonic::Code::PermissionDenied);

        let _ = stop.send(());
        server.await.expect("join").expect("served");
    }
}
