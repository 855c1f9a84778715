//! Storage of internal packages: documents updated by compare-and-swap (retried with
//! jittered backoff under a deadline), tarballs written once under their content address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use serde_json::Value;

use crate::internal::error::InternalStoreError;
use crate::store::{get_bytes, BlobStore, Key, Object, PutBody, PutMode, StoreError};
use nproxy_core::internal::{self, DocError};
use nproxy_core::names::PackageName;

const ATTEMPTS: u32 = 8;
const DEADLINE: Duration = Duration::from_secs(15);

pub struct InternalStore {
    store: Arc<dyn BlobStore>,
    /// Told of every document written (the search index): (org id, package).
    on_write: std::sync::OnceLock<WriteListener>,
}

/// Called after an internal package's document was written: (org id, package).
pub type WriteListener = Box<dyn Fn(&str, &PackageName) + Send + Sync>;

fn key_err() -> InternalStoreError {
    InternalStoreError::BadKey
}

impl InternalStore {
    pub fn new(store: Arc<dyn BlobStore>) -> Self {
        Self {
            store,
            on_write: std::sync::OnceLock::new(),
        }
    }

    /// Sets who hears of every document written (publish, unpublish, dist-tags,
    /// deprecate), after the write and before the client's answer. Once.
    pub fn on_write(&self, listener: WriteListener) {
        let _ = self.on_write.set(listener);
    }

