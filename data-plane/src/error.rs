//! The one place errors become npm-style HTTP answers: `{"error": "…"}` with a status.

use crate::internal::error::{InternalStoreError, OutboxError, SignUnavailable};
use crate::org::error::{AuthError, OrgError};
use crate::public::error::PublicError;
use crate::public::integrity::IntegrityError;
use crate::public::upstream::UpstreamError;
use crate::store::StoreError;
use nproxy_core::internal::DocError;
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

impl From<&UpstreamError> for NpmError {
    fn from(e: &UpstreamError) -> Self {
        match e {
            UpstreamError::Timeout(m) => NpmError::GatewayTimeout(m.clone()),
            UpstreamError::Unavailable(m) => NpmError::Unavailable(m.clone()),
            UpstreamError::NotConfigured(m) => NpmError::NotFound(m.clone()),
            other => NpmError::BadGateway(other.to_string()),
        }
    }
}

impl From<UpstreamError> for NpmError {
    fn from(e: UpstreamError) -> Self {
        NpmError::from(&e)
    }
}

/// Public packages: the client's 404 for what does not exist, the upstream named for what
/// it failed to give (with nothing stored to answer instead), and a bare 500 with a
/// request id for everything local.
impl From<&PublicError> for NpmError {
    fn from(e: &PublicError) -> Self {
        match e {
            PublicError::PackageNotFound(_) | PublicError::VersionNotFound { .. } => {
                NpmError::NotFound(e.to_string())
            }
            PublicError::Upstream(u) => NpmError::from(u),
            PublicError::InvalidUpstreamDocument { .. }
            | PublicError::NoStoredCopy(_)
            | PublicError::Integrity(_) => NpmError::BadGateway(e.to_string()),
            PublicError::Corrupt { .. }
            | PublicError::Store(_)
            | PublicError::Rules(_)
            | PublicError::Task(_) => NpmError::Internal(e.to_string()),
        }
    }
}

impl From<PublicError> for NpmError {
    fn from(e: PublicError) -> Self {
        NpmError::from(&e)
    }
}

impl From<std::sync::Arc<PublicError>> for NpmError {
    fn from(e: std::sync::Arc<PublicError>) -> Self {
        NpmError::from(&*e)
    }
}

/// Credentials: missing or bad is 401 (npm then asks the user to log in), valid but without
/// the scope is 403.
impl From<AuthError> for NpmError {
    fn from(e: AuthError) -> Self {
        match e {
            // A valid token used beyond what it grants.
            AuthError::MissingScope { .. }
            | AuthError::NotForPackage { .. }
            | AuthError::OnlyForPackages { .. } => NpmError::Forbidden(e.to_string()),
            _ => NpmError::Unauthorized(e.to_string()),
        }
    }
}

impl From<OrgError> for NpmError {
    fn from(e: OrgError) -> Self {
        match e {
            OrgError::Unknown(_) => NpmError::NotFound(e.to_string()),
            OrgError::Unavailable(m) => NpmError::Unavailable(m),
        }
    }
}

impl From<DocError> for NpmError {
    fn from(e: DocError) -> Self {
        match e {
            DocError::Conflict(m) => NpmError::Conflict(m),
            DocError::Invalid(m) => NpmError::BadRequest(m),
            DocError::NotFound(m) => NpmError::NotFound(m),
        }
    }
}

/// Internal packages: a refused change keeps its status, a concurrent change is a 409 to
/// retry, lost races a 503 with nothing changed, anything local a 500.
impl From<InternalStoreError> for NpmError {
    fn from(e: InternalStoreError) -> Self {
        match e {
            InternalStoreError::Doc(d) => NpmError::from(d),
            InternalStoreError::NotFound(_) => NpmError::NotFound(e.to_string()),
            InternalStoreError::Changed => NpmError::Conflict(e.to_string()),
            InternalStoreError::TooLarge { .. } => NpmError::PayloadTooLarge(e.to_string()),
            InternalStoreError::Contended(_) => NpmError::Unavailable(e.to_string()),
            InternalStoreError::Store(s) => NpmError::Storage(s),
            InternalStoreError::Corrupt { .. }
            | InternalStoreError::BadKey
            | InternalStoreError::Encode(_) => NpmError::Internal(e.to_string()),
        }
    }
}

impl From<OutboxError> for NpmError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Internal(i) => NpmError::from(i),
            other => NpmError::Internal(other.to_string()),
        }
    }
}

