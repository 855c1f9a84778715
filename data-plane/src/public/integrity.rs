//! Checks tarball bytes against a packument's `dist.integrity` (SRI) or `dist.shasum`, on the fly.

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use nproxy_core::packument::DistInfo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("the packument gives no usable integrity or shasum for this tarball")]
    NoExpectation,
    #[error("tarball bytes do not match the packument's {0}")]
    Mismatch(&'static str),
}

enum Expected {
    Sri(Vec<(Algo, Vec<u8>)>),
    Sha1(Vec<u8>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Algo {
    Sha256,
    Sha384,
    Sha512,
}

/// Feeds on bytes as they stream by; says at the end whether they matched.
pub struct Verifier {
    expected: Expected,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    sha384: Option<Sha384>,
    sha512: Option<Sha512>,
}

fn parse_sri(s: &str) -> Vec<(Algo, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    s.split_whitespace()
        .filter_map(|entry| {
            let (algo, rest) = entry.split_once('-')?;
            let digest = rest.split('?').next()?;
            let algo = match algo {
                "sha512" => Algo::Sha512,
                "sha384" => Algo::Sha384,
                "sha256" => Algo::Sha256,
                _ => return None,
            };
            Some((algo, b64.decode(digest).ok()?))
        })
        .collect()
}

impl Verifier {
    pub fn new(dist: &DistInfo) -> Result<Self, IntegrityError> {
        let sri = dist.integrity.as_deref().map(parse_sri).unwrap_or_default();
        let expected = if !sri.is_empty() {
            // SRI allows several hashes; the strongest present is the one that counts.
            let best = sri.iter().map(|(a, _)| *a).max_by_key(|a| match a {
                Algo::Sha256 => 1,
                Algo::Sha384 => 2,
                Algo::Sha512 => 3,
            });
            Expected::Sri(sri.into_iter().filter(|(a, _)| Some(*a) == best).collect())
        } else if let Some(sum) = dist.shasum.as_deref().and_then(|s| hex::decode(s).ok()) {
            Expected::Sha1(sum)
        } else {
            return Err(IntegrityError::NoExpectation);
        };
        let wants =
            |algo: Algo| matches!(&expected, Expected::Sri(v) if v.iter().any(|(a, _)| *a == algo));
        Ok(Self {
            sha1: matches!(expected, Expected::Sha1(_)).then(Sha1::new),
            sha256: wants(Algo::Sha256).then(Sha256::new),
            sha384: wants(Algo::Sha384).then(Sha384::new),
            sha512: wants(Algo::Sha512).then(Sha512::new),
            expected,
        })
    }

    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha384 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    pub fn finish(self) -> Result<(), IntegrityError> {
        match &self.expected {
            Expected::Sha1(want) => {
                let got = self.sha1.map(|h| h.finalize().to_vec());
                if got.as_deref() == Some(want.as_slice()) {
                    Ok(())
                } else {
                    Err(IntegrityError::Mismatch("shasum"))
                }
            }
            Expected::Sri(wants) => {
                let s256 = self.sha256.map(|h| h.finalize().to_vec());
                let s384 = self.sha384.map(|h| h.finalize().to_vec());
                let s512 = self.sha512.map(|h| h.finalize().to_vec());
                // Any one matching digest of the strongest algorithm satisfies SRI.
                let ok = wants.iter().any(|(algo, want)| {
                    let got = match algo {
                        Algo::Sha256 => &s256,
                        Algo::Sha384 => &s384,
                        Algo::Sha512 => &s512,
                    };
                    got.as_deref() == Some(want.as_slice())
                });
                if ok {
                    Ok(())
                } else {
                    Err(IntegrityError::Mismatch("integrity"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sri_sha512(bytes: &[u8]) -> String {
        nproxy_core::publish::sri_sha512(bytes).0
    }

    fn dist(integrity: Option<String>, shasum: Option<String>) -> DistInfo {
        DistInfo::new(integrity, shasum)
    }

    #[test]
    fn sri_match_and_mismatch() {
        let data = b"hello tarball";
        let d = dist(Some(sri_sha512(data)), None);
        let mut v = Verifier::new(&d).unwrap();
        v.update(&data[..5]);
        v.update(&data[5..]);
        assert_eq!(v.finish(), Ok(()));

        let mut v = Verifier::new(&d).unwrap();
        v.update(b"hello tarbalL");
        assert_eq!(v.finish(), Err(IntegrityError::Mismatch("integrity")));

        let mut v = Verifier::new(&d).unwrap();
        v.update(&data[..5]);
        assert!(v.finish().is_err(), "truncated bytes must not verify");
    }

    #[test]
    fn shasum_fallback() {
        let data = b"abc";
        let d = dist(None, Some(hex::encode(Sha1::digest(data))));
        let mut v = Verifier::new(&d).unwrap();
        v.update(data);
        assert_eq!(v.finish(), Ok(()));
        let mut v = Verifier::new(&d).unwrap();
        v.update(b"abd");
        assert!(v.finish().is_err());
    }

    #[test]
    fn nothing_to_check_is_an_error() {
        assert!(Verifier::new(&dist(None, None)).is_err());
        assert!(Verifier::new(&dist(Some("md5-xyz".into()), Some("nothex".into()))).is_err());
    }

    #[test]
    fn strongest_algorithm_counts() {
        let data = b"x";
        let sha256 = format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
        );
        // A correct sha256 next to a wrong sha512: the sha512 decides.
        let wrong512 = sri_sha512(b"y");
        let d = dist(Some(format!("{sha256} {wrong512}")), None);
        let mut v = Verifier::new(&d).unwrap();
        v.update(data);
        assert!(v.finish().is_err());
    }
}
