//! Tarball indexes: for each package, what every tarball must hash to and where the
//! upstream has it. Only a cold download needs one, so they live in their own cache bounded
//! by bytes, built while merging (`refresh.rs`) or rebuilt from the stored document.

use std::collections::HashMap;
use std::sync::Arc;

use super::Packuments;
use crate::public::error::PublicError;
use crate::singleflight::{panicked, shared_err, Shared};
use crate::store::get_bytes;
use nproxy_core::names::PackageName;
use nproxy_core::packument::DistInfo;

/// Every tarball of one stored document: what each must hash to and where the upstream has
/// it. Needed only to download a tarball nproxy doesn't have yet, so it is kept apart from
/// [`PackageState`] in a cache bounded by bytes (`TARBALL_INDEX_BYTES`): a package with
/// thousands of versions costs megabytes, and a data plane sees hundreds of thousands of
/// packages.
#[derive(Debug)]
pub struct TarballIndex {
    /// The document's `PackageState::version` it was built from.
    pub version: String,
    pub tarballs: HashMap<Box<str>, DistInfo>,
}

impl TarballIndex {
    /// Bytes a cache is charged for it: the strings, plus per entry its map bucket (~72 B,
    /// more at the map's load factor) and the allocator's rounding of three small strings
    /// (a heap profile found 96 B per entry 20 % short).
    pub(super) fn weight(&self) -> u32 {
        let n: usize = self
            .tarballs
            .iter()
            .map(|(k, d)| k.len() + d.heap_bytes() + 144)
            .sum::<usize>()
            + self.version.len();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Bytes of tarball indexes held in memory (see [`TarballIndex`]). An index evicted is
/// rebuilt from the stored document on the next cold download of that package.
pub(super) const TARBALL_INDEX_BYTES: u64 = 8 * 1024 * 1024;

impl Packuments {
    /// What tarball `file` of `name` must hash to and where the upstream has it, from the
    /// stored document (`None`: the document has no such file). `force` revalidates the
    /// document first (a version published since).
    pub async fn dist(
        self: &Arc<Self>,
        name: &PackageName,
        file: &str,
        force: bool,
    ) -> Shared<Option<DistInfo>, PublicError> {
        let state = self.state(name, force).await?;
        if let Some(ix) = self.indexes.get(name) {
            if ix.version == state.version {
                return Ok(ix.tarballs.get(file).cloned());
            }
        }
        let this = self.clone();
        let key = name.clone();
        let ix = self
            .index_loads
            .run(
                name.clone(),
                move || async move { this.load_index(key).await },
                panicked,
            )
            .await?;
        Ok(ix.tarballs.get(file).cloned())
    }

    /// Builds the tarball index of the stored document (it was evicted, or never built here).
    async fn load_index(
        self: Arc<Self>,
        name: PackageName,
    ) -> Shared<Arc<TarballIndex>, PublicError> {
        let Some((_, body)) = get_bytes(self.store.as_ref(), &self.space.packument(&name))
            .await
            .map_err(shared_err)?
        else {
            return Err(shared_err(PublicError::PackageNotFound(name.to_string())));
        };
        let _permit = self.budget.admit(body.len()).await.map_err(shared_err)?;
        let name2 = name.clone();
        let ix = tokio::task::spawn_blocking(move || -> Shared<TarballIndex, PublicError> {
            let doc = nproxy_core::packument::Packument::parse(&body).map_err(|e| {
                shared_err(PublicError::Corrupt {
                    package: name2.to_string(),
                    detail: e.to_string(),
                })
            })?;
            Ok(TarballIndex {
                version: nproxy_common::hash::sha256_hex(&body),
                tarballs: nproxy_core::packument::tarball_index(&name2, &doc),
            })
        })
        .await
        .map_err(|_| shared_err(PublicError::Task("a parse task failed")))??;
        let ix = Arc::new(ix);
        self.remember_index(name, ix.clone());
        Ok(ix)
    }

    /// Keeps a document's tarball index (built while merging, or loaded for a download).
    pub(super) fn remember_index(&self, name: PackageName, ix: Arc<TarballIndex>) {
        crate::public::byte_cache::insert_bounded(
            &self.indexes,
            name,
            ix,
            &self.metrics,
            "tarball_indexes",
        );
    }
}