impl From<SignUnavailable> for NpmError {
    fn from(e: SignUnavailable) -> Self {
        NpmError::Unavailable(e.to_string())
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

    #[test]
    fn public_errors_map_to_statuses_and_hide_local_detail() {
        let cases: Vec<(PublicError, u16)> = vec![
            (PublicError::PackageNotFound("left-pad".into()), 404),
            (
                PublicError::VersionNotFound {
                    package: "left-pad".into(),
                    version: "9.9.9".into(),
                },
                404,
            ),
            (
                PublicError::Upstream(UpstreamError::Timeout("t".into())),
                504,
            ),
            (
                PublicError::Upstream(UpstreamError::Unavailable("u".into())),
                503,
            ),
            (PublicError::Upstream(UpstreamError::Status(500)), 502),
            (
                PublicError::Upstream(UpstreamError::NotConfigured(
                    "left-pad is not in this registry (no upstream configured)".into(),
                )),
                404,
            ),
            (PublicError::NoStoredCopy("left-pad".into()), 502),
            (
                PublicError::Corrupt {
                    package: "left-pad".into(),
                    detail: "/srv/store/public/packuments/left-pad.json: EOF".into(),
                },
                500,
            ),
            (
                PublicError::Store(StoreError::Backend("/srv/store: disk full".into())),
                500,
            ),
            (PublicError::Task("a render task failed"), 500),
        ];
        for (e, status) in cases {
            let shared = std::sync::Arc::new(e);
            // Each waiter of a shared flight gets the same answer as the leader.
            let copy = PublicError::from_shared(&shared);
            let (a, b) = (NpmError::from(&*shared), NpmError::from(copy));
            assert_eq!((a.status(), b.status()), (status, status), "{shared}");
            let text: serde_json::Value = serde_json::from_slice(&a.body("req-1")).unwrap();
            let text = text["error"].as_str().unwrap().to_string();
            if status == 500 {
                assert!(!text.contains("/srv") && text.contains("req-1"), "{text}");
            } else {
                assert!(text.contains("left-pad") || status != 404, "{text}");
            }
        }
    }

    #[test]
    fn org_errors_keep_their_statuses_and_texts() {
        let cases: Vec<(NpmError, u16, &str)> = vec![
            (
                AuthError::InvalidToken.into(),
                401,
                "invalid or revoked token",
            ),
            (
                AuthError::Expired("ci".into()).into(),
                401,
                "token \"ci\" has expired",
            ),
            (
                AuthError::MissingScope {
                    name: "ci".into(),
                    scope: "publish",
                }
                .into(),
                403,
                "token \"ci\" lacks the `publish` scope",
            ),
            (
                AuthError::Required("proxy").into(),
                401,
                "authentication required: this registry needs a token with the `proxy` scope",
            ),
            (
                AuthError::InternalNeedsToken {
                    name: "@acme/x".into(),
                    scope: "proxy",
                }
                .into(),
                401,
                "@acme/x is an internal package: it needs a token with the `proxy` scope",
            ),
            (
                AuthError::NotForPackage {
                    token: "oidc acme/app".into(),
                    name: "@acme/other".into(),
                }
                .into(),
                403,
                "token \"oidc acme/app\" is not for @acme/other",
            ),
            (
                AuthError::OnlyForPackages {
                    token: "oidc acme/app".into(),
                    packages: "@acme/app".into(),
                }
                .into(),
                403,
                "token \"oidc acme/app\" is only for @acme/app",
            ),
            (
                OrgError::Unknown("zz".into()).into(),
                404,
                "unknown org \"zz\"",
            ),
            (OrgError::Unavailable("later".into()).into(), 503, "later"),
        ];
        for (e, status, text) in cases {
            assert_eq!(e.status(), status, "{e}");
            let body: serde_json::Value = serde_json::from_slice(&e.body("r")).unwrap();
            assert_eq!(body["error"], text);
        }
    }

    #[test]
    fn internal_store_errors_map_to_statuses_and_hide_local_detail() {
        let cases: Vec<(InternalStoreError, u16)> = vec![
            (DocError::Conflict("1.0.0 exists".into()).into(), 409),
            (DocError::Invalid("bad".into()).into(), 400),
            (DocError::NotFound("gone".into()).into(), 404),
            (InternalStoreError::NotFound("@acme/x".into()), 404),
            (InternalStoreError::Changed, 409),
            (
                InternalStoreError::TooLarge {
                    name: "@acme/x".into(),
                    size: 2,
                    limit: 1,
                },
                413,
            ),
            (InternalStoreError::Contended("@acme/x".into()), 503),
            (
                InternalStoreError::Corrupt {
                    name: "@acme/x".into(),
                    detail: "/srv/store/internal/o1/x.json".into(),
                },
                500,
            ),
            (InternalStoreError::BadKey, 500),
            (
                InternalStoreError::Store(StoreError::Backend("/srv: EIO".into())),
                500,
            ),
        ];
        for (e, status) in cases {
            let e = NpmError::from(e);
            assert_eq!(e.status(), status, "{e}");
            let body: serde_json::Value = serde_json::from_slice(&e.body("r9")).unwrap();
            let text = body["error"].as_str().unwrap();
            assert!(
                status != 500 || (!text.contains("/srv") && text.contains("r9")),
                "{text}"
            );
        }
    }
}
