//! The audit outbox: how package events (published, signed, unpublished, …) reach the
//! control plane's audit log without ever being lost.
//!
//! An entry is written to the blob store *before* the change it describes is committed, and
//! says what must be true for it to count (e.g. "version 1.0.1 is present with this
//! integrity"). Every data plane drains the outbox: an entry whose change landed is handed to
//! the control plane (idempotency keys make a double hand-off harmless) and then deleted; an
//! entry whose change never landed is dropped after a grace period. The blob store is
//! durable and shared, so neither a killed control plane, nor a flushed Redis, nor the death
//! of the data plane that wrote the entry loses an event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nproxy_proto::v1 as pb;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::internal::cp_client::ControlPlaneClient;
use crate::internal::error::OutboxError;
use crate::internal::store::InternalStore;
use crate::store::{get_bytes, BlobStore, Key, PutBody, PutMode};
use nproxy_core::names::PackageName;

// How long an entry waits for its change to land before it is dropped as abandoned is
// `audit_outbox_grace_secs` (default 120 s): it must exceed the longest time between
// writing an entry and committing its change (one store write, with the store's retries).

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub kind: String,
    pub details: Value,
    pub time_ms: i64,
}

/// What must be true of the package for the entry's events to be recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expect {
    Present {
        version: String,
        integrity: String,
    },
    Absent {
        versions: Vec<String>,
    },
    PackageGone,
    /// A dist-tag points at `version` (`None`: the tag is gone).
    DistTag {
        tag: String,
        version: Option<String>,
    },
    /// Each version's deprecation message is this (`None`: un-deprecated).
    Deprecated {
        versions: Vec<(String, Option<String>)>,
    },
    Nothing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub org_id: String,
    pub package: String,
    pub created_ms: i64,
    pub expect: Expect,
    pub events: Vec<Event>,
}

pub use nproxy_common::time::now_ms;

impl Entry {
    pub fn new(org_id: &str, package: &PackageName, expect: Expect, events: Vec<Event>) -> Entry {
        let mut rnd = [0u8; 12];
        rand::rng().fill_bytes(&mut rnd);
        let created_ms = now_ms();
        Entry {
            id: format!("{created_ms:013}-{}", hex::encode(rnd)),
            org_id: org_id.to_string(),
            package: package.to_string(),
            created_ms,
            expect,
            events,
        }
    }
}

/// Where unreadable outbox entries are moved (the rest of the key is the original one).
pub const QUARANTINE_PREFIX: &str = "quarantine/";

pub struct Outbox {
    store: Arc<dyn BlobStore>,
    internal: Arc<InternalStore>,
    cp: ControlPlaneClient,
    grace_ms: i64,
}

enum Verdict {
    Deliver,
    Wait,
    Drop,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn BlobStore>,
        internal: Arc<InternalStore>,
        cp: ControlPlaneClient,
        grace: Duration,
    ) -> Arc<Outbox> {
        Arc::new(Outbox {
            store,
            internal,
            cp,
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// Durably records an entry. Must succeed before the change it describes is made.
    pub async fn put(&self, entry: &Entry) -> Result<Key, OutboxError> {
        let key = Key::outbox(&entry.org_id, &entry.id).ok_or(OutboxError::BadKey)?;
        let body = serde_json::to_vec(entry).map_err(|e| OutboxError::Encode(e.to_string()))?;
        self.store
            .put(&key, PutBody::Bytes(Bytes::from(body)), PutMode::Overwrite)
            .await?;
        Ok(key)
    }

    async fn verdict(&self, e: &Entry) -> Result<Verdict, OutboxError> {
        let Ok(name) = PackageName::parse(&e.package) else {
            return Ok(Verdict::Drop);
        };
        let doc = self.internal.read(&e.org_id, &name).await?.map(|(_, d)| d);
        let landed = match &e.expect {
            Expect::Nothing => true,
            // Landed, even if a later unpublish has removed it since.
            Expect::Present { version, integrity } => doc.as_ref().is_some_and(|d| {
                nproxy_core::internal::was_published(d, version, integrity, &e.id)
            }),
            Expect::Absent { versions } => versions
                .iter()
                .all(|v| doc.as_ref().is_none_or(|d| d["versions"].get(v).is_none())),
            Expect::PackageGone => doc.as_ref().is_none_or(nproxy_core::internal::is_tombstone),
            Expect::DistTag { tag, version } => doc.as_ref().is_some_and(|d| {
                d["dist-tags"].get(tag).and_then(serde_json::Value::as_str) == version.as_deref()
            }),
            Expect::Deprecated { versions } => doc.as_ref().is_some_and(|d| {
                versions.iter().all(|(v, msg)| {
                    d["versions"][v]
                        .get("deprecated")
                        .and_then(serde_json::Value::as_str)
                        == msg.as_deref()
                })
            }),
        };
        Ok(if landed {
            Verdict::Deliver
        } else if now_ms() - e.created_ms > self.grace_ms {
            Verdict::Drop
        } else {
            Verdict::Wait
        })
    }

    /// Hands one entry over if its change landed; returns whether it is done with.
    pub async fn deliver(&self, key: &Key) -> Result<bool, OutboxError> {
        let Some((_, bytes)) = get_bytes(self.store.as_ref(), key).await? else {
            return Ok(true);
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            // Kept for inspection, out of the way of every entry after it.
            let quarantined =
                Key::parse(&format!("{QUARANTINE_PREFIX}{key}")).ok_or(OutboxError::BadKey)?;
            self.store
                .put(&quarantined, PutBody::Bytes(bytes), PutMode::Overwrite)
                .await?;
            self.store.delete(key).await?;
            tracing::error!(%key, %quarantined, "unreadable outbox entry moved to quarantine");
            return Ok(true);
        };
        match self.verdict(&entry).await? {
            Verdict::Wait => return Ok(false),
            Verdict::Drop => {
                tracing::info!(id = %entry.id, package = %entry.package, "dropping the audit events of a change that never landed");
            }
            Verdict::Deliver => {
                let events = entry
                    .events
                    .iter()
                    .enumerate()
                    .map(|(i, ev)| pb::NewEvent {
                        idempotency_key: format!("{}:{i}", entry.id),
                        r#type: ev.kind.clone(),
                        details_json: ev.details.to_string(),
                        time_ms: ev.time_ms,
                    })
                    .collect();
                if let Err(e) = self.cp.record(&entry.org_id, events).await {
                    tracing::warn!(id = %entry.id, error = %e, "cannot hand audit events to the control plane yet");
                    return Ok(false);
                }
            }
        }
        self.store.delete(key).await?;
        Ok(true)
    }

    /// Delivers everything deliverable now.
    pub async fn drain(&self) -> Result<usize, OutboxError> {
        let mut done = 0;
        for key in self.store.list(Key::OUTBOX_PREFIX).await? {
            // One entry's trouble never holds back the ones after it.
            match self.deliver(&key).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%key, error = %e, "cannot deliver an outbox entry yet; going on")
                }
            }
        }
        Ok(done)
    }

    pub fn spawn_drainer(self: &Arc<Self>, runtime: &tokio::runtime::Handle, every: Duration) {
        let weak = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                if let Err(e) = this.drain().await {
                    tracing::warn!(error = %e, "outbox drain failed");
                }
            }
        });
    }
}
