//! The one place errors become npm-style HTTP answers: `{"error": "…"}` with a status.

use crate::public::integrity::IntegrityError;
use crate::public::upstream::UpstreamError;
use crate::store::StoreError;
use nproxy_core::route::RouteError;

#[derive(Debug, thiserror::Error)]
pub enum NpmError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("upstream registry failed: {0}")]
    BadGateway(String),
    #[error("upstream registry timed out: {0}")]
    GatewayTimeout(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("storage failed: {0}")]
    Storage(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl NpmError {
    pub fn status(&self) -> u16 {
        match self {
            NpmError::BadRequest(_) => 400,
            NpmError::Unauthorized(_) => 401,
            NpmError::Forbidden(_) => 403,
            NpmError::Unavailable(_) => 503,
            NpmError::NotFound(_) => 404,
            NpmError::MethodNotAllowed => 405,
            NpmError::Conflict(_) => 409,
            NpmError::PayloadTooLarge(_) => 413,
            NpmError::BadGateway(_) => 502,
            NpmError::GatewayTimeout(_) => 504,
            NpmError::Storage(_) | NpmError::Internal(_) => 500,
        }
    }

    /// A copy for each waiter of a shared flight (I/O errors inside are not `Clone`).
    pub fn from_shared(e: &std::sync::Arc<NpmError>) -> NpmError {
        match &**e {
            NpmError::BadRequest(m) => NpmError::BadRequest(m.clone()),
            NpmError::Unauthorized(m) => NpmError::Unauthorized(m.clone()),
            NpmError::Forbidden(m) => NpmError::Forbidden(m.clone()),
            NpmError::Unavailable(m) => NpmError::Unavailable(m.clone()),
            NpmError::NotFound(m) => NpmError::NotFound(m.clone()),
            NpmError::MethodNotAllowed => NpmError::MethodNotAllowed,
            NpmError::Conflict(m) => NpmError::Conflict(m.clone()),
            NpmError::PayloadTooLarge(m) => NpmError::PayloadTooLarge(m.clone()),
            NpmError::BadGateway(m) => NpmError::BadGateway(m.clone()),
            NpmError::GatewayTimeout(m) => NpmError::GatewayTimeout(m.clone()),
            NpmError::Storage(s) => NpmError::Internal(format!("storage failed: {s}")),
            NpmError::Internal(m) => NpmError::Internal(m.clone()),
        }
    }

    /// The JSON body npm prints as `E<status> … - <error>`. A 500's own text (storage
    /// paths, OS errors) never reaches a client: it gets the request id the log line carries.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let message = if self.status() == 500 {
            format!("internal error (request id {request_id}); the registry's log has the details")
        } else {
            self.to_string()
        };
        serde_json::to_vec(&serde_json::json!({ "error": message }))
            .unwrap_or_else(|_| b"{\"error\":\"error\"}".to_vec())
    }
}

impl From<RouteError> for NpmError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NotFound => NpmError::NotFound("not found".into()),
            other => NpmError::BadRequest(other.to_string()),
        }
    }
}

impl From<UpstreamError> for NpmError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::Timeout(m) => NpmError::GatewayTimeout(m),
            UpstreamError::Unavailable(m) => NpmError::Unavailable(m),
            other => NpmError::BadGateway(other.to_string()),
        }
    }
}

impl From<IntegrityError> for NpmError {
    fn from(e: IntegrityError) -> Self {
        NpmError::BadGateway(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_npm_json() {
        let e = NpmError::BadRequest("invalid package name: \"x\"".into());
        let v: serde_json::Value = serde_json::from_slice(&e.body("r1")).unwrap();
        assert_eq!(v["error"], "invalid package name: \"x\"");
        assert_eq!(e.status(), 400);
        assert_eq!(NpmError::from(RouteError::NotFound).status(), 404);
        // Internal detail stays in the log.
        let e = NpmError::Storage(StoreError::Backend(
            "/var/lib/nproxy/x: File name too long".into(),
        ));
        let v: serde_json::Value = serde_json::from_slice(&e.body("r2")).unwrap();
        let text = v["error"].as_str().unwrap();
        assert!(!text.contains("/var/lib") && text.contains("r2"), "{text}");
        assert_eq!(
            NpmError::from(UpstreamError::Timeout("x".into())).status(),
            504
        );
    }
}
