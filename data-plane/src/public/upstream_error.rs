//! `UpstreamError`: what an exchange with the upstream registry can end in, in the upstream
//! client's words; the HTTP edge (`crate::error`) decides each one's status.

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Timeout(String),
    #[error("cannot reach the upstream registry: {0}")]
    Unreachable(String),
    #[error("the upstream registry answered {0}")]
    Status(u16),
    #[error("the upstream registry sent a bad response: {0}")]
    Body(String),
    /// The breaker is open: nothing was sent.
    #[error("{0}")]
    Unavailable(String),
    /// No upstream is configured (an air-gapped registry): nothing is ever sent.
    #[error("{0}")]
    NotConfigured(String),
}

impl UpstreamError {
    pub(super) fn from_reqwest(e: reqwest::Error, what: &str) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout(format!("{what}: {e}"))
        } else if e.is_connect() || e.is_request() {
            UpstreamError::Unreachable(format!("{what}: {e}"))
        } else {
            UpstreamError::Body(format!("{what}: {e}"))
        }
    }
}
