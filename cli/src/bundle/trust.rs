//! Trusted keys for `bundle import --trust-key`: an org's Ed25519 public key in a file, as
//! `nproxyctl key list -o json` prints it (the base64 raw key alone, or that whole JSON
//! output), or as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
// Without `import` only `verify` is used (by `create`).
#![cfg_attr(not(feature = "import"), allow(dead_code))]

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A trusted Ed25519 key and its key id (as the control plane names it).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub raw: [u8; 32],
    pub key_id: String,
}

fn key(raw: &[u8]) -> Result<TrustedKey, String> {
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| format!("an Ed25519 key is 32 bytes, this one is {}", raw.len()))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| format!("not an Ed25519 public key: {e}"))?;
    Ok(TrustedKey {
        raw,
        key_id: super::format::ed25519_key_id(&raw),
    })
}

/// Every Ed25519 key a key file holds (at least one).
pub fn parse(text: &str) -> Result<Vec<TrustedKey>, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = text.trim();
    if let Some(body) = text.strip_prefix("-----BEGIN PUBLIC KEY-----") {
        let body = body
            .split("-----END PUBLIC KEY-----")
            .next()
            .unwrap_or_default();
        let der = b64
            .decode(body.split_whitespace().collect::<String>())
            .map_err(|_| "the PEM body is not base64".to_string())?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .ok_or("the PEM key is not an Ed25519 SubjectPublicKeyInfo")?;
        return Ok(vec![key(raw)?]);
    }
    if text.starts_with('[') || text.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let items = match v {
            serde_json::Value::Array(a) => a,
            one => vec![one],
        };
        let keys: Vec<TrustedKey> = items
            .iter()
            .filter(|k| k["algorithm"].as_str().is_none_or(|a| a == "ed25519"))
            .filter_map(|k| k["public_key"].as_str())
            .map(|p| {
                let raw = b64
                    .decode(p)
                    .map_err(|_| "public_key is not base64".to_string())?;
                key(&raw)
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err("the JSON lists no ed25519 public_key".into());
        }
        return Ok(keys);
    }
    let raw = b64.decode(text).map_err(|_| {
        "expected a base64 Ed25519 key, a PEM PUBLIC KEY or `key list -o json` output"
    })?;
    Ok(vec![key(&raw)?])
}

/// Checks an Ed25519 signature.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), String> {
    let k = key(public_key)?;
    let vk = VerifyingKey::from_bytes(&k.raw).map_err(|e| e.to_string())?;
    let sig = Signature::from_slice(signature).map_err(|_| "a malformed signature".to_string())?;
    vk.verify(message, &sig)
        .map_err(|_| "the signature does not verify".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signing() -> SigningKey {
        SigningKey::from_bytes(&[9u8; 32])
    }

    #[test]
    fn base64_pem_and_key_list_json_all_parse() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = signing().verifying_key().to_bytes();
        let plain = b64.encode(raw);
        let from_plain = parse(&format!("{plain}\n")).unwrap();
        assert_eq!(from_plain[0].raw, raw);
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            b64.encode(&der)
        );
        assert_eq!(parse(&pem).unwrap()[0].raw, raw);
        let json = format!(
            r#"[{{"key_id":"x","algorithm":"ed25519","public_key":"{plain}"}},
               {{"algorithm":"ecdsa-p256","public_key":"MFkwEw=="}}]"#
        );
        let keys = parse(&json).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_id, from_plain[0].key_id);
        assert!(keys[0].key_id.starts_with("SHA256:"));
        assert!(parse("not a key").is_err());
        assert!(parse(&b64.encode([1u8; 16])).is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_message() {
        let k = signing();
        let sig = k.sign(b"abc").to_bytes();
        let public = k.verifying_key().to_bytes();
        assert!(verify(&public, b"abc", &sig).is_ok());
        assert!(verify(&public, b"abd", &sig).is_err());
        assert!(verify(&public, b"abc", &sig[..10]).is_err());
    }
}
