//! The issuers' signing keys: `GET <issuer>/.well-known/openid-configuration` names the
//! `jwks_uri`, whose JWK set holds the keys. Cached per issuer for ten minutes; a key id the
//! cache does not know refetches at most once per 30 seconds per issuer; one fetch per
//! issuer at a time (the others wait for it). Every request is bounded: 5 s, 64 KiB, only
//! https (or loopback http) URLs, redirects included.
//!
//! Callers pass only issuers that a trusted publisher names: the `iss` of a token nobody
//! trusts is never fetched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use url::Url;

/// How long fetched keys are used before they are fetched again.
const MAX_AGE: Duration = Duration::from_secs(600);
/// The least time between two fetches for an unknown key id.
const REFETCH_GAP: Duration = Duration::from_secs(30);
/// Each request's whole deadline (connect, headers and body).
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document or key set read.
pub const MAX_BODY: usize = 64 * 1024;

/// A public key from an issuer's JWK set, in the form the verifier needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// RS256: the modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// ES256: the uncompressed point (`0x04 || x || y`).
    P256 { point: Vec<u8> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    /// The issuer's keys could not be fetched; the detail is for the log only.
    #[error("{0}")]
    Unavailable(String),
    #[error("the issuer has no key {0:?}")]
    UnknownKey(String),
}

#[derive(Default)]
struct Slot {
    keys: Option<(HashMap<String, Arc<Key>>, Instant)>,
    last_fetch: Option<Instant>,
}

