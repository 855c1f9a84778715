//! The local-folder blob store. Atomicity comes from the filesystem: every write lands in a
//! staging file first, then `rename` (overwrite) or `link` (create-only) puts it in place.
//! Compare-and-swap holds an exclusive file lock per key while it checks and renames, so it
//! is safe across processes sharing the folder too.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;

use super::{BlobStore, ByteStream, Key, Object, ObjectMeta, PutBody, PutMode, StoreError};

const STAGING: &str = ".tmp";
const LOCKS: &str = ".locks";
const READ_CHUNK: usize = 128 * 1024;

pub struct LocalStore {
    root: PathBuf,
    staging: PathBuf,
}

impl LocalStore {
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let staging = root.join(STAGING);
        std::fs::create_dir_all(&staging)?;
        std::fs::create_dir_all(root.join(LOCKS))?;
        Ok(Self { root, staging })
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }
}

/// Changes on every write: a new inode (rename/link of a fresh file) and a new mtime.
fn etag_of(meta: &std::fs::Metadata) -> String {
    let nanos = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    format!("{:x}-{:x}-{:x}", meta.ino(), meta.size(), nanos)
}

fn object_meta(meta: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        size: meta.size(),
        etag: etag_of(meta),
    }
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("blocking task failed: {e}")))?
}

enum Contents {
    Small(Bytes),
    Large(std::fs::File),
}

fn stage_bytes(dir: &Path, bytes: &Bytes) -> io::Result<tempfile::TempPath> {
    use std::io::Write;
    let mut f = tempfile::Builder::new().prefix("put-").tempfile_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    Ok(f.into_temp_path())
}

/// A stored file as a stream of chunks, each read on the blocking pool straight into the
/// buffer that is sent (one copy from the page cache; `tokio::fs::File` reads into its
/// own buffer and copies again, a sixth of the CPU serving 4 MB tarballs).
fn file_chunks(file: std::fs::File) -> ByteStream {
    futures::stream::try_unfold(Some(file), |state| async move {
        let Some(mut file) = state else {
            return Ok(None);
        };
        let (file, chunk) = blocking(move || {
            let mut buf = Vec::with_capacity(READ_CHUNK);
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut file, READ_CHUNK as u64),
                &mut buf,
            )?;
            Ok((file, buf))
        })
        .await
        .map_err(std::io::Error::other)?;
        if chunk.is_empty() {
            return Ok(None);
        }
        // A short chunk is the end of the file: no further trip to the blocking pool.
        let next = (chunk.len() == READ_CHUNK).then_some(file);
        Ok(Some((Bytes::from(chunk), next)))
    })
    .boxed()
}

#[async_trait::async_trait]
impl BlobStore for LocalStore {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        let path = self.path(key);
        // One trip to the blocking pool: open, stat and (for small objects) read together.
        let opened = blocking(move || {
            let Some(mut file) = not_found_is_none(std::fs::File::open(&path))? else {
                return Ok(None);
            };
            // Meta from the open handle, so etag and bytes describe the same version.
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(None);
            }
            if meta.len() <= READ_CHUNK as u64 {
                let mut buf = Vec::with_capacity(meta.len() as usize);
                std::io::Read::read_to_end(&mut file, &mut buf)?;
                return Ok(Some((meta, Contents::Small(Bytes::from(buf)))));
            }
            Ok(Some((meta, Contents::Large(file))))
        })
        .await?;
        let Some((meta, contents)) = opened else {
            return Ok(None);
        };
        let body = match contents {
            Contents::Small(b) => futures::stream::once(async move { Ok(b) }).boxed(),
            Contents::Large(file) => file_chunks(file),
        };
        Ok(Some(Object {
            meta: object_meta(&meta),
            body,
        }))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        let meta = not_found_is_none(tokio::fs::metadata(self.path(key)).await)?;
        Ok(meta.filter(|m| m.is_file()).map(|m| object_meta(&m)))
    }

    async fn put(&self, key: &Key, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError> {
        let target = self.path(key);
        let lock_path = self.root.join(LOCKS).join(key.as_str());
        let staged = match body {
            PutBody::File(p) => p,
            PutBody::Bytes(b) => {
                let dir = self.staging.clone();
                blocking(move || Ok(stage_bytes(&dir, &b)?)).await?
            }
        };
        blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match mode {
                PutMode::Overwrite => {
                    staged.persist(&target).map_err(|e| e.error)?;
                }
                PutMode::CreateOnly => match staged.persist_noclobber(&target) {
                    Ok(()) => {}
                    Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(StoreError::PreconditionFailed)
                    }
                    Err(e) => return Err(e.error.into()),
                },
                PutMode::IfMatch(expected) => {
                    if let Some(parent) = lock_path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let lock = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&lock_path)?;
                    lock.lock()?;
                    let current = not_found_is_none(std::fs::metadata(&target))?;
                    if current.map(|m| etag_of(&m)).as_deref() != Some(expected.as_str()) {
                        return Err(StoreError::PreconditionFailed);
                    }
                    staged.persist(&target).map_err(|e| e.error)?;
                    // Unlocks when `lock` drops, after the rename is visible.
                }
            }
            let meta = std::fs::metadata(&target)?;
            Ok(object_meta(&meta))
        })
        .await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        not_found_is_none(tokio::fs::remove_file(self.path(key)).await)?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk from the deepest folder the prefix names, then filter by the full prefix.
            let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(dir_part)
            };
            let mut out = Vec::new();
            walk(&root, &start, &prefix, &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<Key>) -> io::Result<()> {
    let Some(entries) = not_found_is_none(std::fs::read_dir(dir))? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        if rel.starts_with(STAGING) || rel.starts_with(LOCKS) {
            continue;
        }
        if file_type.is_dir() {
            walk(root, &path, prefix, out)?;
        } else if file_type.is_file() && rel.starts_with(prefix) {
            if let Some(k) = Key::parse(rel) {
                out.push(k);
            }
        }
    }
    Ok(())
}
