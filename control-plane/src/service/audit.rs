use std::pin::Pin;

use futures::Stream;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::audit_server::Audit;
use nproxy_proto::validate::{self, FieldError};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::{event_pb, Api};
use crate::audit::{self as chain, NewEvent};
use crate::auth::{require_admin, require_any, Caller};
use crate::store::now_ms;
use crate::store::AuditQuery;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Audit for Api {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        require_admin(&req)?;
        let r = req.into_inner();
        let size = validate::page_size("page_size", r.page_size)?;
        let org_id = self.0.db.any_org_id(&r.org).await?;
        let after_seq = if r.page_token.is_empty() {
            0
        } else {
            super::after(&r.page_token)?.parse::<i64>().map_err(|_| {
                FieldError::new("page_token", "is not a token returned by a previous page")
            })?
        };
        let q = AuditQuery {
            org_id,
            kind: r.r#type,
            since_ms: r.since_ms,
            until_ms: r.until_ms,
        };
        let rows = self.0.db.events(&q, after_seq, size).await?;
        let last = rows.last().map(|e| e.seq.to_string());
        Ok(Response::new(pb::ListEventsResponse {
            next_page_token: super::page_token(last.as_deref(), rows.len() as u32 == size),
            events: rows.iter().map(event_pb).collect(),
        }))
    }

    type FollowEventsStream = EventStream;

    async fn follow_events(
        &self,
        req: Request<pb::FollowEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        require_admin(&req)?;
        let r = req.into_inner();
        let org_id = if r.org.is_empty() {
            None
        } else {
            Some(self.0.db.any_org_id(&r.org).await?)
        };
        let kind = r.r#type;
        let stream =
            BroadcastStream::new(self.0.events.subscribe()).filter_map(move |item| match item {
                Ok(e) => {
                    let org_ok = org_id.as_ref().is_none_or(|o| *o == e.org_id);
                    let kind_ok = kind.is_empty() || kind == e.kind;
                    (org_ok && kind_ok).then(|| Ok(event_pb(&e)))
                }
                // A slow follower missed events: say so rather than silently skipping.
                Err(_) => Some(Err(Status::data_loss(
                    "the follower fell behind; some events were skipped (use list to catch up)",
                ))),
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn verify_chain(
        &self,
        req: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        require_admin(&req)?;
        let st = &self.0;
        let org_id = st.db.any_org_id(&req.into_inner().org).await?;
        let events = st.db.all_events(&org_id).await?;
        let anchor = st.db.anchor(&org_id).await?;
        let external = match st.sink.audit_head(&org_id).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit head from Redis; verifying without it");
                None
            }
        };
        let problems = chain::verify(&org_id, &events, anchor.as_ref(), external, &st.master_key);
        Ok(Response::new(pb::VerifyChainResponse {
            ok: problems.is_empty(),
            events_checked: events.len() as u64,
            problems,
        }))
    }

    async fn record_events(
        &self,
        req: Request<pb::RecordEventsRequest>,
    ) -> Result<Response<pb::RecordEventsResponse>, Status> {
        let caller = require_any(&req)?;
        let r = req.into_inner();
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        if r.events.len() > 1000 {
            return Err(FieldError::new("events", "at most 1000 per call").into());
        }
        for e in &r.events {
            let kind = e.r#type.as_str();
            let by_admin = matches!(caller, Caller::Admin { .. })
                && nproxy_proto::events::ADMIN_RECORDED_KINDS.contains(&kind);
            if !by_admin && !nproxy_proto::events::DATA_PLANE_KINDS.contains(&kind) {
                return Err(FieldError::new(
                    "events.type",
                    format!("{:?} is not a data plane event", e.r#type),
                )
                .into());
            }
            if e.idempotency_key.is_empty() || e.idempotency_key.len() > 200 {
                return Err(FieldError::new(
                    "events.idempotency_key",
                    "is required (at most 200 characters)",
                )
                .into());
            }
            if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&e.details_json)
                .is_err()
            {
                return Err(FieldError::new("events.details_json", "must be a JSON object").into());
            }
        }
        let actor = match caller {
            Caller::DataPlane => "data-plane".to_string(),
            c => c.actor(),
        };
        let mut w = st.db.write().await?;
        let mut recorded = Vec::new();
        for e in r.events {
            let details: serde_json::Value =
                serde_json::from_str(&e.details_json).unwrap_or_default();
            let time_ms = if e.time_ms > 0 { e.time_ms } else { now_ms() };
            if let Some(row) = chain::append(
                &mut w,
                &st.master_key,
                NewEvent {
                    org_id: &org.id,
                    kind: &e.r#type,
                    actor: &actor,
                    details,
                    time_ms,
                    idempotency_key: Some(&e.idempotency_key),
                },
            )
            .await?
            {
                recorded.push(row);
            }
        }
        w.commit().await?;
        for e in &recorded {
            st.announce(e).await;
        }
        Ok(Response::new(pb::RecordEventsResponse {
            recorded: recorded.len() as u32,
        }))
    }
}
