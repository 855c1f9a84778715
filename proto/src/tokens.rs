//! How nproxy tokens look on the wire, once for every crate: the control plane mints them
//! with this prefix, the data plane recognises them by it (and never forwards them).

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

#[cfg(test)]
mod tests {
    use super::*;

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
