//! The gRPC services. Each org mutation reads validate → `State::mutate` → answer: one write
//! transaction with its audit events, then the org's snapshot published to the config sink
//! and the new events to followers.

mod audit;
mod dataplane;
mod exchange;
mod keys;
mod orgs;
mod rules;
mod tokens;
mod trusted;
mod upstream_check;
mod upstream_routes;

pub(crate) use keys::backfill_npm_keys;

use std::sync::Arc;

use base64::Engine;
use nproxy_proto::v1 as pb;
use tokio::sync::broadcast;

use crate::audit::NewEvent;
use crate::auth::Authenticator;
use crate::error::{CpError, CpResult};
use crate::secrets::MasterKey;
use crate::sink::{ConfigSink, Stamp};
use sqlx::AnyConnection;

use crate::store::{Db, EventRow, OrgRow, Write};
use crate::{audit as chain, snapshot};

pub struct State {
    pub db: Db,
    pub master_key: MasterKey,
    pub sink: Arc<dyn ConfigSink>,
    pub auth: Authenticator,
    pub events: broadcast::Sender<EventRow>,
    /// Trusted publishing: the issuers' keys, the minted tokens' lifetime.
    pub oidc: crate::oidc::Oidc,
}

/// The one struct behind every service.
#[derive(Clone)]
pub struct Api(pub Arc<State>);

pub(crate) fn page_token(last: Option<&str>, full_page: bool) -> String {
    match last {
        Some(id) if full_page => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
        _ => String::new(),
    }
}

pub(crate) fn after(token: &str) -> CpResult<String> {
    if token.is_empty() {
        return Ok(String::new());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            CpError::Invalid(nproxy_proto::validate::FieldError::new(
                "page_token",
                "is not a token returned by a previous page",
            ))
        })
}

pub(crate) fn org_pb(o: &OrgRow) -> pb::Org {
    pb::Org {
        id: o.id.clone(),
        slug: o.slug.clone(),
        display_name: o.display_name.clone(),
        created_at_ms: o.created_at_ms,
    }
}

pub(crate) fn event_pb(e: &EventRow) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.clone(),
        org_id: e.org_id.clone(),
        seq: u64::try_from(e.seq).unwrap_or(0),
        time_ms: e.time_ms,
        r#type: e.kind.clone(),
        actor: e.actor.clone(),
        details_json: e.details_json.clone(),
        hash: e.hash.clone(),
        prev_hash: e.prev_hash.clone(),
    }
}

/// What an org mutation did inside its transaction: the RPC's answer and the audit events to
/// record with it, in order.
pub(crate) struct Change<T> {
    answer: T,
    events: Vec<(&'static str, serde_json::Value)>,
}

impl<T> Change<T> {
    /// A change recorded as one audit event (`then` adds more).
    pub(crate) fn new(answer: T, kind: &'static str, details: serde_json::Value) -> Self {
        Change {
            answer,
            events: vec![(kind, details)],
        }
    }

    pub(crate) fn then(mut self, kind: &'static str, details: serde_json::Value) -> Self {
        self.events.push((kind, details));
        self
    }

    /// Nothing to change (e.g. revoking a revoked token): rolled back, nothing recorded or
    /// published.
    pub(crate) fn none(answer: T) -> Self {
        Change {
            answer,
            events: Vec::new(),
        }
    }
}

impl State {
    /// Every org mutation, in one place: under the writer lock, `change` runs in a write
    /// transaction; its audit events are appended in the same transaction (so a change and
    /// its record commit together or not at all), in order, as `actor`; then the commit, and
    /// only after it the org's snapshot (or its removal) and the events are published
    /// (`after_commit`). Any error before the commit rolls everything back and is returned
    /// unchanged, for the RPC to map to its status.
    pub(crate) async fn mutate<T>(
        &self,
        org: &OrgRow,
        actor: &str,
        change: impl AsyncFnOnce(&mut AnyConnection) -> CpResult<Change<T>>,
    ) -> CpResult<T> {
        let mut w = self.db.write().await?;
        let Change { answer, events } = change(w.conn()).await?;
        if events.is_empty() {
            // Dropping `w` rolls back: nothing changed, so nothing is published either.
            return Ok(answer);
        }
        let mut recorded = Vec::new();
        for (kind, details) in events {
            recorded.extend(self.record(&mut w, &org.id, kind, actor, details).await?);
        }
        w.commit().await?;
        self.after_commit(&org.id, &org.slug, &recorded).await;
        Ok(answer)
    }

    /// Appends an audit event in `w`; the caller commits, then calls `after_commit`.
    async fn record(
        &self,
        w: &mut Write<'_>,
        org_id: &str,
        kind: &str,
        actor: &str,
        details: serde_json::Value,
    ) -> CpResult<Option<EventRow>> {
        chain::append(
            w,
            &self.master_key,
            NewEvent {
                org_id,
                kind,
                actor,
                details,
                time_ms: crate::store::now_ms(),
                idempotency_key: None,
            },
        )
        .await
    }

    /// After a commit: publish the org's config (or its removal) and the new events. A sink
    /// failure is logged, not returned: the change is durable, and reconciliation repairs
    /// Redis.
    pub(crate) async fn after_commit(&self, org_id: &str, slug: &str, events: &[EventRow]) {
        let (stamp, snapshot) = match self.snapshot_bytes(org_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(org = %slug, error = %e, "cannot build the org's snapshot");
                return;
            }
        };
        match self.sink.publish(slug, stamp, snapshot).await {
            Ok(true) => {}
            // Another control plane published a later change meanwhile: it stands.
            Ok(false) => tracing::debug!(org = %slug, "a newer config is already published"),
            Err(e) => {
                tracing::warn!(org = %slug, error = %e, "cannot publish org config; the reconcile loop will retry")
            }
        }
        for e in events {
            self.announce(e).await;
        }
    }

    pub(crate) async fn announce(&self, e: &EventRow) {
        tracing::info!(org = %e.org_id, seq = e.seq, kind = %e.kind, actor = %e.actor, head = %e.hash, "audit event");
        if let Err(err) = self.sink.set_audit_head(&e.org_id, e.seq, &e.hash).await {
            tracing::warn!(error = %err, "cannot publish the audit head");
        }
        let _ = self.events.send(e.clone());
    }

    /// The org's stamp and encoded snapshot; no snapshot once the org is deleted (the stamp
    /// then orders the removal).
    pub(crate) async fn snapshot_bytes(&self, org_id: &str) -> CpResult<(Stamp, Option<Vec<u8>>)> {
        // One read transaction: the org row and its tokens, keys and rules from one state.
        let mut r = self.db.read().await?;
        let stamp = Db::org_stamp_in(r.conn(), org_id).await?;
        let org = match Db::org_in(r.conn(), org_id).await {
            Ok(o) => o,
            Err(CpError::NotFound(_)) => return Ok((stamp, None)),
            Err(e) => return Err(e),
        };
        let snap = snapshot::build(r.conn(), &org).await?;
        Ok((stamp, Some(snapshot::encode(&snap))))
    }
}

pub use self::dataplane::reconcile_once;

#[cfg(test)]
mod tests;
