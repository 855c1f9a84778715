//! What the org layer refuses or cannot answer, in its own words; the HTTP edge
//! (`crate::error`) maps each to its status: a bad or missing credential is 401, a valid
//! one without the scope 403, an unknown org 404, a config source that is down 503.

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("invalid or revoked token")]
    InvalidToken,
    #[error("token {0:?} has expired")]
    Expired(String),
    #[error("token {name:?} lacks the `{scope}` scope")]
    MissingScope { name: String, scope: &'static str },
    #[error("authentication required: this registry needs a token with the `{0}` scope")]
    Required(&'static str),
    #[error("{name} is an internal package: it needs a token with the `{scope}` scope")]
    InternalNeedsToken { name: String, scope: &'static str },
    #[error("token {token:?} is not for {name}")]
    NotForPackage { token: String, name: String },
    #[error("token {token:?} is only for {packages}")]
    OnlyForPackages { token: String, packages: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrgError {
    #[error("unknown org {0:?}")]
    Unknown(String),
    /// The config source (Redis) could not be asked and nothing usable is held.
    #[error("{0}")]
    Unavailable(String),
}
