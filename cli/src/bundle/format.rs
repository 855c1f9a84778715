//! The bundle file's format (`docs/bundle-format.md`): the manifest, where each member lives
//! in the tar, what is signed, integrity strings, and the reduction of a packument to the
//! versions a bundle carries. Pure: no I/O.

use std::collections::BTreeSet;

use base64::Engine;
use nproxy_core::names::{PackageName, TarballFile};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const FORMAT: &str = "nproxy-bundle";
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `nproxy-bundle`.
    pub format: String,
    pub format_version: u32,
    /// RFC 3339, UTC.
    pub created: String,
    /// The exporting org's slug.
    pub org: String,
    /// The exporting org's Ed25519 key id (`SHA256:` + unpadded base64 of the sha256 of
    /// the raw key), as `nproxyctl key list` shows it.
    pub key_id: String,
    /// Sorted by name.
    pub packages: Vec<PackageEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageEntry {
    pub name: String,
    /// Member path of the reduced packument.
    pub packument: String,
    /// Lowercase hex sha512 of that member's bytes.
    pub packument_sha512: String,
    /// One of the exporting org's internal packages (imported as a public copy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Sorted by semver.
    pub versions: Vec<VersionEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    pub version: String,
    /// `sha512-<base64>` of the tarball member's bytes.
    pub integrity: String,
    /// Member path of the tarball.
    pub tarball: String,
}

/// `packuments/<escaped name>.json`, escaped as the store's keys are (`names::key_segment`).
pub fn packument_member(name: &PackageName) -> String {
    format!("packuments/{}.json", name.key_path())
}

/// `tarballs/<escaped name>/<escaped file>`.
pub fn tarball_member(name: &PackageName, version: &semver::Version) -> String {
    let file = TarballFile::for_version(name, version);
    format!("tarballs/{}/{}", name.key_path(), file.key_segment())
}

/// What the Ed25519 signature in `manifest.sig` is made over: the lowercase hex sha256 of
/// `manifest.json`'s bytes, as ASCII (64 bytes: within what `Keys.Sign` accepts, whatever
/// the manifest's size).
pub fn signed_message(manifest_bytes: &[u8]) -> String {
    nproxy_common::hash::sha256_hex(manifest_bytes)
}

/// `sha512-<base64>` of a digest.
pub fn sri_sha512(digest: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The sha512 digest an SRI string names (`sha512-…`, possibly among other hashes).
pub fn sha512_of_sri(sri: &str) -> Option<Vec<u8>> {
    sri.split_whitespace().find_map(|h| {
        let b64 = h.strip_prefix("sha512-")?;
        let b64 = b64.split('?').next().unwrap_or(b64);
        let d = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        (d.len() == 64).then_some(d)
    })
}

/// An Ed25519 key's id as the control plane names keys: `SHA256:` + unpadded base64 of the
/// sha256 of the raw key.
pub fn ed25519_key_id(raw: &[u8; 32]) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(raw))
    )
}

/// The highest stable version of `versions` (else the highest at all).
fn highest<'a>(versions: impl Iterator<Item = &'a String>) -> Option<String> {
    let parsed: Vec<semver::Version> = versions
        .filter_map(|v| semver::Version::parse(v).ok())
        .collect();
    parsed
        .iter()
        .filter(|v| v.pre.is_empty())
        .max()
        .or_else(|| parsed.iter().max())
        .map(ToString::to_string)
}

