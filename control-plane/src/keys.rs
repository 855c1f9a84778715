//! Signing keys, created sealed under the master key and opened only to sign. Each org holds
//! one active key of each algorithm:
//! - Ed25519: nproxy's own signature (`_nproxy.signatures`, `nproxyctl verify`);
//! - ECDSA P-256 ("npm format"): `dist.signatures`, what npm's own verifier checks against
//!   `/-/npm/v1/keys` (npm verifies with `crypto.createVerify('SHA256')`, which an Ed25519
//!   key would make throw).

use ed25519_dalek::{Signer, SigningKey};
use p256::pkcs8::EncodePublicKey;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{CpError, CpResult};
use crate::secrets::{key_id, MasterKey};
use crate::store::{now_ms, KeyRow};

/// The algorithms an org has one active key of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Ed25519, Algorithm::EcdsaP256];

    /// The stored and listed name.
    pub fn label(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }

    pub fn of(label: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.label() == label)
    }
}

pub fn new_key(mk: &MasterKey, org_id: &str, algorithm: Algorithm) -> CpResult<KeyRow> {
    let (secret, public, id) = match algorithm {
        Algorithm::Ed25519 => {
            let mut secret = [0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            let public = SigningKey::from_bytes(&secret)
                .verifying_key()
                .to_bytes()
                .to_vec();
            let id = key_id(&public);
            (secret, public, id)
        }
        Algorithm::EcdsaP256 => {
            let (secret, sk) = loop {
                // Almost every 32-byte string is a valid scalar; retry the rare one that is not.
                let mut secret = [0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                if let Ok(sk) = p256::ecdsa::SigningKey::from_slice(&secret) {
                    break (secret, sk);
                }
            };
            let vk = sk.verifying_key();
            let public = vk
                .to_public_key_der()
                .map_err(|e| CpError::Internal(format!("cannot encode an ECDSA key: {e}")))?
                .as_bytes()
                .to_vec();
            let point = vk.to_encoded_point(false);
            (secret, public, npm_key_id(point.as_bytes()))
        }
    };
    let sealed = mk.seal(&id, &secret).map_err(CpError::Internal)?;
    Ok(KeyRow {
        key_id: id,
        org_id: org_id.to_string(),
        algorithm: algorithm.label().to_string(),
        public_key: public,
        private_key_sealed: sealed,
        created_at_ms: now_ms(),
        retired_at_ms: None,
    })
}

/// npm's key id: the OpenSSH fingerprint of the key, `SHA256:` + unpadded base64 of the
/// sha256 of its SSH wire format (`string "ecdsa-sha2-nistp256" || string "nistp256" ||
/// string point`, each string a big-endian u32 length and the bytes).
pub fn npm_key_id(uncompressed_point: &[u8]) -> String {
    let mut blob = Vec::with_capacity(120);
    for part in [
        b"ecdsa-sha2-nistp256".as_slice(),
        b"nistp256".as_slice(),
        uncompressed_point,
    ] {
        blob.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
        blob.extend_from_slice(part);
    }
    use base64::Engine;
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
    )
}

/// Signs `payload` with `key`: Ed25519 → the 64-byte signature; ECDSA P-256 → DER over
/// SHA-256, as npm verifies it. The opened secret must match the stored public key.
pub fn sign(mk: &MasterKey, key: &KeyRow, payload: &[u8]) -> CpResult<Vec<u8>> {
    let secret = mk
        .open(&key.key_id, &key.private_key_sealed)
        .map_err(CpError::Internal)?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| CpError::Internal("sealed key has the wrong length".into()))?;
    let mismatch = || CpError::Internal("sealed key does not match its public key".into());
    match Algorithm::of(&key.algorithm) {
        Some(Algorithm::Ed25519) => {
            let sk = SigningKey::from_bytes(&secret);
            if sk.verifying_key().to_bytes().as_slice() != key.public_key.as_slice() {
                return Err(mismatch());
            }
            Ok(sk.sign(payload).to_bytes().to_vec())
        }
        Some(Algorithm::EcdsaP256) => {
            let sk = p256::ecdsa::SigningKey::from_slice(&secret).map_err(|_| mismatch())?;
            let der = sk
                .verifying_key()
                .to_public_key_der()
                .map_err(|_| mismatch())?;
            if der.as_bytes() != key.public_key.as_slice() {
                return Err(mismatch());
            }
            let sig: p256::ecdsa::DerSignature = sk.sign(payload);
            Ok(sig.as_bytes().to_vec())
        }
        None => Err(CpError::Internal(format!(
            "key {} has an unknown algorithm",
            key.key_id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    use p256::pkcs8::DecodePublicKey;

    #[test]
    fn ed25519_sign_and_verify() {
        let mk = MasterKey::generate();
        let k = new_key(&mk, "org", Algorithm::Ed25519).unwrap();
        assert!(k.key_id.starts_with("SHA256:"));
        assert!(!k
            .private_key_sealed
            .windows(8)
            .any(|w| w == &k.public_key[..8]));
        let sig = sign(&mk, &k, b"hello").unwrap();
        let vk = VerifyingKey::from_bytes(&k.public_key.clone().try_into().unwrap()).unwrap();
        let sig = Signature::from_slice(&sig).unwrap();
        assert!(vk.verify(b"hello", &sig).is_ok());
        assert!(vk.verify(b"hellp", &sig).is_err());
        assert!(sign(&MasterKey::generate(), &k, b"x").is_err());
    }

    #[test]
    fn ecdsa_signs_der_over_sha256_with_an_spki_public_key() {
        use p256::ecdsa::signature::Verifier as _;
        let mk = MasterKey::generate();
        let k = new_key(&mk, "org", Algorithm::EcdsaP256).unwrap();
        assert_eq!(k.algorithm, "ecdsa-p256");
        // DER SubjectPublicKeyInfo of a P-256 key: 91 bytes.
        assert_eq!(k.public_key.len(), 91);
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&k.public_key).unwrap();
        assert_eq!(k.key_id, npm_key_id(vk.to_encoded_point(false).as_bytes()));
        let msg = b"@acme/lib@1.0.0:sha512-abc";
        let sig = sign(&mk, &k, msg).unwrap();
        let sig = p256::ecdsa::DerSignature::from_bytes(&sig).unwrap();
        assert!(vk.verify(msg, &sig).is_ok());
        assert!(vk.verify(b"@acme/lib@1.0.1:sha512-abc", &sig).is_err());
        assert!(sign(&MasterKey::generate(), &k, msg).is_err());
    }

    /// The key of npm's own documentation and test fixtures, and the keyid npm publishes for
    /// it: the derivation is npm's, not merely self-consistent.
    #[test]
    fn npm_key_id_matches_npm_s_published_key_id() {
        use base64::Engine;
        let spki = base64::engine::general_purpose::STANDARD
            .decode("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1Olb3zMAFFxXKHiIkQO5cJ3Yhl5i6UPp+IhuteBJbuHcA5UogKo0EWtlWwW6KSaKoTNEYL7JlCQiVnkhBktUgg==")
            .unwrap();
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
        assert_eq!(
            npm_key_id(vk.to_encoded_point(false).as_bytes()),
            "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA"
        );
    }
}
