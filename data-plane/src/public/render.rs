//! Rendering the bytes clients get for a public packument: both forms (full and
//! abbreviated) of the stored document for one public base URL and one org's verdict,
//! with blocked versions removed, tarball URLs pointed back at nproxy, a gzip variant and
//! content ETags. Pure apart from hashing and compression; runs in a blocking thread.

use std::io::Write;

use bytes::Bytes;

use crate::error::NpmError;
use crate::rules::verdicts::PolicyVerdict;
use crate::singleflight::{shared_err, Shared};
use nproxy_common::hash::sha256_hex;
use nproxy_core::names::PackageName;
use nproxy_core::packument::{self, Form, Packument};

/// Ready-to-send bytes of one form for one public base URL (and one org's rules).
pub struct Served {
    pub version: String,
    pub etag: String,
    pub body: Bytes,
    pub gzip: Bytes,
    /// Versions removed by rules, for the `x-nproxy-blocked` header.
    pub blocked_header: String,
    /// Every version is blocked: the answer is a 403 with this message.
    pub refused: Option<String>,
    /// Time-based rules change the answer at this time (Unix ms).
    pub recheck_at_ms: Option<i64>,
}

fn gzip(bytes: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    Bytes::from(enc.finish().unwrap_or_default())
}

/// Both forms of a stored document for one public base URL, under one org's verdict:
/// blocked versions removed, tarball URLs pointed at nproxy, gzip'd once, with ETags.
pub fn render(
    name: &PackageName,
    base: &str,
    stored: &[u8],
    verdict: Option<&PolicyVerdict>,
) -> Shared<Vec<(Form, Served)>> {
    let version = sha256_hex(stored);
    let mut doc = Packument::parse(stored).map_err(|e| {
        shared_err(NpmError::Internal(format!(
            "stored packument is corrupt: {e}"
        )))
    })?;
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
    packument::rewrite_tarballs(&mut doc, base, name);
    let abbreviated = packument::abbreviate(&doc);
    let mut out = Vec::with_capacity(2);
    for (form, value) in [(Form::Full, &doc), (Form::Abbreviated, &abbreviated)] {
        let body = value.to_vec();
        // Keyed by content, which already embeds the base URL, the form and (later) rules.
        let etag = format!("\"{}\"", &sha256_hex(&body)[..32]);
        out.push((
            form,
            Served {
                version: version.clone(),
                etag,
                gzip: gzip(&body),
                body: Bytes::from(body),
                blocked_header: blocked_header.clone(),
                refused: refused.clone(),
                recheck_at_ms,
            },
        ));
    }
    Ok(out)
}
