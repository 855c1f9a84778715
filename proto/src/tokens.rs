//! How nproxy tokens look on the wire, once for every crate: the control plane mints them
//! with this prefix, the data plane recognises them by it (and never forwards them), and
//! every gRPC client of the control plane (nproxyctl, the data plane, the tests) sends its
//! credential through `BearerAuth`.

use tonic::metadata::{Ascii, MetadataValue};

/// Every nproxy API token starts with this (admin tokens with `nproxy_admin_`).
pub const TOKEN_PREFIX: &str = "nproxy_";

/// The bearer token of an `Authorization` header value, if it is an nproxy token. Other
/// tokens (a user's own upstream token) are not nproxy's to judge.
pub fn nproxy_bearer(authorization: Option<&str>) -> Option<&str> {
    let v = authorization?.trim();
    let token = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    token.starts_with(TOKEN_PREFIX).then_some(token)
}

/// A token that can't travel in a header (control characters, non-ASCII).
#[derive(Debug, thiserror::Error)]
#[error("the token has characters a header can't carry")]
pub struct UnsendableToken;

/// The client half of the control plane's bearer auth (the server half is its
/// interceptor): a tonic interceptor sending `authorization: Bearer <token>` with every call,
/// e.g. `OrgsClient::with_interceptor(channel, auth)`. Without a token it sends nothing, and
/// the control plane answers `Unauthenticated` (with a hint) to all but health checks.
#[derive(Clone, Default)]
pub struct BearerAuth(Option<MetadataValue<Ascii>>);

impl BearerAuth {
    pub fn new(token: &str) -> Result<Self, UnsendableToken> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| UnsendableToken)?;
        // A secret: kept out of HTTP/2 header compression tables and out of `Debug` output.
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }

    /// `token` if there is one, else no credential at all.
    pub fn optional(token: Option<&str>) -> Result<Self, UnsendableToken> {
        token.map_or(Ok(Self(None)), Self::new)
    }
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() {
            "Bearer …"
        } else {
            "none"
        };
        f.debug_tuple("BearerAuth").field(&shown).finish()
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn sent(mut auth: BearerAuth) -> Option<String> {
        let req = auth.call(tonic::Request::new(())).expect("never refuses");
        req.metadata()
            .get("authorization")
            .map(|v| v.to_str().expect("ascii").to_string())
    }

    #[test]
    fn bearer_auth_sends_the_token_or_nothing() {
        let auth = BearerAuth::new("nproxy_admin_abc").expect("sendable");
        assert_eq!(
            sent(auth.clone()).as_deref(),
            Some("Bearer nproxy_admin_abc")
        );
        // What the data plane's own parser (and the control plane's) read back.
        assert_eq!(
            nproxy_bearer(sent(auth.clone()).as_deref()),
            Some("nproxy_admin_abc")
        );
        assert!(!format!("{auth:?}").contains("abc"));
        assert_eq!(sent(BearerAuth::optional(None).expect("none")), None);
        assert!(BearerAuth::new("line\nbreak").is_err());
    }

    #[test]
    fn only_nproxy_bearer_tokens_are_ours() {
        assert_eq!(nproxy_bearer(Some("Bearer nproxy_abc")), Some("nproxy_abc"));
        assert_eq!(
            nproxy_bearer(Some(" bearer  nproxy_abc ")),
            Some("nproxy_abc")
        );
        assert_eq!(nproxy_bearer(Some("Bearer npm_abc")), None);
        assert_eq!(nproxy_bearer(Some("Basic bnByb3h5Xw==")), None);
        assert_eq!(nproxy_bearer(Some("nproxy_abc")), None);
        assert_eq!(nproxy_bearer(None), None);
    }
}
