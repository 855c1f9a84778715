//! JWT verification of CI id tokens: RS256 (GitHub Actions, GitLab) and ES256 only, with
//! ring (already the TLS stack's crypto). In order: size, shape, algorithm and key id, an
//! issuer some candidate publisher trusts (before anything is fetched), the signature by
//! that issuer's key, then `aud`, `exp`, `nbf` and `iat` (30 s leeway).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use serde_json::{Map, Value};

use super::jwks::Key;
use super::shown;

/// The largest id token accepted.
pub const MAX_ID_TOKEN: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: f64 = 30.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable; the message is for the client.
    #[error("{0}")]
    Rejected(String),
    /// The issuer's keys could not be fetched (logged where it happened).
    #[error("cannot reach the issuer's keys; try again")]
    KeysUnavailable,
}

fn rejected(m: impl Into<String>) -> VerifyError {
    VerifyError::Rejected(m.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

/// A verified id token: its issuer and all its claims.
#[derive(Debug, Clone)]
pub struct Verified {
    pub issuer: String,
    pub claims: Map<String, Value>,
}

/// A token split and decoded, nothing checked but its shape and header.
struct Parts<'a> {
    alg: Alg,
    kid: String,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn object(segment: &str, what: &str) -> Result<Map<String, Value>, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| rejected(format!("the id token's {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(rejected(format!(
            "the id token's {what} is not a JSON object"
        ))),
    }
}

fn parse(token: &str) -> Result<Parts<'_>, VerifyError> {
    if token.len() > MAX_ID_TOKEN {
        return Err(rejected(format!(
            "the id token is larger than {MAX_ID_TOKEN} bytes"
        )));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(rejected("the id token is not a signed JWT (three parts)"));
    };
    let header = object(h, "header")?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Alg::Rs256,
        Some("ES256") => Alg::Es256,
        other => {
            return Err(rejected(format!(
                "id token algorithm {:?} is not accepted (RS256 or ES256)",
                shown(other.unwrap_or(""), 20)
            )))
        }
    };
    if header.contains_key("crit") {
        return Err(rejected("the id token has critical header extensions"));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| rejected("the id token's header has no key id (kid)"))?
        .to_string();
    Ok(Parts {
        alg,
        kid,
        claims: object(p, "payload")?,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| rejected("the id token's signature is not base64url"))?,
    })
}

/// Checks `signature` over `input` with `key` for `alg`.
pub fn check_signature(
    alg: Alg,
    key: &Key,
    input: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    let ok = match (alg, key) {
        (Alg::Rs256, Key::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, input, signature)
            .is_ok(),
        (Alg::Es256, Key::P256 { point }) => {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input, signature)
                .is_ok()
        }
        _ => return Err(rejected("the id token's key does not fit its algorithm")),
    };
    if ok {
        Ok(())
    } else {
        Err(rejected("the id token's signature does not verify"))
    }
}

/// `aud` holds `audience`; `exp` is ahead; `nbf` and `iat` are not (beyond the leeway).
pub fn check_claims(
    claims: &Map<String, Value>,
    audience: &str,
    now_secs: f64,
) -> Result<(), VerifyError> {
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(rejected(format!(
            "the id token's audience (aud) must include {audience:?}"
        )));
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_f64);
    match time("exp") {
        None => return Err(rejected("the id token has no expiry (exp)")),
        Some(exp) if exp + LEEWAY_SECS <= now_secs => {
            return Err(rejected("the id token has expired"))
        }
        Some(_) => {}
    }
    if time("nbf").is_some_and(|nbf| nbf > now_secs + LEEWAY_SECS) {
        return Err(rejected("the id token is not valid yet (nbf)"));
    }
    if time("iat").is_some_and(|iat| iat > now_secs + LEEWAY_SECS) {
        return Err(rejected("the id token was issued in the future (iat)"));
    }
    if claims.get("nbf").is_some_and(|v| !v.is_number())
        || claims.get("iat").is_some_and(|v| !v.is_number())
    {
        return Err(rejected("the id token's nbf or iat is not a number"));
    }
    Ok(())
}

/// Verifies `token` for `audience` at `now_secs`. `issuers` are those the candidate
/// publishers trust: any other `iss` is refused before `key` is asked for anything. `key`
/// finds an issuer's key by id (fetching it if needed).
pub async fn verify(
    token: &str,
    audience: &str,
    issuers: &[&str],
    now_secs: f64,
    key: impl AsyncFnOnce(&str, &str) -> Result<Arc<Key>, VerifyError>,
) -> Result<Verified, VerifyError> {
    let parts = parse(token)?;
    let issuer = match parts.claims.get("iss") {
        Some(Value::String(iss)) if issuers.contains(&iss.as_str()) => iss.clone(),
        Some(Value::String(iss)) => {
            return Err(rejected(format!(
                "issuer {:?} is not trusted for this package",
                shown(iss, 100)
            )))
        }
        _ => return Err(rejected("the id token has no issuer (iss)")),
    };
    let k = key(&issuer, &parts.kid).await?;
    check_signature(
        parts.alg,
        &k,
        parts.signing_input.as_bytes(),
        &parts.signature,
    )?;
    check_claims(&parts.claims, audience, now_secs)?;
    Ok(Verified {
        issuer,
        claims: parts.claims,
    })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
