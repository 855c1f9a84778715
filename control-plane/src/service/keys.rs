use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::keys_server::Keys;
use nproxy_proto::v1::KeyStatus;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{Api, Change};
use crate::auth::{require_admin, require_any};
use crate::error::CpError;
use crate::keys::{self, Algorithm};
use crate::store::{Db, KeyRow, OrgRow};

use super::State;

/// The org's active key of `algorithm` (the newest, should there ever be two).
fn active(keys: &[KeyRow], algorithm: Algorithm, org: &OrgRow) -> Result<KeyRow, CpError> {
    keys.iter()
        .rev()
        .find(|k| k.retired_at_ms.is_none() && k.algorithm == algorithm.label())
        .cloned()
        .ok_or_else(|| {
            CpError::FailedPrecondition(format!(
                "org {} has no active {} signing key",
                org.slug,
                algorithm.label()
            ))
        })
}

/// Orgs created before npm-format keys existed get one at start (idempotent: checked again
/// inside the write, so control planes starting together create one, not two).
pub(crate) async fn backfill_npm_keys(st: &State) -> Result<(), CpError> {
    let label = Algorithm::EcdsaP256.label();
    for org_id in st.db.orgs_without_active_key(label).await? {
        let org = st.db.org(&org_id).await?;
        let key = keys::new_key(&st.master_key, &org.id, Algorithm::EcdsaP256)?;
        st.mutate(&org, "system", async |conn| {
            let held = Db::keys(conn, &org.id).await?;
            if held
                .iter()
                .any(|k| k.retired_at_ms.is_none() && k.algorithm == label)
            {
                return Ok(Change::none(()));
            }
            Db::insert_key(conn, &key).await?;
            Db::bump_config_version(conn, &org.id).await?;
            Ok(Change::new(
                (),
                events::KEY_CREATED,
                json!({"key_id": key.key_id, "algorithm": label}),
            ))
        })
        .await?;
        tracing::info!(org = %org.slug, key_id = %key.key_id, "created the org's npm-format signing key");
    }
    Ok(())
}

fn key_pb(k: &KeyRow) -> pb::SigningKey {
    pb::SigningKey {
        key_id: k.key_id.clone(),
        org_id: k.org_id.clone(),
        algorithm: k.algorithm.clone(),
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
        // Both algorithms rotate together: one rotation retires everything the org signs with.
        let key = keys::new_key(&st.master_key, &org.id, Algorithm::Ed25519)?;
        let npm_key = keys::new_key(&st.master_key, &org.id, Algorithm::EcdsaP256)?;
        st.mutate(&org, &actor, async |conn| {
            let retired: Vec<String> = Db::keys(conn, &org.id)
                .await?
                .into_iter()
                .filter(|k| k.retired_at_ms.is_none())
                .map(|k| k.key_id)
                .collect();
            Db::retire_keys(conn, &org.id).await?;
            Db::insert_key(conn, &key).await?;
            Db::insert_key(conn, &npm_key).await?;
            Db::bump_config_version(conn, &org.id).await?;
            Ok(Change::new(
                (),
                events::KEY_ROTATED,
                json!({"key_id": key.key_id, "npm_key_id": npm_key.key_id, "retired": retired}),
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
        let held = st.db.keys_of(&org.id).await?;
        let ed = active(&held, Algorithm::Ed25519, &org)?;
        let npm = active(&held, Algorithm::EcdsaP256, &org)?;
        let signature = keys::sign(&st.master_key, &ed, &r.payload)?;
        let npm_signature = keys::sign(&st.master_key, &npm, &r.payload)?;
        Ok(Response::new(pb::SignResponse {
            key_id: ed.key_id,
            signature,
            npm_key_id: npm.key_id,
            npm_signature,
        }))
    }
}
