//! Why an org's rules could not be evaluated for a package: never the client's fault, so
//! the HTTP edge turns every one into a 500 behind a request id.

use crate::store::StoreError;

/// Why an org's rules could not be evaluated for a package (never a client's fault).
#[derive(Debug, thiserror::Error)]
pub enum VerdictError {
    #[error("no stored packument for {0}")]
    NoDocument(String),
    #[error("stored packument for {package} is corrupt: {detail}")]
    Corrupt { package: String, detail: String },
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Task(&'static str),
}

impl crate::singleflight::FlightError for VerdictError {
    fn panicked() -> Self {
        VerdictError::Task("a rules task panicked")
    }
}
