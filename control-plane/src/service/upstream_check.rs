//! Upstream routes' fields, checked (pure): the pattern (`upstream_pattern`, never over an
//! internal scope), the registry URL, and the credential as a type that never prints,
//! sealed under the master key bound to its route's id and version.

use std::net::IpAddr;

use nproxy_proto::upstream_pattern;
use nproxy_proto::validate::FieldError;
use url::Url;

use crate::error::{CpError, CpResult};
use crate::secrets::MasterKey;

pub(super) const MAX_URL: usize = 512;
pub(super) const MAX_CREDENTIAL: usize = 4096;

/// A route's credential in clear: only ever sealed, or sent to a data plane. `Debug` never
/// prints it; the bytes come out only through `expose` / `into_exposed`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential(String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

impl Credential {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_exposed(self) -> String {
        self.0
    }
}

/// The pattern as stored (trimmed), refused if it covers names of one of `internal_scopes`:
/// internal names never leave nproxy, so no route may send them anywhere.
pub(super) fn check_pattern(raw: &str, internal_scopes: &[String]) -> Result<String, FieldError> {
    let p = upstream_pattern::parse(raw).map_err(|m| FieldError::new("pattern", m))?;
    if let Some(scope) = p.scope().filter(|s| internal_scopes.iter().any(|i| i == s)) {
        return Err(FieldError::new(
            "pattern",
            format!(
                "{scope} is an internal scope of this org: its names never leave nproxy, \
                 so no upstream can own them"
            ),
        ));
    }
    Ok(raw.trim().to_string())
}

/// The first of `patterns` (stored routes) that lies inside one of `scopes`, with that scope.
pub(super) fn routed_internal_scope<'p>(
    patterns: impl IntoIterator<Item = &'p str>,
    scopes: &[String],
) -> Option<(&'p str, String)> {
    patterns.into_iter().find_map(|raw| {
        let p = upstream_pattern::parse(raw).ok()?;
        let scope = p.scope()?;
        scopes
            .iter()
            .any(|s| s == scope)
            .then(|| (raw, scope.to_string()))
    })
}

