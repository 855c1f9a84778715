//! Tarballs in a document: the index of where each version's tarball comes from upstream
//! and what it must hash to (`tarball_index`), and the rewrite of every `dist.tarball` to
//! nproxy's own URL (`rewrite_tarballs`, `tarball_url`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::names::{PackageName, TarballFile};

use super::document::{borrowed_map, raw, Packument};

/// Where a version's tarball comes from upstream and what its bytes must hash to.
///
/// Held for every version of the packages whose tarballs a data plane is fetching (tens of
/// thousands for one app), so it is kept small: exact-size strings, and the usual
/// `<registry>/<name>/-/<file>` URL stored as its registry prefix, shared by every version
/// of the document, and rebuilt on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistInfo {
    source: Option<Source>,
    /// SRI string, e.g. `sha512-…`.
    pub integrity: Option<Box<str>>,
    /// sha1 hex.
    pub shasum: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// `<prefix>/<name>/-/<file>`.
    Conventional(Arc<str>),
    Other(Box<str>),
}

impl DistInfo {
    /// Heap bytes this entry holds (its strings; the shared registry prefix not counted),
    /// for weighing caches of tarball indexes.
    pub fn heap_bytes(&self) -> usize {
        let source = match &self.source {
            Some(Source::Other(url)) => url.len(),
            _ => 0,
        };
        source
            + self.integrity.as_deref().map_or(0, str::len)
            + self.shasum.as_deref().map_or(0, str::len)
    }

    pub fn new(integrity: Option<String>, shasum: Option<String>) -> DistInfo {
        DistInfo {
            source: None,
            integrity: integrity.map(String::into_boxed_str),
            shasum: shasum.map(String::into_boxed_str),
        }
    }

    /// `dist.tarball` as the upstream's document gave it.
    pub fn upstream_url(&self, name: &PackageName, file: &str) -> Option<String> {
        match self.source.as_ref()? {
            Source::Conventional(prefix) => Some(format!("{prefix}/{}/-/{file}", name.as_str())),
            Source::Other(url) => Some(url.to_string()),
        }
    }
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
pub fn tarball_index(name: &PackageName, doc: &Packument) -> HashMap<Box<str>, DistInfo> {
    let mut out = HashMap::with_capacity(doc.versions.len());
    // Every version of a document is normally on one registry: one shared prefix.
    let mut prefix: Option<Arc<str>> = None;
    for (v, manifest) in &doc.versions {
        let Ok(version) = semver::Version::parse(v) else {
            continue;
        };
        let dist = serde_json::from_str::<DistOnly>(manifest.get())
            .ok()
            .and_then(|d| d.dist);
        let file = TarballFile::for_version(name, &version);
        let (tarball, integrity, shasum) = match dist {
            Some(d) => (d.tarball, d.integrity, d.shasum),
            None => (None, None, None),
        };
        let source = tarball.map(|url| {
            let suffix = format!("/{}/-/{}", name.as_str(), file.as_str());
            match url.strip_suffix(&suffix) {
                Some(p) if !p.is_empty() => {
                    let shared = match &prefix {
                        Some(q) if &**q == p => q.clone(),
                        _ => {
                            let q: Arc<str> = Arc::from(p);
                            prefix = Some(q.clone());
                            q
                        }
                    };
                    Source::Conventional(shared)
                }
                _ => Source::Other(url.into_boxed_str()),
            }
        });
        out.insert(
            Box::from(file.as_str()),
            DistInfo {
                source,
                integrity: integrity.map(String::into_boxed_str),
                shasum: shasum.map(String::into_boxed_str),
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

/// Where nproxy serves a version's attestations. `base` has no trailing slash.
pub fn attestations_url(base: &str, name: &PackageName, version: &str) -> String {
    format!("{base}/-/npm/v1/attestations/{}@{version}", name.as_str())
}

/// Rewrites every `dist.tarball` to point through nproxy, dropping versions that can't be
/// addressed (non-semver keys) or whose manifest is not an object.
pub fn rewrite_tarballs(doc: &mut Packument<'_>, base: &str, name: &PackageName) {
    doc.versions.retain(
        |v, manifest| match rewritten_manifest(v, manifest, base, name) {
            Some(m) => {
                *manifest = Cow::Owned(m);
                true
            }
            None => false,
        },
    );
}

/// One version's manifest with its `dist.tarball` pointing through nproxy; `None` for a
/// version that can't be addressed (non-semver key) or a manifest that is not an object.
/// `rewrite_tarballs` in place, or one manifest at a time while writing a document out.
pub fn rewritten_manifest(
    version: &str,
    manifest: &RawValue,
    base: &str,
    name: &PackageName,
) -> Option<Box<RawValue>> {
    let version = semver::Version::parse(version).ok()?;
    let mut m = borrowed_map(manifest.get()).ok()?;
    let mut dist: Map<String, Value> = m
        .get("dist")
        .and_then(|d| serde_json::from_str(d.get()).ok())
        .unwrap_or_default();
    let url = tarball_url(base, name, &TarballFile::for_version(name, &version));
    dist.insert("tarball".into(), Value::String(url));
    // npm fetches attestations from the path of this URL on the registry's host: pointed at
    // nproxy's own copy (with the org's path prefix, which the path keeps), never upstream.
    if let Some(Value::Object(att)) = dist.get_mut("attestations") {
        att.insert(
            "url".into(),
            Value::String(attestations_url(base, name, &version.to_string())),
        );
    }
    m.insert("dist".into(), raw(&dist));
    Some(raw(&m).into_owned())
}
