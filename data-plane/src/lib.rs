//! nproxy's data plane: the pingora HTTP server that answers npm clients.
//! See ARCHITECTURE.md at the repository root for the map and the invariants.

pub mod config;
pub mod error;
pub mod integrity;
pub mod metrics;
pub mod names;
pub mod packument;
pub mod packuments;
pub mod route;
pub mod server;
pub mod singleflight;
pub mod store;
pub mod tarballs;
pub mod tenant;
pub mod upstream;

use std::sync::Arc;

use config::{Settings, StorageKind};
use metrics::Metrics;
use packuments::{Packuments, PackumentsConfig};
use store::{BlobStore, LocalStore, S3Store};
use tarballs::Tarballs;
use upstream::Upstream;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("upstream client: {0}")]
    Upstream(#[from] reqwest::Error),
}

/// Opens the configured blob store.
pub fn open_store(settings: &Settings) -> Result<Arc<dyn BlobStore>, StartError> {
    Ok(match settings.storage.kind {
        StorageKind::Local => Arc::new(LocalStore::open(&settings.storage.path)?),
        StorageKind::S3 => {
            // Staging for uploads; downloads are streamed to it before they are verified.
            let staging = std::env::temp_dir().join("nproxy-staging");
            Arc::new(S3Store::new(&settings.storage.s3, staging)?)
        }
    })
}

/// Builds the request-handling application from validated settings.
pub fn build_app(settings: Settings, metrics: Metrics) -> Result<server::App, StartError> {
    let store = open_store(&settings)?;
    let upstream = Arc::new(Upstream::new(&settings, metrics.clone())?);
    let packuments = Arc::new(Packuments::new(
        store.clone(),
        upstream.clone(),
        metrics.clone(),
        PackumentsConfig {
            max_age: settings.packument_max_age,
            negative_ttl: settings.negative_cache,
            memory_bytes: settings.memory_cache_bytes,
        },
    ));
    let tarballs = Arc::new(Tarballs::new(
        store,
        upstream.clone(),
        packuments.clone(),
        metrics.clone(),
        settings.tarball_memory_cache_bytes,
    ));
    Ok(server::App {
        settings: Arc::new(settings),
        packuments,
        tarballs,
        upstream,
        metrics,
    })
}
