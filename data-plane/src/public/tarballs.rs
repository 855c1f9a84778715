//! Public tarballs: served from the blob store when cached; otherwise downloaded once from
//! the upstream, whoever asks for it meanwhile.
//!
//! A cold download runs in its own task and writes to a staging file while hashing. Every
//! client of that tarball (the first and any that join) reads the staging file as it grows,
//! and the last bytes are released only once the whole download matched the packument's
//! integrity. A mismatch or a truncated download is never stored, and clients never get a
//! complete response of bad bytes: small tarballs wait for the verdict (a clean 502), large
//! ones are cut off before their end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::public::error::PublicError;
use crate::public::integrity::Verifier;
use crate::public::packuments::Packuments;
use crate::public::upstream::Upstream;
use crate::store::{BlobStore, ByteStream, Key, Object, ObjectMeta, PutBody, PutMode, StoreError};
use nproxy_core::names::{PackageName, TarballFile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Failed(String),
    /// The upstream's breaker is open: nothing was asked (a 503, not a 502).
    Unavailable(String),
    /// nproxy's own side failed (staging file, store): a 500 whose text stays in the log.
    Local(String),
}

#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// `None` until the upstream's response headers arrived.
    pub started: Option<Option<u64>>,
    /// Bytes written to the staging file so far.
    pub written: u64,
    pub outcome: Option<Outcome>,
}

/// A download in flight, shared by everyone who asked for the tarball meanwhile.
pub struct Download {
    pub path: PathBuf,
    pub progress: watch::Receiver<Progress>,
}

pub enum Source {
    /// A small tarball served from memory.
    Memory(ObjectMeta, Bytes),
    Stored(Object),
    Downloading(Arc<Download>),
}

/// Tarballs up to this size are kept in memory once read: they are immutable, and for small
/// files the trip to the disk (a blocking-pool handoff) costs more than sending them.
pub const MEMORY_TARBALL_MAX: u64 = 512 * 1024;

pub struct Tarballs {
    store: Arc<dyn BlobStore>,
    upstream: Arc<Upstream>,
    packuments: Arc<Packuments>,
    metrics: Metrics,
    downloads: Mutex<HashMap<Key, Arc<Download>>>,
    hot: moka::sync::Cache<Key, (ObjectMeta, Bytes)>,
    hot_enabled: bool,
}

impl Tarballs {
    pub fn new(
        store: Arc<dyn BlobStore>,
        upstream: Arc<Upstream>,
        packuments: Arc<Packuments>,
        metrics: Metrics,
        memory_bytes: u64,
    ) -> Self {
        Self {
            store,
            upstream,
            packuments,
            metrics,
            downloads: Mutex::default(),
            hot: moka::sync::Cache::builder()
                .weigher(|_k, v: &(ObjectMeta, Bytes)| u32::try_from(v.1.len()).unwrap_or(u32::MAX))
                .max_capacity(memory_bytes)
                .build(),
            hot_enabled: memory_bytes > 0,
        }
    }

    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    pub async fn open(
        self: &Arc<Self>,
        name: &PackageName,
        file: &TarballFile,
    ) -> Result<Source, PublicError> {
        let key = self.packuments.space().tarball(name, file);
        if let Some((meta, bytes)) = self.hot.get(&key) {
            self.metrics.cache("tarball", "hit");
            return Ok(Source::Memory(meta, bytes));
        }
        if let Some(obj) = self.store.get(&key).await? {
            self.metrics.cache("tarball", "hit");
            if obj.meta.size <= MEMORY_TARBALL_MAX && self.hot_enabled {
                let meta = obj.meta.clone();
                let bytes = collect(obj.body, obj.meta.size).await?;
                crate::public::byte_cache::insert_bounded(
                    &self.hot,
                    key,
                    (meta.clone(), bytes.clone()),
                    &self.metrics,
                    "tarballs",
                );
                return Ok(Source::Memory(meta, bytes));
            }
            return Ok(Source::Stored(obj));
        }
        if let Some(d) = self.joinable(&key) {
            self.metrics.cache("tarball", "joined");
            return Ok(Source::Downloading(d));
        }
        if !self.upstream.configured() {
            return Err(PublicError::Upstream(
                crate::public::upstream::UpstreamError::NotConfigured(format!(
                    "{name}@{} is not in this registry (no upstream configured)",
                    file.version()
                )),
            ));
        }
        // Cold: the packument says where the bytes are and what they must hash to.
        let mut dist = self
            .packuments
            .dist(name, file.as_str(), false)
            .await
            .map_err(|e| PublicError::from_shared(&e))?;
        if dist.is_none() {
            // Maybe published since the last revalidation.
            dist = self
                .packuments
                .dist(name, file.as_str(), true)
                .await
                .map_err(|e| PublicError::from_shared(&e))?;
        }
        let Some(dist) = dist else {
            return Err(PublicError::VersionNotFound {
                package: name.to_string(),
                version: file.version().to_string(),
            });
        };
        let verifier = Verifier::new(&dist).map_err(|e| PublicError::Integrity(e.to_string()))?;
        let url = self.upstream.tarball_url(
            name,
            file.as_str(),
            dist.upstream_url(name, file.as_str()).as_deref(),
        );
        self.metrics.cache("tarball", "miss");
        let staged = tempfile::Builder::new()
            .prefix("dl-")
            .tempfile_in(self.store.staging_dir())
            .map_err(StoreError::from)?
            .into_temp_path();
        let (tx, rx) = watch::channel(Progress::default());
        let download = Arc::new(Download {
            path: staged.to_path_buf(),
            progress: rx,
        });
        {
            let mut downloads = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = downloads.get(&key) {
                // Someone started it while we looked at the packument.
                return Ok(Source::Downloading(d.clone()));
            }
            downloads.insert(key.clone(), download.clone());
        }
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.download(&key, &url, staged, verifier, &tx).await;
            if let Outcome::Failed(why) | Outcome::Local(why) = &outcome {
                tracing::warn!(tarball = %key, url = %url, error = %why, "tarball download failed; nothing stored");
            }
            tx.send_modify(|p| p.outcome = Some(outcome));
            this.downloads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
        Ok(Source::Downloading(download))
    }

