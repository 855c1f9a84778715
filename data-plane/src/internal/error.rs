//! What can go wrong storing internal packages, in the layer's own words. The HTTP edge
//! (`crate::error`) maps each: a refused change keeps its status (409/400/404), a
//! concurrent change is a 409 to retry, an oversized document 413, lost compare-and-swap
//! races 503 (nothing changed), and anything local a 500 behind a request id.

use nproxy_core::internal::DocError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum InternalStoreError {
    /// The change itself was refused (conflict, invalid, nothing to change).
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the package changed meanwhile; fetch it again and retry")]
    Changed,
    #[error("{name}'s document would be {size} bytes; the limit is {limit}")]
    TooLarge {
        name: String,
        size: usize,
        limit: usize,
    },
    #[error("{0} is being changed by other writers; nothing was changed, retry")]
    Contended(String),
    #[error("stored document of {name} is corrupt: {detail}")]
    Corrupt { name: String, detail: String },
    #[error("org id is not usable in a storage key")]
    BadKey,
    #[error("cannot encode a document: {0}")]
    Encode(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

/// The audit outbox could not record or hand over an entry (always local: a 500).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("org id is not usable in an outbox key")]
    BadKey,
    #[error("cannot encode an outbox entry: {0}")]
    Encode(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] InternalStoreError),
}

/// The control plane did not sign (down, or refused): nothing was stored, the client retries.
#[derive(Debug, thiserror::Error)]
#[error("the control plane could not sign this version; nothing was stored, retry later")]
pub struct SignUnavailable;
