//! Pure transformations of package documents ("packuments"): merging an upstream answer
//! into the copy nproxy holds, rewriting tarball URLs to nproxy's own, and deriving the
//! abbreviated install form. These run only when a document changes, never per request.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::names::{PackageName, TarballFile};

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

fn versions(doc: &Value) -> Option<&Map<String, Value>> {
    doc.get("versions").and_then(Value::as_object)
}

/// The tarball index of a document: canonical file name → where to fetch it and its hashes.
/// Versions whose key is not valid semver get no entry (they can't be addressed safely).
pub fn tarball_index(name: &PackageName, doc: &Value) -> HashMap<String, DistInfo> {
    let mut out = HashMap::new();
    let Some(vs) = versions(doc) else {
        return out;
    };
    for (v, manifest) in vs {
        let Ok(version) = semver::Version::parse(v) else {
            continue;
        };
        let dist = manifest.get("dist");
        let field = |k: &str| {
            dist.and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        out.insert(
            TarballFile::for_version(name, &version)
                .as_str()
                .to_string(),
            DistInfo {
                upstream_url: field("tarball"),
                integrity: field("integrity"),
                shasum: field("shasum"),
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
    held: Option<Value>,
    upstream: Option<Value>,
    keep: impl Fn(&str) -> bool,
) -> Option<Value> {
    let (mut base, held) = match (upstream, held) {
        (Some(up), held) => (up, held),
        (None, Some(held)) => {
            let mut base = held.clone();
            if let Some(vs) = base.get_mut("versions").and_then(Value::as_object_mut) {
                vs.clear();
            }
            (base, Some(held))
        }
        (None, None) => return None,
    };
    if let Some(held) = held {
        let held_versions = versions(&held).cloned().unwrap_or_default();
        let held_time = held.get("time").and_then(Value::as_object).cloned();
        let obj = base.as_object_mut()?;
        let vs = obj
            .entry("versions")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(vs) = vs {
            for (v, manifest) in held_versions {
                if !vs.contains_key(&v) && keep(&v) {
                    vs.insert(v, manifest);
                }
            }
        }
        if let Some(held_time) = held_time {
            let live: Vec<String> = versions(&base)
                .map(|vs| vs.keys().cloned().collect())
                .unwrap_or_default();
            if let Some(Value::Object(time)) = base
                .as_object_mut()
                .map(|o| o.entry("time").or_insert_with(|| Value::Object(Map::new())))
            {
                for v in live {
                    if !time.contains_key(&v) {
                        if let Some(t) = held_time.get(&v) {
                            time.insert(v, t.clone());
                        }
                    }
                }
            }
        }
    }
    if versions(&base).is_none_or(Map::is_empty) {
        return None;
    }
    repair_dist_tags(&mut base);
    Some(base)
}

/// Points every dist-tag at a version the document still has; `latest` falls back to the
/// highest remaining stable version (or the highest at all), other dangling tags are dropped.
pub fn repair_dist_tags(doc: &mut Value) {
    let present: Vec<semver::Version> = versions(doc)
        .map(|vs| {
            vs.keys()
                .filter_map(|v| semver::Version::parse(v).ok())
                .collect()
        })
        .unwrap_or_default();
    let has = |v: &str| versions(doc).is_some_and(|vs| vs.contains_key(v));
    let Some(tags) = doc.get("dist-tags").and_then(Value::as_object).cloned() else {
        return;
    };
    let mut fixed = Map::new();
    for (tag, v) in tags {
        if v.as_str().is_some_and(has) {
            fixed.insert(tag, v);
        }
    }
    if !fixed.contains_key("latest") {
        let best = present
            .iter()
            .filter(|v| v.pre.is_empty())
            .max()
            .or_else(|| present.iter().max());
        if let Some(best) = best {
            fixed.insert("latest".into(), Value::String(best.to_string()));
        }
    }
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("dist-tags".into(), Value::Object(fixed));
    }
}

/// Builds the URL nproxy serves a tarball at. `base` has no trailing slash.
pub fn tarball_url(base: &str, name: &PackageName, file: &TarballFile) -> String {
    // Scoped names keep the literal `/`: it is what npm's own registry puts in dist.tarball.
    format!("{base}/{}/-/{}", name.as_str(), file.as_str())
}

/// Rewrites every `dist.tarball` to point through nproxy, dropping versions that can't be
/// addressed (non-semver keys).
pub fn rewrite_tarballs(doc: &mut Value, base: &str, name: &PackageName) {
    let Some(vs) = doc.get_mut("versions").and_then(Value::as_object_mut) else {
        return;
    };
    vs.retain(|v, _| semver::Version::parse(v).is_ok());
    for (v, manifest) in vs.iter_mut() {
        let Ok(version) = semver::Version::parse(v) else {
            continue;
        };
        let url = tarball_url(base, name, &TarballFile::for_version(name, &version));
        if let Some(m) = manifest.as_object_mut() {
            let dist = m.entry("dist").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(dist) = dist {
                dist.insert("tarball".into(), Value::String(url));
            }
        }
    }
}

/// The abbreviated ("corgi") form. Keeps `time` so pnpm's minimum-release-age check needs no
/// second, full fetch.
pub fn abbreviate(doc: &Value) -> Value {
    let mut out = Map::new();
    for key in ["name", "dist-tags"] {
        if let Some(v) = doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let time = doc.get("time");
    if let Some(modified) = time.and_then(|t| t.get("modified")) {
        out.insert("modified".into(), modified.clone());
    }
    let mut vs_out = Map::new();
    if let Some(vs) = versions(doc) {
        for (v, manifest) in vs {
            let mut m = Map::new();
            for field in ABBREVIATED_VERSION_FIELDS {
                if let Some(x) = manifest.get(*field) {
                    m.insert((*field).into(), x.clone());
                }
            }
            if !m.contains_key("hasInstallScript") && has_install_script(manifest) {
                m.insert("hasInstallScript".into(), Value::Bool(true));
            }
            vs_out.insert(v.clone(), Value::Object(m));
        }
    }
    out.insert("versions".into(), Value::Object(vs_out));
    if let Some(t) = time {
        out.insert("time".into(), t.clone());
    }
    Value::Object(out)
}

fn has_install_script(manifest: &Value) -> bool {
    manifest
        .get("scripts")
        .and_then(Value::as_object)
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

    fn doc() -> Value {
        json!({
            "_id": "@acme/utils",
            "name": "@acme/utils",
            "readme": "long text",
            "dist-tags": {"latest": "1.1.0", "beta": "2.0.0-beta.1"},
            "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2021-01-01T00:00:00.000Z",
                     "1.0.0": "2020-01-01T00:00:00.000Z", "1.1.0": "2020-06-01T00:00:00.000Z",
                     "2.0.0-beta.1": "2021-01-01T00:00:00.000Z"},
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
            }
        })
    }

    fn name() -> PackageName {
        PackageName::parse("@acme/utils").unwrap()
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
        assert_eq!(
            d["versions"]["1.0.0"]["dist"]["tarball"],
            "http://127.0.0.1:1234/acme/@acme/utils/-/utils-1.0.0.tgz"
        );
        assert_eq!(d["versions"]["1.0.0"]["dist"]["integrity"], "sha512-aaa");
    }

    #[test]
    fn abbreviated_keeps_install_fields_and_time() {
        let a = abbreviate(&doc());
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

    #[test]
    fn merge_keeps_cached_versions_the_upstream_dropped() {
        let mut up = doc();
        up["versions"].as_object_mut().unwrap().remove("1.0.0");
        let merged = merge(Some(doc()), Some(up.clone()), |v| v == "1.0.0").unwrap();
        assert!(merged["versions"].get("1.0.0").is_some());
        assert_eq!(merged["time"]["1.0.0"], "2020-01-01T00:00:00.000Z");
        // Not cached: the upstream's word stands.
        let merged = merge(Some(doc()), Some(up), |_| false).unwrap();
        assert!(merged["versions"].get("1.0.0").is_none());
    }

    #[test]
    fn merge_of_a_vanished_package_keeps_only_cached_versions() {
        let merged = merge(Some(doc()), None, |v| v == "1.0.0").unwrap();
        let vs = merged["versions"].as_object().unwrap();
        assert_eq!(vs.keys().collect::<Vec<_>>(), vec!["1.0.0"]);
        assert_eq!(merged["dist-tags"]["latest"], "1.0.0");
        assert!(merged["dist-tags"].get("beta").is_none());
        assert!(merge(Some(doc()), None, |_| false).is_none());
        assert!(merge(None, None, |_| true).is_none());
    }

    #[test]
    fn dist_tags_repair_prefers_stable() {
        let mut d = doc();
        d["dist-tags"]["latest"] = json!("9.9.9");
        repair_dist_tags(&mut d);
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
