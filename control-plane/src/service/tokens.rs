use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::tokens_server::Tokens;

use nproxy_proto::validate;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{after, page_token, Api, Change};
use crate::auth::require_admin;
use crate::secrets::{new_api_token, sha256};
use crate::store::{new_id, now_ms, Db, TokenRow};

fn token_pb(t: &TokenRow) -> pb::Token {
    pb::Token {
        id: t.id.clone(),
        org_id: t.org_id.clone(),
        name: t.name.clone(),
        scopes: t.scope_values(),
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms,
        last_used_at_ms: t.last_used_at_ms,
        revoked_at_ms: t.revoked_at_ms,
        secret_prefix: t.secret_prefix.clone(),
        packages: t.packages.clone(),
    }
}

#[tonic::async_trait]
impl Tokens for Api {
    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let scopes = validate::token_scopes("scopes", &r.scopes)?;
        let name = validate::display_name("name", &r.name)?;
        if name.is_empty() {
            return Err(validate::FieldError::new("name", "is required").into());
        }
        if let Some(exp) = r.expires_at_ms {
            if exp <= now_ms() {
                return Err(
                    validate::FieldError::new("expires_at_ms", "must be in the future").into(),
                );
            }
        }
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let secret = new_api_token();
        let row = TokenRow {
            id: new_id(),
            org_id: org.id.clone(),
            name,
            sha256: sha256(&secret).to_vec(),
            secret_prefix: secret.chars().take(12).collect(),
            scopes: scopes.iter().map(|s| s.label().to_string()).collect(),
            created_at_ms: now_ms(),
            expires_at_ms: r.expires_at_ms,
            last_used_at_ms: None,
            revoked_at_ms: None,
            packages: Vec::new(),
        };
        st.mutate(&org, &actor, async |conn| {
            Db::insert_token(conn, &row).await?;
            Db::bump_config_version(conn, &org.id).await?;
            Ok(Change::new(
                (),
                events::TOKEN_CREATED,
                json!({"token_id": row.id, "name": row.name, "scopes": row.scopes, "expires_at_ms": row.expires_at_ms}),
            ))
        })
        .await?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(token_pb(&row)),
            secret,
        }))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        require_admin(&req)?;
        let r = req.into_inner();
        let size = validate::page_size("page_size", r.page_size)?;
        let org = self.0.db.org(&r.org).await?;
        // Fold in what data planes reported since the last reconcile.
        match self.0.sink.token_usage(&org.id).await {
            Ok(used) => self.0.db.record_token_use(&org.id, &used).await?,
            Err(e) => tracing::warn!(error = %e, "cannot read token use from Redis"),
        }
        let rows = self
            .0
            .db
            .list_tokens(&org.id, &after(&r.page_token)?, size, r.include_revoked)
            .await?;
        Ok(Response::new(pb::ListTokensResponse {
            next_page_token: page_token(
                rows.last().map(|t| t.id.as_str()),
                rows.len() as u32 == size,
            ),
            tokens: rows.iter().map(token_pb).collect(),
        }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::Token>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let revoked = st
            .mutate(&org, &actor, async |conn| {
                let before = Db::token(conn, &org.id, &r.token_id).await?;
                if before.revoked_at_ms.is_some() {
                    // Already revoked: answered as it is, nothing recorded or published.
                    return Ok(Change::none(before));
                }
                Db::revoke_token(conn, &before.id).await?;
                Db::bump_config_version(conn, &org.id).await?;
                let after_row = Db::token(conn, &org.id, &r.token_id).await?;
                Ok(Change::new(
                    after_row,
                    events::TOKEN_REVOKED,
                    json!({"token_id": before.id, "name": before.name}),
                ))
            })
            .await?;
        Ok(Response::new(token_pb(&revoked)))
    }
}
