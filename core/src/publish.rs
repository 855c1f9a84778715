//! Validation of an `npm publish` payload. Pure: bytes in, a checked publish (or a message
//! saying exactly what is wrong) out. Nothing is trusted: the name must match the URL, the
//! attachment must match its declared length and the manifest's integrity and shasum, and it
//! must really be a gzip'd tar.

use std::io::Read;

use base64::Engine;
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha512};

use crate::doc_bounds;
use crate::names::{PackageName, TarballFile};

/// Largest publish request accepted, as sent (before any gzip decoding).
pub const MAX_PUBLISH_BODY: usize = 50 * 1024 * 1024;
/// Largest decoded JSON body (a 50 MB payload of base64 inflates past 50 MB).
pub const MAX_PUBLISH_JSON: usize = 80 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

fn bad(m: impl Into<String>) -> PublishError {
    PublishError(m.into())
}

/// A publish that passed every check.
#[derive(Debug, Clone)]
pub struct Publish {
    pub version: semver::Version,
    /// The version's manifest as sent, minus fields nproxy owns (`dist` is rebuilt).
    pub manifest: Map<String, Value>,
    pub dist_tags: Vec<String>,
    pub tarball: bytes::Bytes,
    /// `sha512-…`
    pub integrity: String,
    /// sha1 hex
    pub shasum: String,
    pub sha512_hex: String,
    pub readme: Option<Value>,
    pub description: Option<Value>,
    /// `npm publish --provenance`: the Sigstore bundle, as sent, checked to be about this
    /// version and tarball.
    pub provenance: Option<Provenance>,
}

pub use crate::attestation::Provenance;

pub fn sri_sha512(bytes: &[u8]) -> (String, String) {
    let d = Sha512::digest(bytes);
    (
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(d)
        ),
        hex::encode(d),
    )
}

/// Checks that `bytes` are a gzip stream whose content starts with a tar header.
fn check_tgz(bytes: &[u8]) -> Result<(), PublishError> {
    if bytes.len() < 18 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Err(bad("the tarball is not gzip-compressed"));
    }
    let mut header = [0u8; 512];
    let mut gz = flate2::read::GzDecoder::new(bytes);
    gz.read_exact(&mut header)
        .map_err(|_| bad("the tarball is not a valid gzip'd tar"))?;
    // A tar header's checksum: the byte sum with the checksum field taken as spaces.
    let stored = std::str::from_utf8(&header[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .ok_or_else(|| bad("the tarball is not a tar archive"))?;
    let sum: u32 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    if sum != stored {
        return Err(bad(
            "the tarball is not a tar archive (bad header checksum)",
        ));
    }
    Ok(())
}

/// Decodes a possibly gzip-encoded request body into JSON bytes, bounded.
pub fn decode_body(body: &[u8], content_encoding: Option<&str>) -> Result<Vec<u8>, PublishError> {
    decode_body_limited(body, content_encoding, MAX_PUBLISH_JSON)
}

/// `decode_body` with its own bound on the decoded size.
pub fn decode_body_limited(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, PublishError> {
    match content_encoding.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(body.to_vec()),
        Some(e) if e == "identity" => Ok(body.to_vec()),
        Some(e) if e == "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| bad("the request body is not valid gzip"))?;
            if out.len() > limit {
                return Err(bad("the decoded request body is too large"));
            }
            Ok(out)
        }
        Some(other) => Err(bad(format!("unsupported Content-Encoding {other:?}"))),
    }
}

