//! Rendering the bytes clients get for a public packument: both forms (full and
//! abbreviated) of the stored document for one public base URL and one org's verdict,
//! with blocked versions removed, tarball URLs pointed back at nproxy, a gzip variant and
//! content ETags. Pure apart from hashing and compression; runs in a blocking thread.

use std::borrow::Cow;
use std::io::{Read, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::public::error::PublicError;
use crate::rules::verdicts::PolicyVerdict;
use crate::singleflight::{shared_err, Shared};
use nproxy_common::hash::sha256_hex;
use nproxy_core::names::PackageName;
use nproxy_core::packument::{self, Form, Packument};

/// Ready-to-send bytes of one form for one public base URL (and one org's rules).
///
/// Held gzip'd: every npm client sends `Accept-Encoding: gzip`, and a packument
/// compresses about tenfold, so the in-memory cache holds ten times as many documents
/// (an 800-package install's worth in ~12 MB instead of ~120 MB). The plain bytes are
/// kept only once a client without gzip asked for them.
pub struct Served {
    pub version: String,
    pub etag: String,
    pub gzip: Bytes,
    /// The uncompressed bytes, when some client needed them.
    pub identity: Option<Bytes>,
    /// Versions removed by rules, for the `x-nproxy-blocked` header.
    pub blocked_header: String,
    /// Every version is blocked: the answer is a 403 with this message.
    pub refused: Option<String>,
    /// Time-based rules change the answer at this time (Unix ms).
    pub recheck_at_ms: Option<i64>,
}

impl Served {
    /// Bytes the in-memory cache is charged for this entry.
    pub fn weight(&self) -> u32 {
        let n = self.gzip.len() + self.identity.as_ref().map_or(0, Bytes::len);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The same answer with its plain bytes, decompressed from the gzip'd ones.
    pub fn with_identity(&self) -> Shared<Served, PublicError> {
        let mut plain = Vec::with_capacity(self.gzip.len().saturating_mul(8));
        flate2::read::GzDecoder::new(&self.gzip[..])
            .read_to_end(&mut plain)
            .map_err(|e| {
                shared_err(PublicError::Corrupt {
                    package: "(in-memory packument)".into(),
                    detail: format!("cached gzip: {e}"),
                })
            })?;
        Ok(Served {
            version: self.version.clone(),
            etag: self.etag.clone(),
            gzip: self.gzip.clone(),
            identity: Some(Bytes::from(exact(plain))),
            blocked_header: self.blocked_header.clone(),
            refused: self.refused.clone(),
            recheck_at_ms: self.recheck_at_ms,
        })
    }
}

/// `v` in an allocation of exactly its length (what a byte-weighed cache is charged).
fn exact(mut v: Vec<u8>) -> Vec<u8> {
    v.shrink_to_fit();
    v
}

/// Where a rendered document is written: hashed for the ETag and gzip'd on the way, the
/// plain bytes kept only when asked for. So a render holds the parsed document and its
/// compressed form, never a third, uncompressed copy nobody will send.
struct Sink {
    hash: Sha256,
    gzip: flate2::write::GzEncoder<Vec<u8>>,
    plain: Option<Vec<u8>>,
}

impl Sink {
    fn new(estimate: usize, keep_plain: bool) -> Sink {
        Sink {
            hash: Sha256::new(),
            gzip: flate2::write::GzEncoder::new(
                Vec::with_capacity(estimate / 8),
                flate2::Compression::new(6),
            ),
            plain: keep_plain.then(|| Vec::with_capacity(estimate)),
        }
    }

    /// The ETag, the gzip'd bytes and the plain ones when kept, each in an allocation of
    /// exactly its length: the buffers were sized from the stored document, which for an
    /// abbreviated form overshoots many times, and `Bytes::from(Vec)` keeps the whole
    /// capacity alive while the cache is charged only the length.
    fn finish(self) -> std::io::Result<(String, Vec<u8>, Option<Vec<u8>>)> {
        let digest = hex::encode(self.hash.finalize());
        // Keyed by content, which already embeds the base URL, the form and the rules.
        let etag = format!("\"{}\"", &digest[..32]);
        Ok((etag, exact(self.gzip.finish()?), self.plain.map(exact)))
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.hash.update(buf);
        if let Some(p) = &mut self.plain {
            p.extend_from_slice(buf);
        }
        self.gzip.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One form of a stored document for one public base URL, under one org's verdict:
/// blocked versions removed, tarball URLs pointed at nproxy, gzip'd once, with an ETag.
/// Only the asked-for form is built: npm wants full documents and pnpm abbreviated ones,
/// so building both would spend a second serialisation and compression nobody reads.
///
/// Memory: the parsed document borrows the stored bytes; the full form rewrites each
/// manifest's tarball URL while writing it into the gzip encoder, so a render holds the
/// stored bytes, an index of them, one rewritten manifest and the compressed output (about
/// 1.1 times the document, which is what the document budget is charged for). The
/// abbreviated form is a small copy, rewritten in place.
pub fn render(
    name: &PackageName,
    base: &str,
    stored: &[u8],
    verdict: Option<&PolicyVerdict>,
    form: Form,
    keep_identity: bool,
) -> Shared<Served, PublicError> {
    let corrupt = |detail: String| {
        shared_err(PublicError::Corrupt {
            package: name.to_string(),
            detail,
        })
    };
    let version = sha256_hex(stored);
    let mut doc = Packument::parse(stored).map_err(|e| corrupt(e.to_string()))?;
    let (blocked_header, refused, recheck_at_ms) = match verdict {
        Some(v) => {
            doc.remove_versions(&v.verdict.blocked);
            let refused = v
                .all_blocked
                .then(|| v.verdict.package_refusal(name.as_str()));
            (v.verdict.header(), refused, v.verdict.recheck_at_ms)
        }
        None => (String::new(), None, None),
    };
    let mut sink = Sink::new(stored.len(), keep_identity);
    let written = match form {
        Form::Full => doc.write_mapped(&mut sink, |v, m| {
            packument::rewritten_manifest(v, m, base, name).map(Cow::Owned)
        }),
        Form::Abbreviated => {
            let mut small = packument::abbreviate(&doc);
            drop(doc);
            packument::rewrite_tarballs(&mut small, base, name);
            small.write_to(&mut sink)
        }
    };
    written.map_err(|e| corrupt(format!("render: {e}")))?;
    let (etag, gzip, identity) = sink.finish().map_err(|e| corrupt(format!("render: {e}")))?;
    Ok(Served {
        version,
        etag,
        gzip: Bytes::from(gzip),
        identity: identity.map(Bytes::from),
        blocked_header,
        refused,
        recheck_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"name":"left-pad","dist-tags":{"latest":"1.1.0"},
        "versions":{"1.0.0":{"name":"left-pad","version":"1.0.0","description":"x",
          "dist":{"tarball":"https://up.example/left-pad/-/left-pad-1.0.0.tgz","shasum":"aa"}},
        "1.1.0":{"name":"left-pad","version":"1.1.0","readme":"long",
          "dist":{"tarball":"https://up.example/left-pad/-/left-pad-1.1.0.tgz","shasum":"bb"}}},
        "time":{"1.0.0":"2020-01-01T00:00:00.000Z"}}"#;

    #[test]
    fn rendered_bytes_hold_no_more_memory_than_the_cache_is_charged() {
        // Buffers sized for a 1 MB document, holding a small abbreviated form.
        let mut sink = Sink::new(1 << 20, true);
        sink.write_all(DOC.as_bytes()).unwrap();
        let (_, gzip, plain) = sink.finish().unwrap();
        let plain = plain.expect("kept");
        assert_eq!(gzip.capacity(), gzip.len(), "gzip'd bytes");
        assert_eq!(plain.capacity(), plain.len(), "plain bytes");
        assert_eq!(gunzip(&gzip), DOC.as_bytes());
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn plain_bytes_come_back_from_the_gzip_and_match_a_plain_render() {
        let name = PackageName::parse("left-pad").unwrap();
        for form in [Form::Full, Form::Abbreviated] {
            let plain = render(&name, "http://np", DOC.as_bytes(), None, form, true).unwrap();
            let zipped = render(&name, "http://np", DOC.as_bytes(), None, form, false).unwrap();
            // Only what a client without gzip needs is held uncompressed.
            assert!(zipped.identity.is_none());
            assert_eq!(zipped.weight() as usize, zipped.gzip.len());
            let body = plain.identity.clone().unwrap();
            assert_eq!(gunzip(&zipped.gzip), body.to_vec());
            assert_eq!(zipped.etag, plain.etag);
            let restored = zipped.with_identity().unwrap();
            assert_eq!(restored.identity.as_deref(), Some(&body[..]));
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(
                text.contains("http://np/left-pad/-/left-pad-1.1.0.tgz"),
                "{text}"
            );
            // One form per render: the abbreviated one drops what installs don't read.
            assert_eq!(
                text.contains("readme"),
                form == Form::Full,
                "{form:?}: {text}"
            );
        }
    }

    #[test]
    fn corrupt_cached_gzip_is_an_error_not_a_panic() {
        let name = PackageName::parse("left-pad").unwrap();
        let mut s = render(&name, "http://np", DOC.as_bytes(), None, Form::Full, false).unwrap();
        s.gzip = Bytes::from_static(b"\x1f\x8bnot gzip at all");
        assert!(s.with_identity().is_err());
    }
}
