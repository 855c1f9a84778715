use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::orgs_server::Orgs;
use nproxy_proto::validate;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{after, org_pb, page_token, Api, Change};
use crate::auth::require_admin;
use crate::keys;
use crate::store::{new_id, now_ms, Db, OrgRow};

#[tonic::async_trait]
impl Orgs for Api {
    async fn create_org(
        &self,
        req: Request<pb::CreateOrgRequest>,
    ) -> Result<Response<pb::Org>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let slug = validate::slug("slug", &r.slug)?;
        let display_name = validate::display_name("display_name", &r.display_name)?;
        let org = OrgRow {
            id: new_id(),
            display_name: if display_name.is_empty() {
                slug.clone()
            } else {
                display_name
            },
            slug,
            created_at_ms: now_ms(),
            config_version: 1,
            internal_scopes: Vec::new(),
            public_reads: true,
        };
        let st = &self.0;
        st.mutate(&org, &actor, async |conn| {
            Db::insert_org(conn, &org).await?;
            let key = keys::new_key(&st.master_key, &org.id, keys::Algorithm::Ed25519)?;
            let npm_key = keys::new_key(&st.master_key, &org.id, keys::Algorithm::EcdsaP256)?;
            Db::insert_key(conn, &key).await?;
            Db::insert_key(conn, &npm_key).await?;
            Ok(Change::new(
                (),
                events::ORG_CREATED,
                json!({"slug": org.slug, "display_name": org.display_name}),
            )
            .then(
                events::KEY_CREATED,
                json!({"key_id": key.key_id, "algorithm": "ed25519"}),
            )
            .then(
                events::KEY_CREATED,
                json!({"key_id": npm_key.key_id, "algorithm": "ecdsa-p256"}),
            ))
        })
        .await?;
        Ok(Response::new(org_pb(&org)))
    }

    async fn get_org(&self, req: Request<pb::GetOrgRequest>) -> Result<Response<pb::Org>, Status> {
        require_admin(&req)?;
        let org = self.0.db.org(&req.into_inner().org).await?;
        Ok(Response::new(org_pb(&org)))
    }

    async fn list_orgs(
        &self,
        req: Request<pb::ListOrgsRequest>,
    ) -> Result<Response<pb::ListOrgsResponse>, Status> {
        require_admin(&req)?;
        let r = req.into_inner();
        let size = validate::page_size("page_size", r.page_size)?;
        let rows = self.0.db.list_orgs(&after(&r.page_token)?, size).await?;
        Ok(Response::new(pb::ListOrgsResponse {
            next_page_token: page_token(
                rows.last().map(|o| o.id.as_str()),
                rows.len() as u32 == size,
            ),
            orgs: rows.iter().map(org_pb).collect(),
        }))
    }

    async fn delete_org(
        &self,
        req: Request<pb::DeleteOrgRequest>,
    ) -> Result<Response<pb::DeleteOrgResponse>, Status> {
        let actor = require_admin(&req)?.actor();
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        // Once committed the snapshot is gone, so publishing removes the key from Redis and
        // tells data planes.
        st.mutate(&org, &actor, async |conn| {
            Db::delete_org(conn, &org.id).await?;
            Ok(Change::new(
                (),
                events::ORG_DELETED,
                json!({"slug": org.slug}),
            ))
        })
        .await?;
        Ok(Response::new(pb::DeleteOrgResponse {}))
    }

    async fn get_settings(
        &self,
        req: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::OrgSettings>, Status> {
        require_admin(&req)?;
        let org = self.0.db.org(&req.into_inner().org).await?;
        Ok(Response::new(pb::OrgSettings {
            org_id: org.id,
            internal_scopes: org.internal_scopes,
            public_reads: org.public_reads,
        }))
    }

    async fn update_settings(
        &self,
        req: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::OrgSettings>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let scopes = match r.internal_scopes {
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for s in &list.scopes {
                    let s = validate::npm_scope("internal_scopes", s)?;
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                out
            }
            None => org.internal_scopes.clone(),
        };
        let public_reads = r.public_reads.unwrap_or(org.public_reads);
        st.mutate(&org, &actor, async |conn| {
            super::upstream_routes::refuse_routed_internal_scopes(conn, &org.id, &scopes).await?;
            Db::update_settings(conn, &org.id, &scopes, public_reads).await?;
            Ok(Change::new(
                (),
                events::ORG_SETTINGS_CHANGED,
                json!({
                    "internal_scopes": {"from": org.internal_scopes, "to": scopes},
                    "public_reads": {"from": org.public_reads, "to": public_reads},
                }),
            ))
        })
        .await?;
        Ok(Response::new(pb::OrgSettings {
            org_id: org.id,
            internal_scopes: scopes,
            public_reads,
        }))
    }
}