pub struct JwksCache {
    client: reqwest::Client,
    issuers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

impl JwksCache {
    pub fn new() -> Result<Self, String> {
        // reqwest is built without a bundled crypto provider; ring is the one in the tree.
        nproxy_common::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("nproxy/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|a| {
                if a.previous().len() < 3 && super::fetchable(a.url()) {
                    a.follow()
                } else {
                    a.stop()
                }
            }))
            .build()
            .map_err(|e| format!("OIDC HTTP client: {e}"))?;
        Ok(JwksCache {
            client,
            issuers: Mutex::default(),
        })
    }

    /// The key `kid` of `issuer` (which a trusted publisher names).
    pub async fn key(&self, issuer: &str, kid: &str) -> Result<Arc<Key>, JwksError> {
        let slot = self
            .issuers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(issuer.to_string())
            .or_default()
            .clone();
        // Held across the fetch: the single flight for this issuer.
        let mut slot = slot.lock().await;
        let now = Instant::now();
        if let Some((keys, at)) = &slot.keys {
            if now.duration_since(*at) < MAX_AGE {
                if let Some(k) = keys.get(kid) {
                    return Ok(k.clone());
                }
                if slot
                    .last_fetch
                    .is_some_and(|t| now.duration_since(t) < REFETCH_GAP)
                {
                    return Err(JwksError::UnknownKey(kid.to_string()));
                }
            }
        }
        slot.last_fetch = Some(now);
        let keys = self.fetch(issuer).await.map_err(JwksError::Unavailable)?;
        let found = keys.get(kid).cloned();
        slot.keys = Some((keys, Instant::now()));
        found.ok_or_else(|| JwksError::UnknownKey(kid.to_string()))
    }

    async fn fetch(&self, issuer: &str) -> Result<HashMap<String, Arc<Key>>, String> {
        let base = super::check_issuer(issuer)?;
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            base.as_str().trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        if discovery.issuer != issuer {
            return Err(format!(
                "{discovery_url} names the issuer {:?}",
                super::shown(&discovery.issuer, 100)
            ));
        }
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let keys: HashMap<_, _> = set
            .keys
            .iter()
            .filter_map(parse_jwk)
            .map(|(kid, k)| (kid, Arc::new(k)))
            .collect();
        tracing::info!(
            issuer,
            keys = keys.len(),
            "fetched the issuer's signing keys"
        );
        Ok(keys)
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let parsed = Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if !super::fetchable(&parsed) {
            return Err(format!(
                "{url:?} is neither https nor http on a loopback host"
            ));
        }
        let mut res = self
            .client
            .get(parsed)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("GET {url}: status {}", res.status()));
        }
        if res.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(format!("GET {url}: larger than {MAX_BODY} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("GET {url}: larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// One JWK as `(kid, key)`, or `None` for keys this verifier never uses (no `kid`, another
/// type or curve, not for signatures, malformed).
fn parse_jwk(v: &serde_json::Value) -> Option<(String, Key)> {
    let field = |name: &str| v.get(name).and_then(serde_json::Value::as_str);
    let kid = field("kid")?.to_string();
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match (field("kty")?, field("alg")) {
        ("RSA", None | Some("RS256")) => Key::Rsa {
            n: b64(field("n")?)?,
            e: b64(field("e")?)?,
        },
        ("EC", None | Some("ES256")) if field("crv")? == "P-256" => {
            let (x, y) = (b64(field("x")?)?, b64(field("y")?)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Key::P256 { point }
        }
        _ => return None,
    };
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::oidc::test_issuer::{Issuer, TestKey};

    #[test]
    fn jwks_keep_rsa_and_p256_signing_keys_only() {
        let k = TestKey::new("k1");
        let (kid, key) = parse_jwk(&k.jwk()).expect("EC key");
        assert_eq!(kid, "k1");
        assert_eq!(key, Key::P256 { point: k.point() });
        let rsa = json!({"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "alg": "RS256"});
        assert!(matches!(parse_jwk(&rsa), Some((_, Key::Rsa { .. }))));
        for skipped in [
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "use": "enc"}),
            json!({"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "alg": "RS512"}),
            json!({"kty": "EC", "kid": "e", "crv": "P-384", "x": "AA", "y": "AA"}),
            json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": "AA", "y": "AA"}),
            json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
        ] {
            assert_eq!(parse_jwk(&skipped), None, "{skipped}");
        }
    }

    #[tokio::test]
    async fn keys_are_cached_and_an_unknown_kid_refetches_at_most_once_per_gap() {
        let old = TestKey::new("old");
        let issuer = Issuer::start(vec![old.jwk()]).await;
        let cache = JwksCache::new().expect("client");
        let iss = issuer.url();
        assert_eq!(
            *cache.key(&iss, "old").await.expect("key"),
            Key::P256 { point: old.point() }
        );
        cache.key(&iss, "old").await.expect("cached");
        assert_eq!(issuer.requests(), 2, "discovery + keys, once");

        // A rotated key: its first use refetches; a second unknown id within the gap doesn't.
        let new = TestKey::new("new");
        issuer.set_keys(vec![old.jwk(), new.jwk()]);
        assert_eq!(
            cache.key(&iss, "new").await,
            Err(JwksError::UnknownKey("new".into())),
            "the first fetch was just now: no refetch within the gap"
        );
        assert_eq!(issuer.requests(), 2);
        // Past the gap (moved back in time rather than waited for), it is fetched.
        cache.age_fetch(&iss, REFETCH_GAP);
        cache.key(&iss, "new").await.expect("refetched");
        assert_eq!(issuer.requests(), 4);
        assert_eq!(
            cache.key(&iss, "nope").await,
            Err(JwksError::UnknownKey("nope".into()))
        );
        assert_eq!(issuer.requests(), 4);
        // Stale keys are fetched again whatever the id.
        cache.age_fetch(&iss, MAX_AGE);
        cache.key(&iss, "old").await.expect("refetched");
        assert_eq!(issuer.requests(), 6);
    }

    #[tokio::test]
    async fn oversized_or_misdirected_documents_are_refused() {
        let k = TestKey::new("k");
        let issuer = Issuer::start(vec![k.jwk()]).await;
        let cache = JwksCache::new().expect("client");
        issuer.set_keys_raw(format!(
            r#"{{"keys": [], "pad": "{}"}}"#,
            "x".repeat(MAX_BODY)
        ));
        let err = cache.key(&issuer.url(), "k").await.expect_err("too large");
        assert!(
            matches!(&err, JwksError::Unavailable(m) if m.contains("larger than")),
            "{err:?}"
        );

        issuer.set_jwks_uri("http://192.0.2.1/keys");
        let err = cache
            .key(&issuer.url(), "k")
            .await
            .expect_err("not loopback");
        assert!(
            matches!(&err, JwksError::Unavailable(m) if m.contains("loopback")),
            "{err:?}"
        );

        issuer.set_discovery_issuer("https://someone.else");
        let err = cache
            .key(&issuer.url(), "k")
            .await
            .expect_err("other issuer");
        assert!(
            matches!(&err, JwksError::Unavailable(m) if m.contains("names the issuer")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let cache = JwksCache::new().expect("client");
        let err = cache
            .key(&format!("http://127.0.0.1:{port}"), "k")
            .await
            .expect_err("refused");
        assert!(matches!(err, JwksError::Unavailable(_)), "{err:?}");
    }

    impl JwksCache {
        /// Moves the issuer's last fetch `by` into the past.
        fn age_fetch(&self, issuer: &str, by: Duration) {
            let slot = self
                .issuers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(issuer)
                .cloned()
                .expect("fetched before");
            let mut slot = slot.try_lock().expect("not in use");
            let back = |t: Instant| t.checked_sub(by).unwrap_or(t);
            slot.last_fetch = slot.last_fetch.map(back);
            if let Some((_, at)) = &mut slot.keys {
                *at = back(*at);
            }
        }
    }
}