/// Validates a publish payload for package `name` (from the URL).
pub fn validate(name: &PackageName, json: &[u8]) -> Result<Publish, PublishError> {
    // One version per publish: a second one stops the parse.
    let doc = doc_bounds::parse_document(json, 1)
        .map_err(|e| bad(format!("the body is not a publish payload: {e}")))?;
    let field_str = |k: &str| doc.get(k).and_then(Value::as_str);
    if field_str("name") != Some(name.as_str()) {
        return Err(bad(format!(
            "the payload's name {:?} does not match the URL's {:?}",
            field_str("name").unwrap_or(""),
            name.as_str()
        )));
    }
    if let Some(id) = field_str("_id") {
        if id != name.as_str() {
            return Err(bad("the payload's _id does not match its name"));
        }
    }
    let versions = doc
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the payload has no versions object"))?;
    if versions.len() != 1 {
        return Err(bad(format!(
            "a publish carries exactly one version, this one has {}",
            versions.len()
        )));
    }
    let (version_key, manifest) = versions
        .iter()
        .next()
        .ok_or_else(|| bad("the payload has no version"))?;
    let version = semver::Version::parse(version_key)
        .map_err(|_| bad(format!("{version_key:?} is not a valid semver version")))?;
    if version.to_string() != *version_key {
        return Err(bad(format!(
            "{version_key:?} is not in canonical semver form"
        )));
    }
    let mut manifest = manifest
        .as_object()
        .cloned()
        .ok_or_else(|| bad("the version's manifest is not an object"))?;
    if manifest.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(bad("the manifest's name does not match the package"));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version_key.as_str()) {
        return Err(bad("the manifest's version does not match its key"));
    }
    let dist = manifest
        .get("dist")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the manifest has no dist"))?;
    let claimed_integrity = dist.get("integrity").and_then(Value::as_str);
    let claimed_shasum = dist.get("shasum").and_then(Value::as_str);
    if claimed_integrity.is_none() && claimed_shasum.is_none() {
        return Err(bad("dist has neither integrity nor shasum"));
    }

    let attachments = doc
        .get("_attachments")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the payload has no _attachments"))?;
    let file = TarballFile::for_version(name, &version);
    let scoped_file = format!("{}-{}.tgz", name.as_str(), version);
    let sigstore_file = format!("{}-{}.sigstore", name.as_str(), version);
    if let Some(other) = attachments
        .keys()
        .find(|k| !k.ends_with(".tgz") && **k != sigstore_file)
    {
        return Err(bad(format!(
            "unexpected attachment {other:?}: a publish carries the tarball and, with \
             --provenance, {sigstore_file:?}"
        )));
    }
    let tgz: Vec<(&String, &Value)> = attachments
        .iter()
        .filter(|(k, _)| k.ends_with(".tgz"))
        .collect();
    if tgz.len() != 1 {
        return Err(bad("the payload must carry exactly one .tgz attachment"));
    }
    let (att_name, att) = tgz[0];
    if *att_name != scoped_file && att_name != file.as_str() {
        return Err(bad(format!(
            "the attachment is named {att_name:?}, expected {scoped_file:?}"
        )));
    }
    let data = att
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the attachment has no data"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|_| bad("the attachment's data is not valid base64"))?;
    let declared = att
        .get("length")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("the attachment has no length"))?;
    if declared != bytes.len() as u64 {
        return Err(bad(format!(
            "the attachment is {} bytes but declares length {declared}",
            bytes.len()
        )));
    }
    let (integrity, sha512_hex) = sri_sha512(&bytes);
    let shasum = hex::encode(Sha1::digest(&bytes));
    if let Some(claimed) = claimed_integrity {
        // SRI may list several hashes; the sha512 one must be ours.
        let sha512s: Vec<&str> = claimed
            .split_whitespace()
            .filter(|h| h.starts_with("sha512-"))
            .collect();
        if sha512s.is_empty() || !sha512s.contains(&integrity.as_str()) {
            return Err(bad("dist.integrity does not match the tarball"));
        }
    }
    if let Some(claimed) = claimed_shasum {
        if !claimed.eq_ignore_ascii_case(&shasum) {
            return Err(bad("dist.shasum does not match the tarball"));
        }
    }
    check_tgz(&bytes)?;
    let provenance = match attachments.get(&sigstore_file) {
        Some(att) => Some(
            crate::attestation::provenance_attachment(att, name, version_key, &sha512_hex)
                .map_err(bad)?,
        ),
        None => None,
    };

    let mut dist_tags = Vec::new();
    if let Some(tags) = doc.get("dist-tags").and_then(Value::as_object) {
        for (tag, v) in tags {
            if v.as_str() != Some(version_key.as_str()) {
                return Err(bad(format!(
                    "dist-tag {tag:?} must point at the published version"
                )));
            }
            if !doc_bounds::valid_tag(tag) {
                return Err(bad(format!("{tag:?} is not a valid dist-tag")));
            }
            dist_tags.push(tag.clone());
        }
    }
    if dist_tags.is_empty() {
        dist_tags.push("latest".into());
    }
    // nproxy owns these: what clients claim is replaced. The readme lives once, at the top.
    for owned in ["dist", "_nproxy", "_id", "_rev", "_npmUser", "readme"] {
        manifest.remove(owned);
    }
    let manifest_len = serde_json::to_vec(&manifest)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if manifest_len > doc_bounds::MAX_MANIFEST_BYTES {
        return Err(bad(format!(
            "the version's manifest is {manifest_len} bytes; the limit is {}",
            doc_bounds::MAX_MANIFEST_BYTES
        )));
    }
    manifest.insert("_id".into(), Value::String(format!("{name}@{version}")));
    Ok(Publish {
        version,
        manifest,
        dist_tags,
        tarball: bytes::Bytes::from(bytes),
        integrity,
        shasum,
        sha512_hex,
        // Strings only, cut to their bounds (as npm's registry does with long readmes).
        readme: doc
            .get("readme")
            .and_then(Value::as_str)
            .map(|r| Value::String(doc_bounds::truncate(r, doc_bounds::MAX_README_BYTES).into())),
        description: doc.get("description").and_then(Value::as_str).map(|d| {
            Value::String(doc_bounds::truncate(d, doc_bounds::MAX_DESCRIPTION_BYTES).into())
        }),
        provenance,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn tgz(content: &[u8]) -> Vec<u8> {
        let mut tar = Vec::new();
        {
            let mut b = tar_header("package/package.json", content.len());
            tar.append(&mut b);
            tar.extend_from_slice(content);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
            tar.extend_from_slice(&[0u8; 1024]);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    fn tar_header(path: &str, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    pub fn payload(name: &str, version: &str, tarball: &[u8]) -> Value {
        let (integrity, _) = sri_sha512(tarball);
        let shasum = hex::encode(Sha1::digest(tarball));
        json!({
            "_id": name, "name": name, "description": "d",
            "dist-tags": {"latest": version},
            "versions": {version: {
                "name": name, "version": version, "main": "index.js",
                "dist": {"integrity": integrity, "shasum": shasum, "tarball": "http://x/y.tgz"}
            }},
            "access": null,
            "_attachments": {format!("{name}-{version}.tgz"): {
                "content_type": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(tarball),
                "length": tarball.len()
            }}
        })
    }

    #[test]
    fn stored_fields_are_bounded() {
        let n = PackageName::parse("@acme/utils").unwrap();
        let t = tgz(b"x");
        let mut p = payload("@acme/utils", "1.0.0", &t);
        p["readme"] = json!("r".repeat(5 * 1024 * 1024));
        p["description"] = json!("d".repeat(100_000));
        p["versions"]["1.0.0"]["readme"] = json!("r".repeat(1024 * 1024));
        let ok = validate(&n, &serde_json::to_vec(&p).unwrap()).unwrap();
        assert_eq!(
            ok.readme.unwrap().as_str().unwrap().len(),
            doc_bounds::MAX_README_BYTES
        );
        assert_eq!(
            ok.description.unwrap().as_str().unwrap().len(),
            doc_bounds::MAX_DESCRIPTION_BYTES
        );
        assert!(!ok.manifest.contains_key("readme"));
        // Other oversized manifest fields are refused, not stored.
        p["versions"]["1.0.0"]["junk"] = json!("j".repeat(1024 * 1024));
        let e = validate(&n, &serde_json::to_vec(&p).unwrap()).unwrap_err();
        assert!(e.0.contains("manifest"), "{e}");
        // A second version stops the parse.
        let mut two = payload("@acme/utils", "1.0.0", &t);
        two["versions"]["1.0.1"] = json!({});
        let e = validate(&n, &serde_json::to_vec(&two).unwrap()).unwrap_err();
        assert!(e.0.contains("more than 1 versions"), "{e}");
        let mut tag = payload("@acme/utils", "1.0.0", &t);
        tag["dist-tags"] = json!({"..": "1.0.0"});
        assert!(validate(&n, &serde_json::to_vec(&tag).unwrap()).is_err());
    }

    fn name() -> PackageName {
        PackageName::parse("@acme/utils").unwrap()
    }

    fn check(v: &Value) -> Result<Publish, PublishError> {
        validate(&name(), &serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn a_real_payload_passes() {
        let t = tgz(b"{\"name\":\"@acme/utils\"}");
        let p = check(&payload("@acme/utils", "1.0.0", &t)).unwrap();
        assert_eq!(p.version.to_string(), "1.0.0");
        assert_eq!(p.dist_tags, vec!["latest"]);
        assert_eq!(p.tarball.len(), t.len());
        assert!(
            p.manifest.get("dist").is_none(),
            "dist is rebuilt by nproxy"
        );
    }

    #[test]
    fn every_lie_is_caught() {
        let t = tgz(b"{}");
        let base = payload("@acme/utils", "1.0.0", &t);
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "does not match the URL",
                Box::new(|v| v["name"] = json!("@acme/other")),
            ),
            (
                "not a valid semver",
                Box::new(|v| {
                    let m = v["versions"]["1.0.0"].clone();
                    v["versions"] = json!({"1.0": m});
                }),
            ),
            (
                "declares length",
                Box::new(|v| v["_attachments"]["@acme/utils-1.0.0.tgz"]["length"] = json!(3)),
            ),
            (
                "dist.integrity does not match",
                Box::new(|v| {
                    v["versions"]["1.0.0"]["dist"]["integrity"] = json!(sri_sha512(b"other").0)
                }),
            ),
            (
                "dist.shasum does not match",
                Box::new(|v| v["versions"]["1.0.0"]["dist"]["shasum"] = json!("00")),
            ),
            (
                "exactly one .tgz",
                Box::new(|v| v["_attachments"] = json!({})),
            ),
            (
                "not valid base64",
                Box::new(|v| v["_attachments"]["@acme/utils-1.0.0.tgz"]["data"] = json!("%%%")),
            ),
            (
                "manifest's version",
                Box::new(|v| v["versions"]["1.0.0"]["version"] = json!("2.0.0")),
            ),
            (
                "must point at the published version",
                Box::new(|v| v["dist-tags"] = json!({"latest": "9.9.9"})),
            ),
        ];
        for (want, mutate) in cases {
            let mut v = base.clone();
            mutate(&mut v);
            let e = check(&v).expect_err(want);
            assert!(e.0.contains(want), "wanted {want:?}, got {:?}", e.0);
        }
        // Not a tarball: valid hashes over bytes that aren't a gzip'd tar.
        let not_tar = b"just some bytes, not gzip".to_vec();
        let e = check(&payload("@acme/utils", "1.0.0", &not_tar)).unwrap_err();
        assert!(e.0.contains("gzip"), "{e}");
        let gz_not_tar = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &[7u8; 2048]).unwrap();
            gz.finish().unwrap()
        };
        let e = check(&payload("@acme/utils", "1.0.0", &gz_not_tar)).unwrap_err();
        assert!(e.0.contains("tar"), "{e}");
    }

    #[test]
    fn gzip_bodies() {
        let body = b"{\"a\":1}";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body).unwrap();
        let enc = gz.finish().unwrap();
        assert_eq!(decode_body(&enc, Some("gzip")).unwrap(), body);
        assert!(decode_body(b"not gzip", Some("gzip")).is_err());
        assert!(decode_body(body, Some("br")).is_err());
    }
}
