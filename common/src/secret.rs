//! Values derived from secrets (a token's SHA-256, a MAC) as a type whose only equality is
//! constant-time.
//!
//! Why a type: comparing secret-derived bytes with `==` on slices or arrays returns at the
//! first differing byte, which lets a caller who can time answers learn a stored value byte
//! by byte. Code that handles such values holds a [`SecretDigest`]; `==` on it (including
//! the comparisons a `HashMap` lookup does) runs in time that depends only on the length.
//! There is no way to get the bytes back out except [`SecretDigest::expose`], whose name
//! makes every use visible in review, and `Debug` never prints them.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct SecretDigest(Box<[u8]>);

impl SecretDigest {
    /// Wraps bytes that are already a digest or MAC (read from storage or configuration).
    pub fn from_bytes(bytes: &[u8]) -> SecretDigest {
        SecretDigest(bytes.into())
    }

    /// SHA-256 of a secret (how tokens are stored and looked up).
    pub fn sha256(secret: &[u8]) -> SecretDigest {
        SecretDigest(Sha256::digest(secret).as_slice().into())
    }

    /// The raw bytes, for storing. Never compare them directly.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for SecretDigest {
    fn eq(&self, other: &SecretDigest) -> bool {
        // Lengths are public (every digest of one kind has the same length).
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretDigest {}

impl Hash for SecretDigest {
    // A `HashMap` bucket is chosen from the hash of the *presented* value, which the caller
    // already knows; equal keys then compare in constant time.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn equality_is_by_value_and_lookups_work() {
        let a = SecretDigest::sha256(b"nproxy_abc");
        assert_eq!(a, SecretDigest::sha256(b"nproxy_abc"));
        assert_ne!(a, SecretDigest::sha256(b"nproxy_abd"));
        assert_ne!(a, SecretDigest::from_bytes(&a.expose()[..31]));
        assert_eq!(a, SecretDigest::from_bytes(a.expose()));
        let map: HashMap<SecretDigest, u8> = [(a.clone(), 7)].into();
        assert_eq!(map.get(&SecretDigest::sha256(b"nproxy_abc")), Some(&7));
        assert_eq!(map.get(&SecretDigest::sha256(b"other")), None);
        assert_eq!(format!("{a:?}"), "SecretDigest(..)");
    }
}
