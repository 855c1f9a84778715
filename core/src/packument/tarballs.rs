//! Tarballs in a document: the index of where each version's tarball comes from upstream
//! and what it must hash to (`tarball_index`), and the rewrite of every `dist.tarball` to
//! nproxy's own URL (`rewrite_tarballs`, `tarball_url`).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::names::{PackageName, TarballFile};

use super::document::{raw, Packument, RawMap};

/// Where a version's tarball comes from upstream and what its bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistInfo {
    pub upstream_url: Option<String>,
    /// SRI string, e.g. `sha512-…`.
    pub integrity: Option<String>,
    /// sha1 hex.
    pub shasum: Option<String>,
}

#[derive(Deserialize)]
struct DistOnly {
    dist: Option<DistFields>,
}

#[derive(Deserialize)]
struct DistFields {
    tarball: Option<String>,
    integrity: Option<String>,
    shasum: Option<String>,
}

/// The tarball index of a document: canonical file name → where to fetch it and its hashes.
/// Versions whose key is not valid semver get no entry (they can't be addressed safely).
pub fn tarball_index(name: &PackageName, doc: &Packument) -> HashMap<String, DistInfo> {
    let mut out = HashMap::with_capacity(doc.versions.len());
    for (v, manifest) in &doc.versions {
        let Ok(version) = semver::Version::parse(v) else {
            continue;
        };
        let dist = serde_json::from_str::<DistOnly>(manifest.get())
            .ok()
            .and_then(|d| d.dist);
        out.insert(
            TarballFile::for_version(name, &version)
                .as_str()
                .to_string(),
            DistInfo {
                upstream_url: dist.as_ref().and_then(|d| d.tarball.clone()),
                integrity: dist.as_ref().and_then(|d| d.integrity.clone()),
                shasum: dist.and_then(|d| d.shasum),
            },
        );
    }
    out
}

/// Builds the URL nproxy serves a tarball at. `base` has no trailing slash.
pub fn tarball_url(base: &str, name: &PackageName, file: &TarballFile) -> String {
    // Scoped names keep the literal `/`: it is what npm's own registry puts in dist.tarball.
    format!("{base}/{}/-/{}", name.as_str(), file.as_str())
}

/// Rewrites every `dist.tarball` to point through nproxy, dropping versions that can't be
/// addressed (non-semver keys) or whose manifest is not an object.
pub fn rewrite_tarballs(doc: &mut Packument, base: &str, name: &PackageName) {
    doc.versions.retain(|v, manifest| {
        let Ok(version) = semver::Version::parse(v) else {
            return false;
        };
        let Ok(mut m) = serde_json::from_str::<RawMap>(manifest.get()) else {
            return false;
        };
        let mut dist: Map<String, Value> = m
            .get("dist")
            .and_then(|d| serde_json::from_str(d.get()).ok())
            .unwrap_or_default();
        let url = tarball_url(base, name, &TarballFile::for_version(name, &version));
        dist.insert("tarball".into(), Value::String(url));
        m.insert("dist".into(), raw(&dist));
        *manifest = raw(&m);
        true
    });
}
