//! The blob store: where package bytes and documents live. Two implementations behind one
//! small trait: a local folder (the default) and S3 (`aws-sdk-s3`). Both pass the same tests.
//!
//! What a store guarantees, and the registry relies on:
//! - a `put` is atomic: readers see the old object or the new one, never a mix;
//! - `CreateOnly` succeeds for exactly one of any number of concurrent writers;
//! - `IfMatch(etag)` replaces the object only if it still has that etag (compare-and-swap);
//! - `get` streams: a large object is never held in memory.

pub mod conformance;
mod keys;
mod local;
mod s3;

use std::io;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tempfile::TempPath;

pub use keys::{Key, KeySpace};
pub use local::LocalStore;
pub use s3::S3Store;

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    /// Opaque version token: changes on every write of the key.
    pub etag: String,
}

pub struct Object {
    pub meta: ObjectMeta,
    pub body: ByteStream,
}

/// What to store. A `File` is handed over: the store moves or uploads it, then it is gone.
pub enum PutBody {
    Bytes(Bytes),
    File(TempPath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    Overwrite,
    /// Fails with `PreconditionFailed` if the key exists.
    CreateOnly,
    /// Fails with `PreconditionFailed` unless the key exists with this etag.
    IfMatch(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the object exists or was changed by another writer")]
    PreconditionFailed,
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    #[error("storage backend: {0}")]
    Backend(String),
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError>;
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError>;
    async fn put(&self, key: &Key, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError>;
    /// Deleting a missing key is not an error.
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;
    /// Every key under `prefix` (a key prefix, not only a folder), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError>;
    /// A folder for staging files that will be `put` as `PutBody::File`: on the local store
    /// it shares the store's filesystem so the put is a rename.
    fn staging_dir(&self) -> &Path;
}

/// Reads a whole (small) object into memory. For documents, never for tarballs.
pub async fn get_bytes(
    store: &dyn BlobStore,
    key: &Key,
) -> Result<Option<(ObjectMeta, Bytes)>, StoreError> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    let mut buf = bytes::BytesMut::with_capacity(usize::try_from(obj.meta.size).unwrap_or(0));
    let mut body = obj.body;
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(Some((obj.meta, buf.freeze())))
}

/// Writes a stream to a staging file, so it can be `put` without being held in memory.
pub async fn spool(dir: &Path, mut body: ByteStream) -> Result<(TempPath, u64), StoreError> {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::Builder::new()
        .prefix("spool-")
        .tempfile_in(dir)?
        .into_temp_path();
    let mut file = tokio::fs::File::create(&tmp).await?;
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        len += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok((tmp, len))
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn local_store_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::LocalStore::open(dir.path()).unwrap();
        super::conformance::run_all(&store, "t1/").await;
        super::conformance::run_concurrent(std::sync::Arc::new(store), "t2/").await;
    }
}