    fn joinable(&self, key: &Key) -> Option<Arc<Download>> {
        self.downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    async fn download(
        &self,
        key: &Key,
        url: &str,
        staged: tempfile::TempPath,
        mut verifier: Verifier,
        tx: &watch::Sender<Progress>,
    ) -> Outcome {
        let dl = match self.upstream.tarball(url).await {
            Ok(dl) => dl,
            Err(e @ crate::public::upstream::UpstreamError::Unavailable(_)) => {
                return Outcome::Unavailable(e.to_string())
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        tx.send_modify(|p| p.started = Some(dl.len));
        let mut file = match tokio::fs::OpenOptions::new()
            .write(true)
            .open(&staged)
            .await
        {
            Ok(f) => f,
            Err(e) => return Outcome::Local(format!("staging file: {e}")),
        };
        let mut body = dl.body;
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Outcome::Failed(format!("download interrupted: {e}")),
            };
            verifier.update(&chunk);
            if let Err(e) = file.write_all(&chunk).await {
                return Outcome::Local(format!("staging file: {e}"));
            }
            written += chunk.len() as u64;
            if dl.len.is_some_and(|len| written > len) {
                return Outcome::Failed("upstream sent more bytes than announced".into());
            }
            // Readers may only read what has reached the file.
            if let Err(e) = file.flush().await {
                return Outcome::Local(format!("staging file: {e}"));
            }
            tx.send_modify(|p| p.written = written);
        }
        if dl.len.is_some_and(|len| written != len) {
            return Outcome::Failed(format!(
                "upstream sent {written} bytes of {} announced",
                dl.len.unwrap_or(0)
            ));
        }
        if let Err(e) = verifier.finish() {
            return Outcome::Failed(e.to_string());
        }
        if let Err(e) = file.sync_all().await {
            return Outcome::Local(format!("staging file: {e}"));
        }
        drop(file);
        match self
            .store
            .put(key, PutBody::File(staged), PutMode::CreateOnly)
            .await
        {
            // Another data plane stored the same immutable bytes first: just as good.
            Ok(_) | Err(StoreError::PreconditionFailed) => Outcome::Stored,
            Err(e) => Outcome::Local(format!("cannot store the tarball: {e}")),
        }
    }
}

async fn collect(mut body: ByteStream, size: u64) -> Result<Bytes, PublicError> {
    let mut buf = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk.map_err(StoreError::from)?);
    }
    if buf.len() as u64 != size {
        return Err(PublicError::Store(StoreError::Backend(format!(
            "store returned {} of {size} bytes",
            buf.len()
        ))));
    }
    Ok(buf.freeze())
}
