//! Revalidation and storage for public packuments: reading the stored meta, asking the
//! upstream conditionally, merging a new answer into the stored document (keeping versions
//! whose tarballs are cached), writing it, and serving the stored copy when the upstream
//! fails or lies.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{now_ms, PackageState, Packuments, StoredMeta};
use crate::public::error::PublicError;
use crate::public::upstream::{PackumentFetch, UpstreamError, Validators};
use crate::singleflight::{shared_err, Shared};
use crate::store::{get_bytes, PutBody, PutMode};
use nproxy_common::hash::sha256_hex;
use nproxy_core::names::{PackageName, TarballFile};
use nproxy_core::packument::{self, Packument};

impl Packuments {
    pub(super) async fn refresh(
        self: Arc<Self>,
        name: PackageName,
        force: bool,
    ) -> Shared<Arc<PackageState>, PublicError> {
        let held = self.states.get(&name);
        if let Some(s) = &held {
            if !force && self.is_fresh(s) {
                return Ok(s.clone());
            }
        }
        let meta_key = self.space.packument_meta(&name);
        let meta: Option<StoredMeta> = match get_bytes(self.store.as_ref(), &meta_key).await {
            Ok(Some((_, b))) => serde_json::from_slice(&b).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(package = %name, error = %e, "cannot read packument meta");
                None
            }
        };
        if !self.upstream.configured() {
            return self.stored_only(&name, held, meta).await;
        }
        // Another data plane (or this one before a restart) may have fetched it recently:
        // take its stored result instead of asking the upstream again, so every data plane
        // converges on the same bytes.
        if let (Some(m), false) = (&meta, force) {
            let fetched_at = UNIX_EPOCH + Duration::from_millis(m.fetched_at_ms);
            let fresh = self.age_within(fetched_at, self.max_age);
            match &held {
                Some(h) if fresh && h.version == m.body_sha256 => {
                    let state = Arc::new(PackageState {
                        version: h.version.clone(),
                        len: h.len,
                        fetched_at,
                    });
                    self.states.insert(name.clone(), state.clone());
                    return Ok(state);
                }
                Some(_) if fresh => {
                    if let Some(state) = self.load_stored(&name, fetched_at).await? {
                        return Ok(state);
                    }
                }
                None if fresh => {
                    if let Some(state) = self.load_stored(&name, fetched_at).await? {
                        return Ok(state);
                    }
                }
                // Held nowhere in memory (a restart, or evicted), stale but within the
                // window, or the upstream is known to be down: the stored copy now.
                None if self.may_serve_stale(fetched_at) || !self.upstream.available() => {
                    if let Some(state) = self.load_stored(&name, fetched_at).await? {
                        if self.upstream.available() && !self.written.contains_key(&name) {
                            self.metrics.cache("packument", "stale_served");
                            self.refresh_in_background(&name);
                        }
                        return Ok(state);
                    }
                }
                _ => {}
            }
        }
        let validators = meta.as_ref().map(|m| &m.validators);
        let answer = self.upstream.packument(&name, validators).await;
        if answer.is_ok() {
            // The upstream answered after the write: ordinary freshness rules from here on.
            self.written.invalidate(&name);
        }
        match answer {
            Ok(PackumentFetch::NotModified) => {
                self.metrics.cache("packument", "revalidated");
                self.touch(&name, held, meta).await
            }
            Ok(PackumentFetch::Fetched { body, validators }) => {
                let up_sha = sha256_hex(&body);
                if meta.as_ref().is_some_and(|m| m.upstream_sha256 == up_sha) {
                    self.metrics.cache("packument", "revalidated");
                    let meta = meta.map(|m| StoredMeta { validators, ..m });
                    return self.touch(&name, held, meta).await;
                }
                self.metrics.cache("packument", "miss");
                // Held through the merge: the parsed answer, the stored copy and the merged
                // result are all alive until it is written.
                let permit = self.budget.admit(body.len()).await.map_err(shared_err)?;
                // Owned: the document outlives the task that parsed it (the merge runs in another).
                let parsed = tokio::task::spawn_blocking(move || {
                    Packument::parse(&body).map(Packument::into_owned)
                })
                .await
                .map_err(|_| shared_err(PublicError::Task("a parse task failed")))?;
                match parsed {
                    Ok(doc) => {
                        let stored = self
                            .merge_and_store(&name, Some(doc), validators, up_sha)
                            .await;
                        drop(permit);
                        stored
                    }
                    // A lying upstream is no reason to stop serving a good copy.
                    Err(e) => {
                        // Serving the stored copy parses it under the budget too: waiting
                        // for room while holding this permit could wait forever.
                        drop(permit);
                        let e = PublicError::InvalidUpstreamDocument {
                            package: name.to_string(),
                            detail: e.to_string(),
                        };
                        self.stale_or(&name, held, meta, e).await
                    }
                }
            }
            Ok(PackumentFetch::NotFound) => {
                if meta.is_none() {
                    self.metrics.cache("packument", "not_found");
                    self.not_found.insert(name.clone(), ());
                    return Err(shared_err(PublicError::PackageNotFound(name.to_string())));
                }
                tracing::warn!(package = %name, "upstream no longer has this package; keeping cached versions");
                match self
                    .merge_and_store(&name, None, Validators::default(), String::new())
                    .await
                {
                    Err(e) if matches!(*e, PublicError::PackageNotFound(_)) => {
                        self.not_found.insert(name.clone(), ());
                        Err(e)
                    }
                    other => other,
                }
            }
            Err(e) => self.stale_or(&name, held, meta, e.into()).await,
        }
    }

    /// The copy, when the upstream failed or lied: keeping installs working while the
    /// upstream is down is the point of a copy. Without one, the error.
    pub(super) async fn stale_or(
        &self,
        name: &PackageName,
        held: Option<Arc<PackageState>>,
        meta: Option<StoredMeta>,
        e: PublicError,
    ) -> Shared<Arc<PackageState>, PublicError> {
        let stale = match held {
            Some(s) => Some(s),
            None if meta.is_some() => {
                let fetched_at = meta
                    .as_ref()
                    .map(|m| UNIX_EPOCH + Duration::from_millis(m.fetched_at_ms))
                    .unwrap_or(UNIX_EPOCH);
                self.load_stored(name, fetched_at).await?
            }
            None => None,
        };
        match stale {
            Some(s) => {
                // While the breaker is open this is every stale read: the breaker logs the
                // outage once; here it is only debug.
                if matches!(e, PublicError::Upstream(UpstreamError::Unavailable(_))) {
                    tracing::debug!(package = %name, "upstream down; serving the cached packument");
                } else {
                    tracing::warn!(package = %name, error = %e, "upstream failed; serving the cached packument");
                }
                self.metrics.cache("packument", "stale");
                Ok(s)
            }
            None => Err(shared_err(e)),
        }
    }

    /// Marks a stored copy as just revalidated.
    pub(super) async fn touch(
        &self,
        name: &PackageName,
        held: Option<Arc<PackageState>>,
        meta: Option<StoredMeta>,
    ) -> Shared<Arc<PackageState>, PublicError> {
        let now = SystemTime::now();
        let mut meta = meta.unwrap_or_default();
        meta.fetched_at_ms = now_ms(now);
        self.write_meta(name, &meta).await;
        let state = match held {
            Some(h) if h.version == meta.body_sha256 => Arc::new(PackageState {
                version: h.version.clone(),
                len: h.len,
                fetched_at: now,
            }),
            _ => match self.load_stored(name, now).await? {
                Some(s) => s,
                None => return Err(shared_err(PublicError::NoStoredCopy(name.to_string()))),
            },
        };
        self.states.insert(name.clone(), state.clone());
        Ok(state)
    }

    pub(super) async fn write_meta(&self, name: &PackageName, meta: &StoredMeta) {
        let bytes = match serde_json::to_vec(meta) {
            Ok(b) => Bytes::from(b),
            Err(_) => return,
        };
        if let Err(e) = self
            .store
            .put(
                &self.space.packument_meta(name),
                PutBody::Bytes(bytes),
                PutMode::Overwrite,
            )
            .await
        {
            // Only costs a revalidation later; the document itself is intact.
            tracing::warn!(package = %name, error = %e, "cannot write packument meta");
        }
    }

    /// Loads the stored document's state: its hash and size (no parse: the tarball index is
    /// built only when a download needs it, `Packuments::dist`).
    pub(super) async fn load_stored(
        &self,
        name: &PackageName,
        fetched_at: SystemTime,
    ) -> Shared<Option<Arc<PackageState>>, PublicError> {
        let Some((_, body)) = get_bytes(self.store.as_ref(), &self.space.packument(name))
            .await
            .map_err(shared_err)?
        else {
            return Ok(None);
        };
        let state = Arc::new(PackageState {
            version: sha256_hex(&body),
            len: body.len(),
            fetched_at,
        });
        self.states.insert(name.clone(), state.clone());
        Ok(Some(state))
    }

    pub(super) async fn merge_and_store(
        &self,
        name: &PackageName,
        upstream_doc: Option<Packument<'static>>,
        validators: Validators,
        upstream_sha256: String,
    ) -> Shared<Arc<PackageState>, PublicError> {
        let held_doc: Option<Packument<'static>> =
            match get_bytes(self.store.as_ref(), &self.space.packument(name)).await {
                // Parsing a big document is CPU work: off the async workers.
                Ok(Some((_, b))) => tokio::task::spawn_blocking(move || {
                    Packument::parse(&b).ok().map(Packument::into_owned)
                })
                .await
                .map_err(|_| shared_err(PublicError::Task("a parse task failed")))?,
                Ok(None) => None,
                Err(e) => return Err(shared_err(e)),
            };
        // Versions the upstream dropped survive if their tarball is cached here.
        let mut cached = std::collections::HashSet::new();
        if let Some(held) = &held_doc {
            let dropped: Vec<String> = held
                .version_keys()
                .filter(|v| upstream_doc.as_ref().is_none_or(|u| !u.has_version(v)))
                .cloned()
                .collect();
            // One HEAD per dropped version, a bounded number at a time (not one by one).
            for batch in dropped.chunks(32) {
                let heads = batch.iter().filter_map(|v| {
                    let version = semver::Version::parse(v).ok()?;
                    let key = self
                        .space
                        .tarball(name, &TarballFile::for_version(name, &version));
                    Some(async move { (v, matches!(self.store.head(&key).await, Ok(Some(_)))) })
                });
                for (v, stored) in futures::future::join_all(heads).await {
                    if stored {
                        cached.insert(v.clone());
                    }
                }
            }
        }
        let name2 = name.clone();
        let built = tokio::task::spawn_blocking(move || {
            let merged = packument::merge(held_doc, upstream_doc, |v| cached.contains(v))?;
            let bytes = merged.to_vec();
            let tarballs = packument::tarball_index(&name2, &merged);
            Some((Bytes::from(bytes), tarballs))
        })
        .await
        .map_err(|_| shared_err(PublicError::Task("a merge task failed")))?;
        let Some((body, tarballs)) = built else {
            return Err(shared_err(PublicError::PackageNotFound(name.to_string())));
        };
        let version = sha256_hex(&body);
        let len = body.len();
        self.store
            .put(
                &self.space.packument(name),
                PutBody::Bytes(body),
                PutMode::Overwrite,
            )
            .await
            .map_err(shared_err)?;
        let now = SystemTime::now();
        self.write_meta(
            name,
            &StoredMeta {
                fetched_at_ms: now_ms(now),
                validators,
                upstream_sha256,
                body_sha256: version.clone(),
            },
        )
        .await;
        self.remember_index(
            name.clone(),
            Arc::new(super::TarballIndex {
                version: version.clone(),
                tarballs,
            }),
        );
        let state = Arc::new(PackageState {
            version,
            len,
            fetched_at: now,
        });
        self.states.insert(name.clone(), state.clone());
        Ok(state)
    }
}
