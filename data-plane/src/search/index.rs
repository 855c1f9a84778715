//! The search index of internal packages: per org, in memory, derived from the documents in
//! the blob store (the only truth; the index is a cache any data plane can rebuild).
//!
//! - Built on an org's first search: the org's packages are listed and their documents read
//!   (8 at a time), each summarised to a bounded `Entry`.
//! - Kept current: every document write through this data plane (`InternalStore`'s write
//!   listener) and through any other (the `ipkg:` message on Redis) marks that package;
//!   the next search re-reads the marked packages before it answers. A reconnect to Redis
//!   (messages may have been missed) and more than `MAX_PENDING` marks mean a rebuild.
//! - Rebuilt anyway when older than `REBUILD_AFTER`, which bounds how long a missed
//!   announcement (Redis down at the writer) can leave a data plane's answers stale.
//! - Bounded: at most `ORG_BYTES` per org (packages past it, by key order, are not
//!   searchable, and a warning says so), `TOTAL_BYTES` in all, orgs idle for
//!   `IDLE` dropped. A search holds no lock while it matches: it gets the entries as an
//!   `Arc`, replaced whole by refreshes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::internal::error::InternalStoreError;
use crate::internal::store::InternalStore;
use crate::store::{get_bytes, Key};
use nproxy_core::names::PackageName;
use nproxy_core::search::Entry;

const REBUILD_AFTER: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 1_000;
const ORG_BYTES: usize = 16 * 1024 * 1024;
const TOTAL_BYTES: u64 = 32 * 1024 * 1024;
const IDLE: Duration = Duration::from_secs(1800);
const READS_AT_ONCE: usize = 8;

/// An org's entries as one search sees them.
#[derive(Debug, Default)]
pub struct Entries {
    pub by_name: BTreeMap<String, Arc<Entry>>,
    bytes: usize,
    built_at: Option<Instant>,
}

impl Entries {
    fn insert(&mut self, e: Entry) {
        let e = Arc::new(e);
        self.bytes += e.weight();
        if let Some(old) = self.by_name.insert(e.name.clone(), e) {
            self.bytes = self.bytes.saturating_sub(old.weight());
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name) {
            self.bytes = self.bytes.saturating_sub(old.weight());
        }
    }

    fn fresh(&self) -> bool {
        self.built_at.is_some_and(|t| t.elapsed() < REBUILD_AFTER)
    }
}

#[derive(Default)]
struct Pending {
    names: BTreeSet<String>,
    all: bool,
}

impl Pending {
    fn mark(&mut self, name: Option<&str>) {
        match name {
            Some(n) if !self.all && self.names.len() < MAX_PENDING => {
                self.names.insert(n.to_string());
            }
            Some(_) if self.all => {}
            _ => {
                self.all = true;
                self.names.clear();
            }
        }
    }
}

#[derive(Default)]
struct OrgIndex {
    entries: RwLock<Arc<Entries>>,
    pending: Mutex<Pending>,
    /// One refresh at a time per org; searches wait for it (they need its result).
    refresh: tokio::sync::Mutex<()>,
}

