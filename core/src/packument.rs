//! Pure transformations of package documents ("packuments"): merging an upstream answer
//! into the copy nproxy holds, rewriting tarball URLs to nproxy's own, and deriving the
//! abbreviated install form. These run only when a document changes, never per request.
//!
//! A packument can be tens of MB, almost all of it per-version manifests that no transform
//! reads in full. So a document is held as raw JSON pieces: top-level fields and one raw
//! manifest per version. A transform parses only the few fields it touches, one version at
//! a time, which keeps memory near the document's own size.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::names::{PackageName, TarballFile};

type RawMap = IndexMap<String, Box<RawValue>>;

/// Which representation a client asked for (by `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    Full,
    Abbreviated,
}

pub const ABBREVIATED_MEDIA_TYPE: &str = "application/vnd.npm.install-v1+json";

impl Form {
    /// npm asks `application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*`
    /// for the abbreviated form; anything without that media type gets the full document.
    pub fn from_accept(accept: Option<&str>) -> Form {
        match accept {
            Some(a) if a.contains(ABBREVIATED_MEDIA_TYPE) => Form::Abbreviated,
            _ => Form::Full,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Form::Full => "application/json",
            Form::Abbreviated => ABBREVIATED_MEDIA_TYPE,
        }
    }
}

/// Where a version's tarball comes from upstream and what its bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistInfo {
    pub upstream_url: Option<String>,
    /// SRI string, e.g. `sha512-…`.
    pub integrity: Option<String>,
    /// sha1 hex.
    pub shasum: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackumentError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`versions` is not an object")]
    Versions,
}

/// A packument as raw JSON pieces.
#[derive(Debug, Clone)]
pub struct Packument {
    /// Top-level fields in document order. The `versions` slot holds `null`; the manifests
    /// live in `versions` and are written back in that slot.
    fields: RawMap,
    versions: RawMap,
}

fn raw(v: &impl Serialize) -> Box<RawValue> {
    // Serializing plain JSON values to JSON cannot fail.
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| null())
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("`null` is JSON")
}

/// Per-version fields kept in the abbreviated form (npm's registry set, plus nothing else).
const ABBREVIATED_VERSION_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "os",
    "cpu",
    "libc",
    "deprecated",
    "funding",
    "license",
    "hasInstallScript",
    "_hasShrinkwrap",
];

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

impl Packument {
    pub fn parse(bytes: &[u8]) -> Result<Packument, PackumentError> {
        let mut fields: RawMap = serde_json::from_slice(bytes)?;
        let versions = match fields.get_mut("versions") {
            Some(v) => {
                let map: RawMap =
                    serde_json::from_str(v.get()).map_err(|_| PackumentError::Versions)?;
                *v = null();
                map
            }
            None => RawMap::new(),
        };
        Ok(Packument { fields, versions })
    }

    /// Builds a document from a JSON value (tests and small documents).
    pub fn from_value(v: &Value) -> Result<Packument, PackumentError> {
        Self::parse(&serde_json::to_vec(v)?)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.versions
                .values()
                .map(|v| v.get().len() + 16)
                .sum::<usize>()
                + self
                    .fields
                    .values()
                    .map(|v| v.get().len() + 16)
                    .sum::<usize>()
                + 64,
        );
        out.push(b'{');
        let mut wrote_versions = false;
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(&mut out, k);
            if k == "versions" {
                write_map(&mut out, &self.versions);
                wrote_versions = true;
            } else {
                out.extend_from_slice(v.get().as_bytes());
            }
        }
        if !wrote_versions {
            if !self.fields.is_empty() {
                out.push(b',');
            }
            write_key(&mut out, "versions");
            write_map(&mut out, &self.versions);
        }
        out.push(b'}');
        out
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.to_vec()).unwrap_or(Value::Null)
    }

    pub fn has_versions(&self) -> bool {
        !self.versions.is_empty()
    }

    pub fn version_keys(&self) -> impl Iterator<Item = &String> {
        self.versions.keys()
    }

    pub fn has_version(&self, v: &str) -> bool {
        self.versions.contains_key(v)
    }

    /// Reads chosen fields of one version's manifest (unlisted fields are skipped unparsed).
    pub fn version_as<T: for<'de> Deserialize<'de>>(&self, version: &str) -> Option<T> {
        self.versions
            .get(version)
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }

    /// Removes versions (e.g. blocked by a rule) and points dist-tags at what remains.
    pub fn remove_versions(&mut self, versions: &std::collections::BTreeSet<String>) {
        if versions.is_empty() {
            return;
        }
        self.versions.retain(|v, _| !versions.contains(v));
        repair_dist_tags(self);
    }

    /// The `time` map as strings: version (or `created`/`modified`) → ISO timestamp.
    pub fn times(&self) -> HashMap<String, String> {
        self.fields
            .get("time")
            .and_then(|t| serde_json::from_str::<HashMap<String, IgnoredOr>>(t.get()).ok())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.0.map(|s| (k, s)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn field<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        self.fields
            .get(key)
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }

    fn set_field(&mut self, key: &str, value: &impl Serialize) {
        self.fields.insert(key.to_string(), raw(value));
    }

    fn time(&self) -> Map<String, Value> {
        self.field("time").unwrap_or_default()
    }
}