fn loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A registry's base URL: http(s) with a host, https unless the host is loopback (127.0.0.1,
/// ::1, localhost), no user or password (the credential is given apart, and sealed), no
/// query or fragment, at most 512 characters. Normalized (`url`'s serialization) without a
/// trailing `/`. Messages never repeat the value: it might carry a password.
pub(super) fn check_url(raw: &str) -> Result<String, FieldError> {
    let err = |m: &str| FieldError::new("url", m.to_string());
    if raw.is_empty() || raw.len() > MAX_URL {
        return Err(err("must be a URL of 1 to 512 characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("must not contain whitespace or control characters"));
    }
    let url = Url::parse(raw).map_err(|e| FieldError::new("url", format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(err("must be an http or https URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "must not carry a user or password: give the credential apart \
             (nproxyctl: --credential-file or --credential-env), it is stored sealed",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || raw.contains(['?', '#']) {
        return Err(err("must have no query or fragment"));
    }
    if url.scheme() == "http" && !loopback(&url) {
        return Err(err(
            "must be https (http only on 127.0.0.1, ::1 or localhost): the credential \
             travels with every request",
        ));
    }
    let mut s = url.to_string();
    while s.ends_with('/') {
        s.pop();
    }
    if s.len() > MAX_URL {
        return Err(err("must be at most 512 characters once normalized"));
    }
    Ok(s)
}

/// A credential as an admin sends it: "" is none; else 1 to 4096 printable ASCII characters
/// without whitespace (it is sent as `Authorization: Bearer <credential>`). Messages never
/// repeat it.
pub(super) fn check_credential(raw: &str) -> Result<Option<Credential>, FieldError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_CREDENTIAL {
        return Err(FieldError::new(
            "credential",
            format!("must be at most {MAX_CREDENTIAL} characters"),
        ));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            "credential",
            "must be printable ASCII without whitespace (a file's final newline is \
             removed by nproxyctl)",
        ));
    }
    Ok(Some(Credential(raw.to_string())))
}

/// What a sealed credential is bound to: its route and that route's version, so it can't
/// be moved onto another route (or a signing key's row), nor replayed onto a later version.
fn associated_data(route_id: &str, version: i64) -> String {
    format!("upstream-route:{route_id}:{version}")
}

pub(crate) fn seal(
    mk: &MasterKey,
    route_id: &str,
    version: i64,
    c: &Credential,
) -> CpResult<Vec<u8>> {
    mk.seal(&associated_data(route_id, version), c.expose().as_bytes())
        .map_err(CpError::Internal)
}

pub(crate) fn open(
    mk: &MasterKey,
    route_id: &str,
    version: i64,
    sealed: &[u8],
) -> CpResult<Credential> {
    let clear = mk
        .open(&associated_data(route_id, version), sealed)
        .map_err(|_| {
            CpError::Internal(format!(
                "cannot unseal upstream route {route_id}'s credential: wrong master key or tampered row"
            ))
        })?;
    String::from_utf8(clear)
        .map(Credential)
        .map_err(|_| CpError::Internal(format!("upstream route {route_id}: corrupt credential")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_stay_out_of_internal_scopes() {
        let internal = vec!["@acme".to_string()];
        for (raw, stored) in [
            ("@vendor", "@vendor"),
            (" @vendor ", "@vendor"),
            ("vendor-*", "vendor-*"),
            ("@other/sdk", "@other/sdk"),
            ("acme-tools", "acme-tools"),
            ("@acmex/a", "@acmex/a"),
        ] {
            assert_eq!(
                check_pattern(raw, &internal),
                Ok(stored.to_string()),
                "{raw}"
            );
        }
        for bad in [
            "@acme",
            "@acme/app",
            "@acme/*",
            "@acme/app-*",
            "",
            "Vendor",
            "@v/x/y",
        ] {
            let e = check_pattern(bad, &internal).expect_err(bad);
            assert_eq!(e.field, "pattern");
        }
        let e = check_pattern("@acme/x", &internal).expect_err("internal");
        assert!(e.message.contains("@acme is an internal scope"), "{e}");
        let scopes = vec!["@tools".to_string()];
        assert_eq!(
            routed_internal_scope(["@vendor", "x-*", "@tools/*"], &scopes),
            Some(("@tools/*", "@tools".to_string()))
        );
        assert_eq!(routed_internal_scope(["@vendor", "tools"], &scopes), None);
    }

    #[test]
    fn urls_are_https_or_loopback_http_without_extras_and_normalized() {
        for (raw, want) in [
            ("https://vendor.test", "https://vendor.test"),
            ("https://vendor.test/", "https://vendor.test"),
            ("https://Vendor.Test:443/npm/", "https://vendor.test/npm"),
            (
                "https://vendor.test:8443/a/b",
                "https://vendor.test:8443/a/b",
            ),
            ("http://127.0.0.1:4873/", "http://127.0.0.1:4873"),
            ("http://localhost:4873", "http://localhost:4873"),
            ("http://[::1]:4873/x/", "http://[::1]:4873/x"),
        ] {
            assert_eq!(check_url(raw), Ok(want.to_string()), "{raw}");
        }
        let long = format!("https://vendor.test/{}", "a".repeat(500));
        for bad in [
            "",
            "vendor.test",
            "ftp://vendor.test",
            "file:///etc/passwd",
            "http://vendor.test",
            "http://10.0.0.1",
            "https://user:hunter2@vendor.test",
            "https://token@vendor.test",
            "https://vendor.test/?a=b",
            "https://vendor.test/?",
            "https://vendor.test/#x",
            "https://vendor.test/ a",
            "https://vendor.\ntest",
            "https://",
            long.as_str(),
        ] {
            let e = check_url(bad).expect_err(bad);
            assert_eq!(e.field, "url");
            assert!(!e.message.contains("hunter2"), "{e}");
        }
        assert!(check_url(&format!("https://v.test/{}", "a".repeat(MAX_URL - 15))).is_ok());
    }

    #[test]
    fn credentials_are_bounded_printable_and_never_shown() {
        assert_eq!(check_credential(""), Ok(None));
        let c = check_credential("npm_Tok3n-._~+/=")
            .expect("valid")
            .expect("some");
        assert_eq!(c.expose(), "npm_Tok3n-._~+/=");
        assert_eq!(format!("{c:?}"), "Credential(..)");
        assert!(check_credential(&"x".repeat(MAX_CREDENTIAL)).is_ok());
        for bad in [
            "s3cret value",
            "s3cret\n",
            "s3cret\t",
            "s3crét",
            &"x".repeat(MAX_CREDENTIAL + 1),
        ] {
            let e = check_credential(bad).expect_err("refused");
            assert_eq!(e.field, "credential");
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn a_sealed_credential_opens_only_for_its_route_and_version() {
        let mk = MasterKey::generate();
        let c = check_credential("vendor-secret")
            .expect("ok")
            .expect("some");
        let sealed = seal(&mk, "r1", 3, &c).expect("seal");
        assert!(!sealed.windows(13).any(|w| w == b"vendor-secret"));
        assert_eq!(open(&mk, "r1", 3, &sealed).expect("open"), c);
        for (id, version) in [("r2", 3), ("r1", 4), ("r1", 2)] {
            let e = open(&mk, id, version, &sealed).expect_err("bound");
            assert!(!e.to_string().contains("vendor-secret"));
        }
        assert!(open(&MasterKey::generate(), "r1", 3, &sealed).is_err());
        // Not interchangeable with a signing key sealed under the same master key.
        assert!(mk.open("r1", &sealed).is_err());
    }
}
