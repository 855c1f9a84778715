//! Writing a verified bundle into the blob store the data planes share, merged with what is
//! there: tarballs create-only (identical bytes already stored: nothing to do; different
//! bytes: that package is refused, never replaced), then each packument merged with the
//! stored one (versions already there are kept as they are, new ones added; compare-and-swap
//! against a data plane writing meanwhile), then its meta, so data planes take the document
//! as a valid copy. A version is visible only once its tarball is stored.

use std::sync::Arc;

use futures::StreamExt;
use nproxy_core::names::PackageName;
use nproxy_core::packument::{self, Packument};
use nproxy_data_plane::store::{get_bytes, BlobStore, Key, PutBody, PutMode, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha512};

use super::stage::Staged;
use super::verify::Package;

#[derive(Debug, Default)]
pub struct Applied {
    /// Versions added to packuments.
    pub new_versions: usize,
    pub tarballs_written: usize,
    pub tarballs_present: usize,
    /// Packages left out, with why.
    pub refused: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct DistOnly {
    dist: Option<Dist>,
}

#[derive(Deserialize)]
struct Dist {
    integrity: Option<String>,
    shasum: Option<String>,
}

/// The sha512 of a stored object, streamed; `None` if it is not stored.
async fn stored_sha512(store: &dyn BlobStore, key: &Key) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    let mut h = Sha512::new();
    let mut body = obj.body;
    while let Some(chunk) = body.next().await {
        h.update(&chunk?);
    }
    Ok(Some(h.finalize().to_vec()))
}

fn tarball_key(name: &PackageName, v: &semver::Version) -> Key {
    Key::public_tarball(name, &nproxy_core::names::TarballFile::for_version(name, v))
}

/// Why this package can't be merged into what is stored, if it can't: a stored version with
/// other hashes, or a stored tarball with other bytes. `present` gets the versions whose
/// identical tarball is already stored.
async fn conflict(
    store: &dyn BlobStore,
    p: &Package,
    present: &mut Vec<semver::Version>,
) -> Result<Option<String>, StoreError> {
    if let Some((_, bytes)) = get_bytes(store, &Key::public_packument(&p.name)).await? {
        if let Ok(doc) = Packument::parse(&bytes) {
            for (v, (sha512, sha1, _)) in &p.versions {
                let Some(d) = doc.version_as::<DistOnly>(&v.to_string()) else {
                    continue;
                };
                let d = d.dist.unwrap_or(Dist {
                    integrity: None,
                    shasum: None,
                });
                let same = match (
                    d.integrity
                        .as_deref()
                        .and_then(super::format::sha512_of_sri),
                    d.shasum.as_deref().and_then(|s| hex::decode(s).ok()),
                ) {
                    (Some(i), _) => i == *sha512,
                    (None, Some(s)) => s == *sha1,
                    (None, None) => true,
                };
                if !same {
                    return Ok(Some(format!(
                        "{}@{v} is already in this registry with other bytes; not replaced",
                        p.name
                    )));
                }
            }
        }
    }
    for (v, (sha512, _, _)) in &p.versions {
        match stored_sha512(store, &tarball_key(&p.name, v)).await? {
            None => {}
            Some(s) if s == *sha512 => present.push(v.clone()),
            Some(_) => {
                return Ok(Some(format!(
                    "{}@{v}: a different tarball is already stored; not replaced",
                    p.name
                )))
            }
        }
    }
    Ok(None)
}

