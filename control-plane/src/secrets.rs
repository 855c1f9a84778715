//! Everything secret: API token minting and hashing, the master key, sealing private
//! signing keys, and the MAC that anchors the audit chain. Nothing here logs a secret.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use nproxy_proto::tokens::TOKEN_PREFIX;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut bytes: Vec<u8>) -> String {
    // Repeated division of a big-endian number by 62.
    let mut out = Vec::new();
    while bytes.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in bytes.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        out.push(BASE62[rem as usize]);
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn checksum(body: &str) -> String {
    format!(
        "{:0>6}",
        base62(crc32(body.as_bytes()).to_be_bytes().to_vec())
    )
}

/// A new API token: `nproxy_` + 32 CSPRNG bytes in base62 + a 6-character CRC32 checksum,
/// so secret scanners can recognise nproxy tokens and reject random lookalikes.
pub fn new_api_token() -> String {
    let mut raw = vec![0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let body = format!("{TOKEN_PREFIX}{:0>43}", base62(raw));
    let sum = checksum(&body);
    format!("{body}{sum}")
}

/// Whether a string has the shape and checksum of an nproxy token.
pub fn looks_like_api_token(s: &str) -> bool {
    if !s.starts_with(TOKEN_PREFIX) || s.len() != TOKEN_PREFIX.len() + 43 + 6 {
        return false;
    }
    let (body, sum) = s.split_at(s.len() - 6);
    checksum(body) == sum
}

pub fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The 32-byte master key from configuration (base64), and keys derived from it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn from_base64(s: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| "must be base64".to_string())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes (openssl rand -base64 32)".to_string())?;
        Ok(Self(arr))
    }

    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self(k)
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| {
            // HMAC accepts keys of any length.
            unreachable!("hmac key")
        });
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts a private key; `key_id` is bound as associated data, so a sealed key can't be
    /// swapped onto another key's row.
    pub fn seal(&self, key_id: &str, secret: &[u8]) -> Result<Vec<u8>, String> {
        let cipher = ChaCha20Poly1305::new(&self.derive("signing-key-seal").into());
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < 12 {
            return Err("sealed key is truncated".into());
        }
        let (nonce, ct) = sealed.split_at(12);
        let cipher = ChaCha20Poly1305::new(&self.derive("signing-key-seal").into());
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| "cannot unseal the key: wrong master key or tampered row".to_string())
    }

    /// MAC over an audit chain head.
    pub fn anchor_mac(&self, org_id: &str, seq: u64, hash: &str) -> String {
        let key = self.derive("audit-anchor");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("hmac key"));
        mac.update(format!("{org_id}\n{seq}\n{hash}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// `SHA256:<base64 of sha256(public key)>`, the same shape npm uses for key ids.
pub fn key_id(public_key: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(public_key))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_a_checksum() {
        let t = new_api_token();
        assert!(t.starts_with("nproxy_"));
        assert!(looks_like_api_token(&t), "{t}");
        let mut bad = t.clone();
        bad.replace_range(10..11, if &t[10..11] == "A" { "B" } else { "A" });
        assert!(!looks_like_api_token(&bad));
        assert_ne!(new_api_token(), t);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn sealing_round_trips_and_binds_the_key_id() {
        let mk = MasterKey::generate();
        let sealed = mk.seal("k1", b"secret").unwrap();
        assert_eq!(mk.open("k1", &sealed).unwrap(), b"secret");
        assert!(mk.open("k2", &sealed).is_err());
        assert!(MasterKey::generate().open("k1", &sealed).is_err());
        assert!(MasterKey::from_base64(&mk.to_base64()).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
