//! The control plane's errors, mapped to gRPC status codes in one place.

use nproxy_proto::validate::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// A dependency (an OIDC issuer) is unreachable; the message is for the client.
    #[error("{0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<CpError> for tonic::Status {
    fn from(e: CpError) -> Self {
        match e {
            CpError::Invalid(f) => tonic::Status::invalid_argument(f.to_string()),
            CpError::NotFound(m) => tonic::Status::not_found(format!("{m} not found")),
            CpError::AlreadyExists(m) => {
                tonic::Status::already_exists(format!("{m} already exists"))
            }
            CpError::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            CpError::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            CpError::PermissionDenied(m) => tonic::Status::permission_denied(m),
            CpError::Unavailable(m) => tonic::Status::unavailable(m),
            // PostgreSQL refuses NUL in text (SQLState 22021); a client sent it: its mistake.
            CpError::Db(sqlx::Error::Database(d)) if d.code().as_deref() == Some("22021") => {
                tonic::Status::invalid_argument("text fields may not contain NUL characters")
            }
            CpError::Db(e) => {
                tracing::error!(error = %e, "database error");
                tonic::Status::internal("database error")
            }
            CpError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                tonic::Status::internal(m)
            }
        }
    }
}

pub type CpResult<T> = Result<T, CpError>;