fn write_key(out: &mut Vec<u8>, k: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, k);
    out.push(b':');
}

fn write_map(out: &mut Vec<u8>, map: &RawMap) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, k);
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
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

/// Merges a fresh upstream document into the one nproxy holds. Versions the upstream no longer
/// lists survive when `keep` says their tarball is cached: keeping a copy is the point of a
/// proxy. `upstream` is `None` when the upstream says the package does not exist.
///
/// Returns `None` when nothing is left to serve.
pub fn merge(
    held: Option<Packument>,
    upstream: Option<Packument>,
    keep: impl Fn(&str) -> bool,
) -> Option<Packument> {
    let (mut base, held) = match (upstream, held) {
        (Some(up), held) => (up, held),
        (None, Some(held)) => {
            let mut base = held.clone();
            base.versions.clear();
            (base, Some(held))
        }
        (None, None) => return None,
    };
    if let Some(held) = held {
        let held_time = held.time();
        let mut time = base.time();
        let mut time_changed = false;
        for (v, manifest) in held.versions {
            if !base.versions.contains_key(&v) && keep(&v) {
                if let Some(t) = held_time.get(&v) {
                    time.insert(v.clone(), t.clone());
                    time_changed = true;
                }
                base.versions.insert(v, manifest);
            }
        }
        if time_changed {
            base.set_field("time", &time);
        }
    }
    if !base.has_versions() {
        return None;
    }
    repair_dist_tags(&mut base);
    Some(base)
}

/// Points every dist-tag at a version the document still has; `latest` falls back to the
/// highest remaining stable version (or the highest at all), other dangling tags are dropped.
pub fn repair_dist_tags(doc: &mut Packument) {
    let tags: Map<String, Value> = doc.field("dist-tags").unwrap_or_default();
    let mut fixed = Map::new();
    for (tag, v) in tags {
        if v.as_str().is_some_and(|v| doc.has_version(v)) {
            fixed.insert(tag, v);
        }
    }
    if !fixed.contains_key("latest") {
        let present: Vec<semver::Version> = doc
            .version_keys()
            .filter_map(|v| semver::Version::parse(v).ok())
            .collect();
        let best = present
            .iter()
            .filter(|v| v.pre.is_empty())
            .max()
            .or_else(|| present.iter().max());
        if let Some(best) = best {
            fixed.insert("latest".into(), Value::String(best.to_string()));
        }
    }
    doc.set_field("dist-tags", &fixed);
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

/// The abbreviated ("corgi") form. Keeps `time` so pnpm's minimum-release-age check needs no
/// second, full fetch.
pub fn abbreviate(doc: &Packument) -> Packument {
    let mut fields = RawMap::new();
    for key in ["name", "dist-tags"] {
        if let Some(v) = doc.fields.get(key) {
            fields.insert(key.into(), v.clone());
        }
    }
    let time = doc.fields.get("time");
    // npm's registry always sends `modified`; a document without `time.modified` (some
    // mirrors drop it) gets its newest time instead.
    if let Some(modified) = time
        .and_then(|t| serde_json::from_str::<HashMap<String, IgnoredOr>>(t.get()).ok())
        .and_then(|mut t| match t.remove("modified").and_then(|m| m.0) {
            Some(m) => Some(m),
            None => t.into_values().filter_map(|v| v.0).max(),
        })
    {
        fields.insert("modified".into(), raw(&modified));
    }
    fields.insert("versions".into(), null());
    let mut versions = RawMap::with_capacity(doc.versions.len());
    for (v, manifest) in &doc.versions {
        let Ok(m) = serde_json::from_str::<RawMap>(manifest.get()) else {
            continue;
        };
        let mut out = RawMap::new();
        for field in ABBREVIATED_VERSION_FIELDS {
            if let Some(x) = m.get(*field) {
                out.insert((*field).into(), x.clone());
            }
        }
        if !out.contains_key("hasInstallScript") && has_install_script(&m) {
            out.insert("hasInstallScript".into(), raw(&true));
        }
        versions.insert(v.clone(), raw(&out));
    }
    if let Some(t) = time {
        fields.insert("time".into(), t.clone());
    }
    Packument { fields, versions }
}

/// A `time` entry: a string we want, or anything else we skip without allocating.
struct IgnoredOr(Option<String>);

impl<'de> Deserialize<'de> for IgnoredOr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            #[allow(dead_code)]
            Other(IgnoredAny),
        }
        Ok(match Either::deserialize(d)? {
            Either::S(s) => IgnoredOr(Some(s)),
            Either::Other(_) => IgnoredOr(None),
        })
    }
}