impl OrgIndex {
    fn current(&self) -> Arc<Entries> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct InternalIndex {
    store: Arc<InternalStore>,
    orgs: moka::sync::Cache<String, Arc<OrgIndex>>,
}

impl InternalIndex {
    pub fn new(store: Arc<InternalStore>) -> Self {
        Self {
            store,
            orgs: moka::sync::Cache::builder()
                .max_capacity(TOTAL_BYTES)
                .weigher(|_, ix: &Arc<OrgIndex>| {
                    u32::try_from(ix.current().bytes.max(1)).unwrap_or(u32::MAX)
                })
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// An internal package's document changed (through any data plane): the next search
    /// of its org re-reads it. Orgs not held are built afresh on their next search anyway.
    pub fn changed(&self, org_id: &str, package: &str) {
        if let Some(ix) = self.orgs.get(org_id) {
            ix.pending().mark(Some(package));
        }
    }

    /// Announcements may have been missed: every held org is rebuilt on its next search.
    pub fn everything_changed(&self) {
        for (_, ix) in self.orgs.iter() {
            ix.pending().mark(None);
        }
    }

    /// The org's entries, current with every change heard of before this call.
    pub async fn entries(&self, org_id: &str) -> Result<Arc<Entries>, InternalStoreError> {
        let ix = self
            .orgs
            .get_with(org_id.to_string(), || Arc::new(OrgIndex::default()));
        {
            let current = ix.current();
            let p = ix.pending();
            if current.fresh() && !p.all && p.names.is_empty() {
                return Ok(current);
            }
        }
        let _one = ix.refresh.lock().await;
        let pending = std::mem::take(&mut *ix.pending());
        let current = ix.current();
        let next = if pending.all || !current.fresh() {
            self.build(org_id).await
        } else if pending.names.is_empty() {
            return Ok(current);
        } else {
            self.refresh(org_id, &current, &pending.names).await
        };
        let next = match next {
            Ok(n) => Arc::new(n),
            Err(e) => {
                // Nothing heard of is forgotten: the next search tries again.
                let mut p = ix.pending();
                if pending.all {
                    p.mark(None);
                }
                for n in &pending.names {
                    p.mark(Some(n));
                }
                return Err(e);
            }
        };
        *ix.entries.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        // Weighed again with its new size.
        self.orgs.insert(org_id.to_string(), ix.clone());
        Ok(next)
    }

    /// Re-reads the named packages into a copy of `current`.
    async fn refresh(
        &self,
        org_id: &str,
        current: &Entries,
        names: &BTreeSet<String>,
    ) -> Result<Entries, InternalStoreError> {
        let mut next = Entries {
            by_name: current.by_name.clone(),
            bytes: current.bytes,
            built_at: current.built_at,
        };
        let reads = futures::stream::iter(names.iter().cloned())
            .map(|n| async move {
                let Ok(name) = PackageName::parse(&n) else {
                    return Ok((n, None));
                };
                let doc = self.store.read(org_id, &name).await?.map(|(_, d)| d);
                Ok::<_, InternalStoreError>((n, summarise(doc).await))
            })
            .buffer_unordered(READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        for r in reads {
            let (name, entry) = r?;
            match entry {
                Some(e) if next.bytes + e.weight() <= ORG_BYTES => next.insert(e),
                Some(_) => {
                    tracing::warn!(org_id, package = %name, "the org's search index is full; this package is not searchable until a rebuild")
                }
                None => next.remove(&name),
            }
        }
        Ok(next)
    }

    /// Lists the org's packages and reads every document.
    async fn build(&self, org_id: &str) -> Result<Entries, InternalStoreError> {
        let started = Instant::now();
        let store = self.store.blob_store().clone();
        let keys: Vec<Key> = store
            .list(&Key::internal_packages_prefix(org_id))
            .await?
            .into_iter()
            .filter(|k| k.as_str().ends_with("/packument.json"))
            .collect();
        let listed = keys.len();
        let mut reads = futures::stream::iter(keys)
            .map(|key| {
                let store = store.clone();
                async move {
                    let bytes = get_bytes(store.as_ref(), &key).await?.map(|(_, b)| b);
                    let entry = match bytes {
                        Some(b) => summarise_bytes(b).await,
                        None => None,
                    };
                    // Only a document stored where its own name says it belongs counts.
                    Ok::<_, InternalStoreError>(entry.filter(|e| {
                        PackageName::parse(&e.name).is_ok_and(|n| {
                            Key::internal_packument(org_id, &n).as_ref() == Some(&key)
                        })
                    }))
                }
            })
            .buffered(READS_AT_ONCE);
        let mut next = Entries::default();
        let mut skipped = 0usize;
        while let Some(r) = reads.next().await {
            match r? {
                Some(e) if next.bytes + e.weight() <= ORG_BYTES => next.insert(e),
                Some(_) => skipped += 1,
                None => {}
            }
        }
        if skipped > 0 {
            tracing::warn!(
                org_id,
                skipped,
                "the org's search index is full ({ORG_BYTES} bytes); some internal packages are not searchable"
            );
        }
        next.built_at = Some(Instant::now());
        tracing::debug!(
            org_id,
            listed,
            indexed = next.by_name.len(),
            ms = started.elapsed().as_millis() as u64,
            "search index built"
        );
        Ok(next)
    }
}

/// Parsing a document (up to 16 MiB) is blocking work.
async fn summarise(doc: Option<serde_json::Value>) -> Option<Entry> {
    let doc = doc?;
    tokio::task::spawn_blocking(move || Entry::from_document(&doc))
        .await
        .ok()
        .flatten()
}

async fn summarise_bytes(bytes: bytes::Bytes) -> Option<Entry> {
    tokio::task::spawn_blocking(move || {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|d| Entry::from_document(&d))
    })
    .await
    .ok()
    .flatten()
}
