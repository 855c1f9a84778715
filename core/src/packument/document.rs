//! `Packument`: a package document as raw JSON pieces, how it is parsed and written back, and
//! `repair_dist_tags`, which keeps its tags pointing at versions it has.
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

pub(super) type RawMap = IndexMap<String, Box<RawValue>>;

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
    pub(super) fields: RawMap,
    pub(super) versions: RawMap,
}

pub(super) fn raw(v: &impl Serialize) -> Box<RawValue> {
    // Serializing plain JSON values to JSON cannot fail.
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| null())
}

pub(super) fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("`null` is JSON")
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

    pub(super) fn field<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Option<T> {
        self.fields
            .get(key)
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }

    pub(super) fn set_field(&mut self, key: &str, value: &impl Serialize) {
        self.fields.insert(key.to_string(), raw(value));
    }

    pub(super) fn time(&self) -> Map<String, Value> {
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

/// A `time` entry: a string we want, or anything else we skip without allocating.
pub(super) struct IgnoredOr(pub(super) Option<String>);

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
