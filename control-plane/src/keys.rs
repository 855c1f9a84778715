//! Ed25519 signing keys: created sealed under the master key, opened only to sign.

use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;

use crate::error::{CpError, CpResult};
use crate::secrets::{key_id, MasterKey};
use crate::store::{now_ms, KeyRow};

pub fn new_key(mk: &MasterKey, org_id: &str) -> CpResult<KeyRow> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let sk = SigningKey::from_bytes(&secret);
    let public = sk.verifying_key().to_bytes().to_vec();
    let id = key_id(&public);
    let sealed = mk.seal(&id, &secret).map_err(CpError::Internal)?;
    Ok(KeyRow {
        key_id: id,
        org_id: org_id.to_string(),
        public_key: public,
        private_key_sealed: sealed,
        created_at_ms: now_ms(),
        retired_at_ms: None,
    })
}

pub fn sign(mk: &MasterKey, key: &KeyRow, payload: &[u8]) -> CpResult<Vec<u8>> {
    let secret = mk
        .open(&key.key_id, &key.private_key_sealed)
        .map_err(CpError::Internal)?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| CpError::Internal("sealed key has the wrong length".into()))?;
    let sk = SigningKey::from_bytes(&secret);
    if sk.verifying_key().to_bytes().as_slice() != key.public_key.as_slice() {
        return Err(CpError::Internal(
            "sealed key does not match its public key".into(),
        ));
    }
    Ok(sk.sign(payload).to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn sign_and_verify() {
        let mk = MasterKey::generate();
        let k = new_key(&mk, "org").unwrap();
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
}
