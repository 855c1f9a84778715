//! Trusted publishing: `POST /-/npm/v1/oidc/token/exchange/package/<name>`, where npm's
//! CLI, in a CI job with an OIDC id token, asks for a short-lived publish token. The control
//! plane checks the id token (issuer's JWKS, audience, expiry, the org's trusted publishers'
//! claims) and mints the token; this edge only passes the request on and words the answer.
//!
//! npm builds the URL as an absolute path on the registry's host, so a path-mode org's
//! prefix is dropped: the request may reach the root, where the org is found by the control
//! plane from the package's scope.

use serde_json::json;

use nproxy_core::names::PackageName;
use nproxy_proto::v1 as pb;

use crate::error::NpmError;
use crate::internal::cp_client::ControlPlaneClient;

/// The largest id token passed on (real ones are 1–3 KiB).
const MAX_ID_TOKEN: usize = 16 * 1024;

/// The answer to send: status and JSON body. npm reads `token` on success and logs
/// `message` of a failure (verbose level); `error` is what every nproxy error carries.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

fn refusal(status: u16, message: &str) -> Answer {
    Answer {
        status,
        body: json!({"error": message, "message": message}),
    }
}

/// The id token from `Authorization: Bearer <jwt>`, if it looks like a JWT at all.
pub fn id_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let jwt_like = token.len() <= MAX_ID_TOKEN
        && token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
    jwt_like.then_some(token)
}

/// Exchanges the request's id token. `org` is the org the request reached, when its URL
/// names one; `host` is the host name the client used (the audience is `npm:<host>`).
pub async fn exchange(
    cp: Option<&ControlPlaneClient>,
    org: Option<&str>,
    name: &PackageName,
    authorization: Option<&str>,
    host: &str,
) -> Result<Answer, NpmError> {
    let Some(token) = id_token(authorization) else {
        return Ok(refusal(
            401,
            "trusted publishing needs the CI job's OIDC id token as `Authorization: Bearer <token>`",
        ));
    };
    let Some(cp) = cp else {
        return Ok(refusal(
            404,
            "trusted publishing is not available: this registry has no control plane",
        ));
    };
    let req = pb::ExchangeOidcTokenRequest {
        org: org.unwrap_or_default().to_string(),
        package: name.to_string(),
        id_token: token.to_string(),
        audience: format!("npm:{host}"),
    };
    match cp.exchange_oidc(req).await {
        Ok(r) => Ok(Answer {
            status: 201,
            body: json!({
                "token": r.token,
                "expires": nproxy_core::internal::iso_from_ms(r.expires_at_ms),
            }),
        }),
        Err(s) => {
            use tonic::Code;
            let (status, message) = match s.code() {
                Code::Unauthenticated => (401, s.message().to_string()),
                Code::PermissionDenied => (403, s.message().to_string()),
                Code::InvalidArgument => (400, s.message().to_string()),
                Code::NotFound => (404, s.message().to_string()),
                code => {
                    // Internal detail stays in the log.
                    tracing::warn!(?code, error = %s.message(), package = %name, "token exchange failed");
                    (
                        503,
                        "the token exchange is unavailable; try again shortly".to_string(),
                    )
                }
            };
            Ok(refusal(status, &message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_jwts_are_passed_on() {
        assert_eq!(id_token(Some("Bearer aa.bb.cc")), Some("aa.bb.cc"));
        assert_eq!(id_token(Some("bearer  a-_.b=.c ")), Some("a-_.b=.c"));
        assert_eq!(id_token(Some("Basic aa.bb.cc")), None);
        assert_eq!(id_token(Some("Bearer nproxy_abc")), None);
        assert_eq!(id_token(Some("Bearer a.b.c.d")), None);
        assert_eq!(id_token(Some("Bearer a.b.c\r\nx")), None);
        assert_eq!(id_token(None), None);
        let huge = format!("Bearer {}.b.c", "a".repeat(MAX_ID_TOKEN));
        assert_eq!(id_token(Some(&huge)), None);
    }
}
