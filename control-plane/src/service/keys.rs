use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::keys_server::Keys;
use nproxy_proto::v1::KeyStatus;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{Api, Change};
use crate::auth::{require_admin, require_any};
use crate::error::CpError;
use crate::keys;
use crate::store::{Db, KeyRow};

fn key_pb(k: &KeyRow) -> pb::SigningKey {
    pb::SigningKey {
        key_id: k.key_id.clone(),
        org_id: k.org_id.clone(),
        algorithm: "ed25519".into(),
        public_key: k.public_key.clone(),
        status: if k.retired_at_ms.is_none() {
            KeyStatus::Active
        } else {
            KeyStatus::Retired
        } as i32,
        created_at_ms: k.created_at_ms,
        retired_at_ms: k.retired_at_ms,
    }
}

#[tonic::async_trait]
impl Keys for Api {
    async fn list_keys(
        &self,
        req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        // Public keys: verifiers (nproxyctl verify) and data planes may read them.
        require_any(&req)?;
        let org = self.0.db.org(&req.into_inner().org).await?;
        let keys = self.0.db.keys_of(&org.id).await?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(key_pb).collect(),
        }))
    }

    async fn rotate_key(
        &self,
        req: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::SigningKey>, Status> {
        let actor = require_admin(&req)?.actor();
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        let key = keys::new_key(&st.master_key, &org.id)?;
        st.mutate(&org, &actor, async |conn| {
            let retired: Vec<String> = Db::keys(conn, &org.id)
                .await?
                .into_iter()
                .filter(|k| k.retired_at_ms.is_none())
                .map(|k| k.key_id)
                .collect();
            Db::retire_keys(conn, &org.id).await?;
            Db::insert_key(conn, &key).await?;
            Db::bump_config_version(conn, &org.id).await?;
            Ok(Change::new(
                (),
                events::KEY_ROTATED,
                json!({"key_id": key.key_id, "retired": retired}),
            ))
        })
        .await?;
        Ok(Response::new(key_pb(&key)))
    }

    async fn sign(
        &self,
        req: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        require_any(&req)?;
        let r = req.into_inner();
        if r.payload.is_empty() || r.payload.len() > 64 * 1024 {
            return Err(nproxy_proto::validate::FieldError::new(
                "payload",
                "must be 1 byte to 64 KiB",
            )
            .into());
        }
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let active = st
            .db
            .keys_of(&org.id)
            .await?
            .into_iter()
            .rev()
            .find(|k| k.retired_at_ms.is_none())
            .ok_or_else(|| {
                CpError::FailedPrecondition(format!("org {} has no active signing key", org.slug))
            })?;
        let signature = keys::sign(&st.master_key, &active, &r.payload)?;
        Ok(Response::new(pb::SignResponse {
            key_id: active.key_id,
            signature,
        }))
    }
}