fn has_install_script(manifest: &RawMap) -> bool {
    manifest
        .get("scripts")
        .and_then(|s| serde_json::from_str::<HashMap<String, IgnoredAny>>(s.get()).ok())
        .is_some_and(|s| {
            ["preinstall", "install", "postinstall"]
                .iter()
                .any(|k| s.contains_key(*k))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc_value() -> Value {
        json!({
            "_id": "@acme/utils",
            "name": "@acme/utils",
            "readme": "long text",
            "dist-tags": {"latest": "1.1.0", "beta": "2.0.0-beta.1"},
            "versions": {
                "1.0.0": {"name": "@acme/utils", "version": "1.0.0", "readme": "x",
                          "scripts": {"postinstall": "node x"},
                          "dist": {"tarball": "https://up.example/@acme/utils/-/utils-1.0.0.tgz",
                                   "integrity": "sha512-aaa", "shasum": "abc"}},
                "1.1.0": {"name": "@acme/utils", "version": "1.1.0",
                          "dependencies": {"a": "1"},
                          "dist": {"tarball": "https://up.example/@acme/utils/-/utils-1.1.0.tgz",
                                   "integrity": "sha512-bbb"}},
                "2.0.0-beta.1": {"name": "@acme/utils", "version": "2.0.0-beta.1",
                          "dist": {"tarball": "https://up.example/x.tgz"}}
            },
            "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2021-01-01T00:00:00.000Z",
                     "1.0.0": "2020-01-01T00:00:00.000Z", "1.1.0": "2020-06-01T00:00:00.000Z",
                     "2.0.0-beta.1": "2021-01-01T00:00:00.000Z"}
        })
    }

    fn doc() -> Packument {
        Packument::from_value(&doc_value()).unwrap()
    }

    fn name() -> PackageName {
        PackageName::parse("@acme/utils").unwrap()
    }

    #[test]
    fn round_trips_and_keeps_field_order() {
        let d = doc();
        assert_eq!(d.to_value(), doc_value());
        let text = String::from_utf8(d.to_vec()).unwrap();
        let pos = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        assert!(pos("dist-tags") < pos("versions") && pos("versions") < pos("time"));
    }

    #[test]
    fn rejects_non_documents() {
        assert!(Packument::parse(b"[]").is_err());
        assert!(Packument::parse(b"{\"versions\": []}").is_err());
        assert!(Packument::parse(b"{\"versions\": {").is_err());
    }

    #[test]
    fn accept_header_picks_the_form() {
        assert_eq!(
            Form::from_accept(Some(
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
            )),
            Form::Abbreviated
        );
        assert_eq!(Form::from_accept(Some("application/json")), Form::Full);
        assert_eq!(Form::from_accept(None), Form::Full);
    }

    #[test]
    fn rewrites_tarballs_to_the_public_url() {
        let mut d = doc();
        rewrite_tarballs(&mut d, "http://127.0.0.1:1234/acme", &name());
        let v = d.to_value();
        assert_eq!(
            v["versions"]["1.0.0"]["dist"]["tarball"],
            "http://127.0.0.1:1234/acme/@acme/utils/-/utils-1.0.0.tgz"
        );
        assert_eq!(v["versions"]["1.0.0"]["dist"]["integrity"], "sha512-aaa");
        assert_eq!(
            v["versions"]["1.0.0"]["readme"], "x",
            "other fields untouched"
        );
    }

    #[test]
    fn abbreviated_keeps_install_fields_and_time() {
        let a = abbreviate(&doc()).to_value();
        assert_eq!(a["name"], "@acme/utils");
        assert_eq!(a["modified"], "2021-01-01T00:00:00.000Z");
        assert!(a.get("readme").is_none());
        assert_eq!(a["time"]["1.0.0"], "2020-01-01T00:00:00.000Z");
        assert!(a["versions"]["1.0.0"].get("readme").is_none());
        assert!(a["versions"]["1.0.0"].get("scripts").is_none());
        assert_eq!(a["versions"]["1.0.0"]["hasInstallScript"], true);
        assert_eq!(a["versions"]["1.1.0"]["dependencies"]["a"], "1");
        assert!(a["versions"]["1.1.0"].get("hasInstallScript").is_none());
    }

    /// Some upstreams (mirrors) send no `time.modified`; npm's registry always sends a
    /// top-level `modified` in the abbreviated form.
    #[test]
    fn abbreviated_has_modified_without_time_modified() {
        let mut v = doc_value();
        v["time"].as_object_mut().unwrap().remove("modified");
        let a = abbreviate(&Packument::from_value(&v).unwrap()).to_value();
        assert_eq!(a["modified"], "2021-01-01T00:00:00.000Z");
        v["time"]["1.1.0"] = json!("2022-02-02T00:00:00.000Z");
        let a = abbreviate(&Packument::from_value(&v).unwrap()).to_value();
        assert_eq!(a["modified"], "2022-02-02T00:00:00.000Z");
    }

    #[test]
    fn merge_keeps_cached_versions_the_upstream_dropped() {
        let mut up = doc_value();
        up["versions"].as_object_mut().unwrap().remove("1.0.0");
        up["time"].as_object_mut().unwrap().remove("1.0.0");
        let up = Packument::from_value(&up).unwrap();
        let merged = merge(Some(doc()), Some(up.clone()), |v| v == "1.0.0")
            .unwrap()
            .to_value();
        assert!(merged["versions"].get("1.0.0").is_some());
        assert_eq!(merged["time"]["1.0.0"], "2020-01-01T00:00:00.000Z");
        // Not cached: the upstream's word stands.
        let merged = merge(Some(doc()), Some(up), |_| false).unwrap().to_value();
        assert!(merged["versions"].get("1.0.0").is_none());
    }

    #[test]
    fn merge_of_a_vanished_package_keeps_only_cached_versions() {
        let merged = merge(Some(doc()), None, |v| v == "1.0.0")
            .unwrap()
            .to_value();
        let vs = merged["versions"].as_object().unwrap();
        assert_eq!(vs.keys().collect::<Vec<_>>(), vec!["1.0.0"]);
        assert_eq!(merged["dist-tags"]["latest"], "1.0.0");
        assert!(merged["dist-tags"].get("beta").is_none());
        assert!(merge(Some(doc()), None, |_| false).is_none());
        assert!(merge(None, None, |_| true).is_none());
    }

    #[test]
    fn dist_tags_repair_prefers_stable() {
        let mut v = doc_value();
        v["dist-tags"]["latest"] = json!("9.9.9");
        let mut d = Packument::from_value(&v).unwrap();
        repair_dist_tags(&mut d);
        let d = d.to_value();
        assert_eq!(d["dist-tags"]["latest"], "1.1.0");
        assert_eq!(d["dist-tags"]["beta"], "2.0.0-beta.1");
    }

    #[test]
    fn tarball_index_uses_canonical_files() {
        let idx = tarball_index(&name(), &doc());
        let e = &idx["utils-1.0.0.tgz"];
        assert_eq!(e.integrity.as_deref(), Some("sha512-aaa"));
        assert_eq!(
            idx["utils-2.0.0-beta.1.tgz"].upstream_url.as_deref(),
            Some("https://up.example/x.tgz")
        );
        assert_eq!(idx.len(), 3);
    }
}