    fn wrote(&self, org_id: &str, name: &PackageName) {
        if let Some(listener) = self.on_write.get() {
            listener(org_id, name);
        }
    }

    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The package's document and its version token, if it exists.
    pub async fn read(
        &self,
        org_id: &str,
        name: &PackageName,
    ) -> Result<Option<(String, Value)>, InternalStoreError> {
        let key = Key::internal_packument(org_id, name).ok_or_else(key_err)?;
        let Some((meta, bytes)) = get_bytes(self.store.as_ref(), &key).await? else {
            return Ok(None);
        };
        let doc = serde_json::from_slice(&bytes).map_err(|e| InternalStoreError::Corrupt {
            name: name.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Some((meta.etag, doc)))
    }

    /// The package's document as clients may see it: `None` for a package that does not
    /// exist or was unpublished as a whole (its tombstone stays, invisible).
    pub async fn read_live(
        &self,
        org_id: &str,
        name: &PackageName,
    ) -> Result<Option<(String, Value)>, InternalStoreError> {
        Ok(self
            .read(org_id, name)
            .await?
            .filter(|(_, d)| !internal::is_tombstone(d)))
    }

    /// Applies `change` to the current document and stores the result only if nobody else
    /// wrote in between; otherwise re-reads and tries again. `change` sees `None` for a
    /// package that does not exist yet or was unpublished as a whole.
    pub async fn update(
        &self,
        org_id: &str,
        name: &PackageName,
        change: impl FnMut(Option<&Value>) -> Result<Value, DocError>,
    ) -> Result<Value, InternalStoreError> {
        self.update_inner(org_id, name, false, change).await
    }

    /// Like `update`, but `change` also sees a tombstone (a publish must, to refuse version
    /// numbers the package had before its unpublish).
    pub async fn update_with_tombstone(
        &self,
        org_id: &str,
        name: &PackageName,
        change: impl FnMut(Option<&Value>) -> Result<Value, DocError>,
    ) -> Result<Value, InternalStoreError> {
        self.update_inner(org_id, name, true, change).await
    }

    async fn update_inner(
        &self,
        org_id: &str,
        name: &PackageName,
        see_tombstone: bool,
        mut change: impl FnMut(Option<&Value>) -> Result<Value, DocError>,
    ) -> Result<Value, InternalStoreError> {
        let key = Key::internal_packument(org_id, name).ok_or_else(key_err)?;
        let started = Instant::now();
        for attempt in 0..ATTEMPTS {
            let current = self.read(org_id, name).await?;
            let seen = current
                .as_ref()
                .map(|(_, d)| d)
                .filter(|d| see_tombstone || !internal::is_tombstone(d));
            let next = change(seen)?;
            let body = Bytes::from(
                serde_json::to_vec(&next).map_err(|e| InternalStoreError::Encode(e.to_string()))?,
            );
            if body.len() > nproxy_core::doc_bounds::MAX_DOCUMENT_BYTES {
                return Err(InternalStoreError::TooLarge {
                    name: name.to_string(),
                    size: body.len(),
                    limit: nproxy_core::doc_bounds::MAX_DOCUMENT_BYTES,
                });
            }
            let mode = match &current {
                Some((etag, _)) => PutMode::IfMatch(etag.clone()),
                None => PutMode::CreateOnly,
            };
            match self.store.put(&key, PutBody::Bytes(body), mode).await {
                Ok(_) => {
                    self.wrote(org_id, name);
                    return Ok(next);
                }
                Err(StoreError::PreconditionFailed) => {
                    let backoff = 10u64 << attempt.min(6);
                    let jitter = rand::rng().random_range(0..=backoff);
                    let wait = Duration::from_millis(backoff + jitter);
                    if started.elapsed() + wait > DEADLINE {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(InternalStoreError::Contended(name.to_string()))
    }

    /// Stores a tarball under its content address; a second write of the same bytes is a
    /// no-op.
    pub async fn put_blob(
        &self,
        org_id: &str,
        name: &PackageName,
        sha512_hex: &str,
        bytes: Bytes,
    ) -> Result<(), InternalStoreError> {
        let key = Key::internal_blob(org_id, name, sha512_hex).ok_or_else(key_err)?;
        match self
            .store
            .put(&key, PutBody::Bytes(bytes), PutMode::CreateOnly)
            .await
        {
            Ok(_) | Err(StoreError::PreconditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the provenance bundle of the version whose tarball has this sha512; a second
    /// write is a no-op (what is stored stays).
    pub async fn put_attestations(
        &self,
        org_id: &str,
        name: &PackageName,
        sha512_hex: &str,
        bundle: Bytes,
    ) -> Result<(), InternalStoreError> {
        let key = Key::internal_attestations(org_id, name, sha512_hex).ok_or_else(key_err)?;
        match self
            .store
            .put(&key, PutBody::Bytes(bundle), PutMode::CreateOnly)
            .await
        {
            Ok(_) | Err(StoreError::PreconditionFailed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The provenance bundle of the version whose tarball has this sha512, if one was
    /// published with it.
    pub async fn get_attestations(
        &self,
        org_id: &str,
        name: &PackageName,
        sha512_hex: &str,
    ) -> Result<Option<Bytes>, InternalStoreError> {
        let key = Key::internal_attestations(org_id, name, sha512_hex).ok_or_else(key_err)?;
        Ok(get_bytes(self.store.as_ref(), &key).await?.map(|(_, b)| b))
    }

    pub async fn get_blob(
        &self,
        org_id: &str,
        name: &PackageName,
        sha512_hex: &str,
    ) -> Result<Option<Object>, InternalStoreError> {
        let key = Key::internal_blob(org_id, name, sha512_hex).ok_or_else(key_err)?;
        Ok(self.store.get(&key).await?)
    }

    pub async fn delete_blob(
        &self,
        org_id: &str,
        name: &PackageName,
        sha512_hex: &str,
    ) -> Result<(), InternalStoreError> {
        let key = Key::internal_blob(org_id, name, sha512_hex).ok_or_else(key_err)?;
        Ok(self.store.delete(&key).await?)
    }

    /// Unpublishes a whole package: the document becomes a tombstone (by compare-and-swap
    /// on the version the client saw, so a concurrent publish is never lost silently), then
    /// every tarball is deleted. The tombstone keeps the package's version numbers forever.
    pub async fn delete_package(
        &self,
        org_id: &str,
        name: &PackageName,
        expected_etag: &str,
        now_iso: &str,
    ) -> Result<(), InternalStoreError> {
        let key = Key::internal_packument(org_id, name).ok_or_else(key_err)?;
        let Some((etag, current)) = self.read(org_id, name).await? else {
            return Err(InternalStoreError::NotFound(name.to_string()));
        };
        if etag != expected_etag {
            return Err(InternalStoreError::Changed);
        }
        let body = serde_json::to_vec(&internal::tombstone(&current, now_iso))
            .map_err(|e| InternalStoreError::Encode(e.to_string()))?;
        match self
            .store
            .put(
                &key,
                PutBody::Bytes(Bytes::from(body)),
                PutMode::IfMatch(etag),
            )
            .await
        {
            Ok(_) => self.wrote(org_id, name),
            Err(StoreError::PreconditionFailed) => return Err(InternalStoreError::Changed),
            Err(e) => return Err(e.into()),
        }
        for k in self
            .store
            .list(&Key::internal_package_prefix(org_id, name))
            .await?
        {
            if k != key {
                self.store.delete(&k).await?;
            }
        }
        Ok(())
    }
}