/// The packument reduced to `keep`: those versions only; `time` of those plus `created` and
/// `modified`; the dist-tags pointing at them (`latest` added for the highest kept version
/// if the document's own `latest` is not kept); every other top-level field as it is
/// (`name`, `description`, `readme`, …) except `_attachments`. Field order is kept.
pub fn reduce(doc: &Value, keep: &BTreeSet<String>) -> Result<Value, String> {
    let obj = doc
        .as_object()
        .ok_or("the packument is not a JSON object")?;
    let versions = obj
        .get("versions")
        .and_then(Value::as_object)
        .ok_or("the packument has no versions")?;
    let missing: Vec<&String> = keep.iter().filter(|v| !versions.contains_key(*v)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "no version {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut out = Map::new();
    for (k, v) in obj {
        let value = match k.as_str() {
            "_attachments" => continue,
            "versions" => Value::Object(
                versions
                    .iter()
                    .filter(|(v, _)| keep.contains(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            "time" => Value::Object(
                v.as_object()
                    .map(|t| {
                        t.iter()
                            .filter(|(k, _)| {
                                keep.contains(*k) || *k == "created" || *k == "modified"
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "dist-tags" => {
                let mut tags: Map<String, Value> = v
                    .as_object()
                    .map(|t| {
                        t.iter()
                            .filter(|(_, v)| v.as_str().is_some_and(|v| keep.contains(v)))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                if !tags.contains_key("latest") {
                    if let Some(h) = highest(keep.iter()) {
                        tags.insert("latest".into(), Value::String(h));
                    }
                }
                Value::Object(tags)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), value);
    }
    if !out.contains_key("dist-tags") {
        if let Some(h) = highest(keep.iter()) {
            out.insert("dist-tags".into(), serde_json::json!({ "latest": h }));
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "_id": "fx-a", "_rev": "3-x", "name": "fx-a", "description": "d",
            "dist-tags": {"latest": "2.0.0", "beta": "2.1.0-beta.1", "old": "1.0.0"},
            "versions": {
                "1.0.0": {"version": "1.0.0"}, "1.1.0": {"version": "1.1.0"},
                "2.0.0": {"version": "2.0.0"}, "2.1.0-beta.1": {"version": "2.1.0-beta.1"}
            },
            "time": {"created": "c", "modified": "m", "1.0.0": "t1", "1.1.0": "t2",
                     "2.0.0": "t3", "2.1.0-beta.1": "t4"},
            "readme": "r", "_attachments": {}
        })
    }

    fn keep(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reduce_keeps_only_the_needed_versions_and_their_tags() {
        let r = reduce(&doc(), &keep(&["1.0.0", "2.0.0"])).unwrap();
        assert_eq!(
            r,
            json!({
                "_id": "fx-a", "_rev": "3-x", "name": "fx-a", "description": "d",
                "dist-tags": {"latest": "2.0.0", "old": "1.0.0"},
                "versions": {"1.0.0": {"version": "1.0.0"}, "2.0.0": {"version": "2.0.0"}},
                "time": {"created": "c", "modified": "m", "1.0.0": "t1", "2.0.0": "t3"},
                "readme": "r"
            })
        );
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys[4], "dist-tags", "field order is kept");
    }

    #[test]
    fn latest_points_at_the_highest_stable_kept_version_when_excluded() {
        let r = reduce(&doc(), &keep(&["1.0.0", "1.1.0", "2.1.0-beta.1"])).unwrap();
        assert_eq!(
            r["dist-tags"],
            json!({"beta": "2.1.0-beta.1", "old": "1.0.0", "latest": "1.1.0"})
        );
        let r = reduce(&doc(), &keep(&["2.1.0-beta.1"])).unwrap();
        assert_eq!(r["dist-tags"]["latest"], "2.1.0-beta.1");
    }

    #[test]
    fn reduce_refuses_missing_versions() {
        let e = reduce(&doc(), &keep(&["9.9.9"])).unwrap_err();
        assert!(e.contains("9.9.9"), "{e}");
        assert!(reduce(&json!([]), &keep(&["1.0.0"])).is_err());
    }

    #[test]
    fn member_paths_are_escaped_like_store_keys() {
        let n = PackageName::parse("@fx/b").unwrap();
        let v = semver::Version::parse("1.0.1").unwrap();
        assert_eq!(packument_member(&n), "packuments/@fx/b.json");
        assert_eq!(tarball_member(&n, &v), "tarballs/@fx/b/b-1.0.1.tgz");
        let n = PackageName::parse("JSONStream").unwrap();
        assert_eq!(packument_member(&n), "packuments/+j+s+o+n+stream.json");
    }

    #[test]
    fn sri_round_trip() {
        let d = [7u8; 64];
        let sri = sri_sha512(&d);
        assert_eq!(sha512_of_sri(&sri).as_deref(), Some(&d[..]));
        assert_eq!(
            sha512_of_sri(&format!("sha1-AAAA {sri}")).as_deref(),
            Some(&d[..])
        );
        assert!(sha512_of_sri("sha1-AAAA").is_none());
        assert!(sha512_of_sri("sha512-AAAA").is_none());
    }
}
