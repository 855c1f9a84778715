//! npm-format registry signing, written independently of nproxy's own code: ECDSA P-256 /
//! SHA-256 signatures over `<name>@<version>:<dist.integrity>` (base64 DER), keys as npm's
//! `GET /-/npm/v1/keys` serves them (base64 DER SubjectPublicKeyInfo) and key ids as
//! OpenSSH fingerprints of the key (`SHA256:` + unpadded base64 of the sha256 of the SSH
//! wire-format key), which is what the public registry uses.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// npm's keytype and scheme for these keys.
pub const KEYTYPE: &str = "ecdsa-sha2-nistp256";

/// What npm signs for one version.
pub fn signed_message(name: &str, version: &str, integrity: &str) -> String {
    format!("{name}@{version}:{integrity}")
}

/// A P-256 signing key derived from `seed` (deterministic: the same seed, the same key).
pub fn key_from_seed(seed: &[u8]) -> SigningKey {
    let mut counter = 0u32;
    loop {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(counter.to_be_bytes());
        // Fails only for zero or a scalar ≥ the group order: astronomically unlikely.
        if let Ok(k) = SigningKey::from_slice(&h.finalize()) {
            return k;
        }
        counter += 1;
    }
}

/// A fresh key for one test object: seeded by `label`, the time and a process-wide counter.
pub fn fresh_key(label: &str) -> SigningKey {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    key_from_seed(format!("{label}/{}/{nanos}/{n}", std::process::id()).as_bytes())
}

/// The SSH wire-format blob of an uncompressed P-256 point (`0x04 || X || Y`).
fn ssh_blob(point: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + 8 + 65 + 12);
    for part in [KEYTYPE.as_bytes(), b"nistp256".as_slice(), point] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// npm's key id of an uncompressed P-256 point.
pub fn keyid_of_point(point: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(ssh_blob(point)))
    )
}

pub fn keyid_of_verifying_key(vk: &VerifyingKey) -> String {
    keyid_of_point(vk.to_encoded_point(false).as_bytes())
}

/// npm's key id of a key given as `/-/npm/v1/keys` gives it (base64 DER SPKI).
pub fn keyid_of_spki_b64(spki_b64: &str) -> Option<String> {
    let der = STANDARD.decode(spki_b64.trim()).ok()?;
    let vk = VerifyingKey::from_public_key_der(&der).ok()?;
    Some(keyid_of_verifying_key(&vk))
}

/// Checks one `dist.signatures` entry as npm does (`crypto.createVerify('SHA256')` over the
/// message, DER signature, the key as base64 DER SPKI).
pub fn verify_npm_signature(spki_b64: &str, message: &str, sig_b64: &str) -> bool {
    let Ok(der) = STANDARD.decode(spki_b64.trim()) else {
        return false;
    };
    let Ok(vk) = VerifyingKey::from_public_key_der(&der) else {
        return false;
    };
    let Ok(sig) = STANDARD.decode(sig_b64.trim()) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(&sig) else {
        return false;
    };
    vk.verify(message.as_bytes(), &sig).is_ok()
}

/// A registry signing key in npm's format.
#[derive(Clone)]
pub struct NpmKey {
    sk: SigningKey,
}

impl NpmKey {
    pub fn new(sk: SigningKey) -> Self {
        Self { sk }
    }

    /// A fresh key (see `fresh_key`).
    pub fn generate(label: &str) -> Self {
        Self::new(fresh_key(label))
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.sk
    }

    pub fn keyid(&self) -> String {
        keyid_of_verifying_key(self.sk.verifying_key())
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.sk
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The key as `/-/npm/v1/keys` serves it: standard, padded base64 of the DER SPKI.
    pub fn spki_b64(&self) -> String {
        STANDARD.encode(self.spki_der())
    }

    /// base64 of the DER ECDSA-P256-SHA256 signature of `message`.
    pub fn sign_b64(&self, message: &str) -> String {
        let sig: Signature = self.sk.sign(message.as_bytes());
        let der: DerSignature = sig.to_der();
        STANDARD.encode(der.as_bytes())
    }

    /// One entry of `dist.signatures` for `name@version` with `integrity`.
    pub fn dist_signature(&self, name: &str, version: &str, integrity: &str) -> Value {
        json!({
            "keyid": self.keyid(),
            "sig": self.sign_b64(&signed_message(name, version, integrity)),
        })
    }

    /// The key's entry in `GET /-/npm/v1/keys`.
    pub fn key_entry(&self, expires: Option<&str>) -> Value {
        json!({
            "expires": expires,
            "keyid": self.keyid(),
            "keytype": KEYTYPE,
            "scheme": KEYTYPE,
            "key": self.spki_b64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of npm's own test fixtures (in the research notes): its published key id.
    #[test]
    fn keyid_of_the_npm_fixture_key() {
        let spki = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1Olb3zMAFFxXKHiIkQO5cJ3Yhl5i6UPp+IhuteBJbuHcA5UogKo0EWtlWwW6KSaKoTNEYL7JlCQiVnkhBktUgg==";
        assert_eq!(
            keyid_of_spki_b64(spki).as_deref(),
            Some("SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA")
        );
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let k = NpmKey::new(key_from_seed(b"a"));
        let other = NpmKey::new(key_from_seed(b"b"));
        assert_eq!(keyid_of_spki_b64(&k.spki_b64()), Some(k.keyid()));
        assert_ne!(k.keyid(), other.keyid());
        let m = signed_message("fx-a", "1.0.0", "sha512-abc");
        let sig = k.sign_b64(&m);
        assert!(verify_npm_signature(&k.spki_b64(), &m, &sig));
        assert!(!verify_npm_signature(&other.spki_b64(), &m, &sig));
        assert!(!verify_npm_signature(
            &k.spki_b64(),
            &signed_message("fx-a", "1.0.0", "sha512-abd"),
            &sig
        ));
        let entry = k.key_entry(None);
        assert_eq!(entry["keytype"], "ecdsa-sha2-nistp256");
        assert!(entry["expires"].is_null());
    }
}
