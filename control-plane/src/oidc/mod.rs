//! Trusted publishing's OIDC side: CI jobs (GitHub Actions, GitLab CI) present an id token
//! (a JWT signed by their issuer); `verify` checks it against the issuer's keys, which `jwks`
//! fetches and caches, and `claims` matches it against what an org's trusted publisher
//! requires. The exchange itself (org lookup, minting) is `service::trusted`.
//!
//! Only issuers some trusted publisher names are ever fetched, never the `iss` of an
//! unknown token; issuers and their `jwks_uri` must be https, or http on a loopback host.

pub mod claims;
pub mod jwks;
pub mod verify;

#[cfg(test)]
pub(crate) mod test_issuer;

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

/// What the control plane keeps for trusted publishing: the issuers' keys and the lifetime
/// of the tokens it mints.
pub struct Oidc {
    pub jwks: jwks::JwksCache,
    pub token_ttl: Duration,
}

impl Oidc {
    pub fn new(token_ttl: Duration) -> Result<Self, String> {
        Ok(Oidc {
            jwks: jwks::JwksCache::new()?,
            token_ttl,
        })
    }
}

/// Whether `url` may be fetched: https anywhere, http only on a loopback host (a test or
/// a local issuer), never with credentials in it.
pub fn fetchable(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    scheme_ok && url.host().is_some() && url.username().is_empty() && url.password().is_none()
}

/// An issuer as admins configure it (and as the tokens' `iss` must spell it): a fetchable
/// URL of at most 256 characters, without query or fragment.
pub fn check_issuer(s: &str) -> Result<Url, String> {
    if s.is_empty() || s.len() > 256 {
        return Err("must be a URL of 1 to 256 characters".into());
    }
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !fetchable(&url) {
        return Err(format!(
            "{s:?} must be https (or http on 127.0.0.1, ::1 or localhost), without user or password"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || s.contains(['?', '#']) {
        return Err(format!("{s:?} must have no query or fragment"));
    }
    Ok(url)
}

/// At most `max` characters of a value from a token, for messages and logs.
pub fn shown(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_https_or_loopback_http_without_extras() {
        for ok in [
            "https://token.actions.githubusercontent.com",
            "https://gitlab.example.com/",
            "http://127.0.0.1:8080",
            "http://[::1]:9000/realm",
            "http://localhost:1234",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "token.actions.githubusercontent.com",
            "http://issuer.example",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "https://user:pw@issuer.example",
            "https://issuer.example/?x=1",
            "https://issuer.example/#f",
            "https://issuer.example/?",
            &format!("https://issuer.example/{}", "a".repeat(250)),
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shown_cuts_long_values() {
        assert_eq!(shown("abc", 5), "abc");
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("ééé", 2), "éé…");
    }
}