/// Merges the bundled packument into the stored one (compare-and-swap, retried) and writes
/// its meta. Returns the number of versions added.
async fn merge_packument(
    store: &dyn BlobStore,
    p: &Package,
    bundled: &[u8],
) -> anyhow::Result<usize> {
    let key = Key::public_packument(&p.name);
    let new_doc = Packument::parse(bundled)
        .map_err(|e| anyhow::anyhow!("{}: packument: {e}", p.name))?
        .into_owned();
    for _ in 0..8 {
        let stored = get_bytes(store, &key).await?;
        let (body, mode, added) = match &stored {
            Some((meta, bytes)) => {
                let held = Packument::parse(bytes)
                    .map_err(|e| anyhow::anyhow!("{}: the stored packument: {e}", p.name))?;
                let added = new_doc
                    .version_keys()
                    .filter(|v| !held.has_version(v))
                    .count();
                if added == 0 {
                    write_meta(store, &p.name, bytes).await?;
                    return Ok(0);
                }
                // The stored document is the base: its versions and fields stay as they are.
                let merged = packument::merge(Some(new_doc.clone()), Some(held), |_| true)
                    .ok_or_else(|| anyhow::anyhow!("{}: nothing to merge", p.name))?;
                (merged.to_vec(), PutMode::IfMatch(meta.etag.clone()), added)
            }
            None => {
                let doc = packument::merge(None, Some(new_doc.clone()), |_| true)
                    .ok_or_else(|| anyhow::anyhow!("{}: the packument is empty", p.name))?;
                (
                    doc.to_vec(),
                    PutMode::CreateOnly,
                    new_doc.version_keys().count(),
                )
            }
        };
        match store
            .put(&key, PutBody::Bytes(body.clone().into()), mode)
            .await
        {
            Ok(_) => {
                write_meta(store, &p.name, &body).await?;
                return Ok(added);
            }
            Err(StoreError::PreconditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "{}: the stored packument kept changing; run the import again",
        p.name
    )
}

async fn write_meta(store: &dyn BlobStore, name: &PackageName, body: &[u8]) -> anyhow::Result<()> {
    let key = Key::public_packument_meta(name);
    let existing = get_bytes(store, &key).await?;
    if let Some(meta) =
        nproxy_data_plane::imported_meta(existing.as_ref().map(|(_, b)| &b[..]), body)
    {
        store
            .put(&key, PutBody::Bytes(meta.into()), PutMode::Overwrite)
            .await?;
    }
    Ok(())
}

/// Applies every verified package not in conflict with the store.
pub async fn apply(
    store: Arc<dyn BlobStore>,
    packages: &[Package],
    staged: &mut Staged,
) -> anyhow::Result<Applied> {
    let mut out = Applied::default();
    'packages: for p in packages {
        let mut present = Vec::new();
        if let Some(why) = conflict(store.as_ref(), p, &mut present).await? {
            out.refused.push((p.name.to_string(), why));
            continue;
        }
        for (v, (sha512, _, member)) in &p.versions {
            if present.contains(v) {
                out.tarballs_present += 1;
                continue;
            }
            let Some(m) = staged.members.remove(member) else {
                anyhow::bail!("{}@{v}: staged tarball lost", p.name);
            };
            let key = tarball_key(&p.name, v);
            match store
                .put(&key, PutBody::File(m.path), PutMode::CreateOnly)
                .await
            {
                Ok(_) => out.tarballs_written += 1,
                // Stored meanwhile (a data plane, another import): fine if it is the same.
                Err(StoreError::PreconditionFailed) => {
                    if stored_sha512(store.as_ref(), &key).await?.as_ref() != Some(sha512) {
                        out.refused.push((
                            p.name.to_string(),
                            format!("{}@{v}: a different tarball was stored meanwhile", p.name),
                        ));
                        continue 'packages;
                    }
                    out.tarballs_present += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let doc = staged
            .members
            .get(&p.packument)
            .ok_or_else(|| anyhow::anyhow!("{}: staged packument lost", p.name))?;
        let bytes = tokio::fs::read(&doc.path).await?;
        // A stored document that can't be merged (corrupt, or changing under heavy writes)
        // refuses this package; its new tarballs stay invisible without a document naming them.
        match merge_packument(store.as_ref(), p, &bytes).await {
            Ok(added) => out.new_versions += added,
            Err(e) => out.refused.push((p.name.to_string(), format!("{e:#}"))),
        }
    }
    Ok(out)
}
