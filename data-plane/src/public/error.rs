//! What can go wrong serving public packages, in this layer's own words. The HTTP edge
//! (`crate::error`) alone decides each one's status and client-facing text: a missing
//! package or version is the client's 404, an upstream failure with no copy to fall back
//! on is a 502/503/504 naming the upstream, and everything local (storage, a corrupt
//! copy, a worker task) is a 500 whose detail stays in the log behind a request id.

use crate::public::upstream::UpstreamError;
use crate::rules::error::VerdictError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PublicError {
    #[error("package {0} not found")]
    PackageNotFound(String),
    #[error("{package}@{version} not found")]
    VersionNotFound { package: String, version: String },
    /// The upstream failed and nothing is stored to answer with instead.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("upstream sent an invalid packument for {package}: {detail}")]
    InvalidUpstreamDocument { package: String, detail: String },
    #[error("upstream says {0} is unchanged but no copy is stored")]
    NoStoredCopy(String),
    /// The upstream's document gives no usable hash for a tarball.
    #[error("{0}")]
    Integrity(String),
    #[error("stored data for {package} is corrupt: {detail}")]
    Corrupt { package: String, detail: String },
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the org's rules could not be evaluated: {0}")]
    Rules(std::sync::Arc<VerdictError>),
    /// A worker task died or a limiter closed (shutdown, or a bug).
    #[error("{0}")]
    Task(&'static str),
}

impl crate::singleflight::FlightError for PublicError {
    fn panicked() -> Self {
        PublicError::Task("a worker task panicked")
    }
}

impl PublicError {
    /// A flight's shared error as one waiter's own. Everything but the upstream's and the
    /// store's errors (which carry I/O errors) is rebuilt; those two keep their text.
    pub fn from_shared(e: &std::sync::Arc<PublicError>) -> PublicError {
        match &**e {
            PublicError::PackageNotFound(p) => PublicError::PackageNotFound(p.clone()),
            PublicError::VersionNotFound { package, version } => PublicError::VersionNotFound {
                package: package.clone(),
                version: version.clone(),
            },
            PublicError::Upstream(u) => PublicError::Upstream(u.clone()),
            PublicError::InvalidUpstreamDocument { package, detail } => {
                PublicError::InvalidUpstreamDocument {
                    package: package.clone(),
                    detail: detail.clone(),
                }
            }
            PublicError::NoStoredCopy(p) => PublicError::NoStoredCopy(p.clone()),
            PublicError::Integrity(m) => PublicError::Integrity(m.clone()),
            PublicError::Corrupt { package, detail } => PublicError::Corrupt {
                package: package.clone(),
                detail: detail.clone(),
            },
            PublicError::Store(s) => PublicError::Store(StoreError::Backend(s.to_string())),
            PublicError::Rules(r) => PublicError::Rules(r.clone()),
            PublicError::Task(t) => PublicError::Task(t),
        }
    }
}
