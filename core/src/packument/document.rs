//! `Packument`: a package document as raw JSON pieces, how it is parsed and written back, and
//! `repair_dist_tags`, which keeps its tags pointing at versions it has.
//!
//! A packument can be tens of MB, almost all of it per-version manifests that no transform
//! reads in full. So a document is held as raw JSON pieces: top-level fields and one raw
//! manifest per version. A transform parses only the few fields it touches, one version at
//! a time, which keeps memory near the document's own size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// JSON pieces by key: borrowed from the bytes a document was parsed from, or owned once a
/// transform rewrote them.
pub(super) type RawMap<'a> = IndexMap<String, Cow<'a, RawValue>>;

#[derive(Debug, thiserror::Error)]
pub enum PackumentError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`versions` is not an object")]
    Versions,
}

/// A packument as raw JSON pieces, borrowed from the bytes it was parsed from: parsing copies
/// no manifest, so a document costs its own bytes plus an index of them.
#[derive(Debug, Clone)]
pub struct Packument<'a> {
    /// Top-level fields in document order. The `versions` slot holds `null`; the manifests
    /// live in `versions` and are written back in that slot.
    pub(super) fields: RawMap<'a>,
    pub(super) versions: RawMap<'a>,
}

pub(super) fn raw(v: &impl Serialize) -> Cow<'static, RawValue> {
    // Serializing plain JSON values to JSON cannot fail.
    serde_json::value::to_raw_value(v).map_or_else(|_| null(), Cow::Owned)
}

pub(super) fn null() -> Cow<'static, RawValue> {
    Cow::Owned(RawValue::from_string("null".to_owned()).expect("`null` is JSON"))
}

/// A JSON object's members as borrowed raw pieces, in document order.
pub(super) fn borrowed_map(json: &str) -> Result<RawMap<'_>, serde_json::Error> {
    let map: IndexMap<String, &RawValue> = serde_json::from_str(json)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, Cow::Borrowed(v)))
        .collect())
}

impl<'a> Packument<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Packument<'a>, PackumentError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            PackumentError::Json(serde::de::Error::custom(format!("not UTF-8: {e}")))
        })?;
        let mut fields = borrowed_map(text)?;
        let versions = match fields.get_mut("versions") {
            Some(v) => {
                let Cow::Borrowed(raw) = *v else {
                    return Err(PackumentError::Versions);
                };
                let map = borrowed_map(raw.get()).map_err(|_| PackumentError::Versions)?;
                *v = null();
                map
            }
            None => RawMap::new(),
        };
        Ok(Packument { fields, versions })
    }

    /// Builds a document from a JSON value (tests and small documents).
    pub fn from_value(v: &Value) -> Result<Packument<'static>, PackumentError> {
        let bytes = serde_json::to_vec(v)?;
        Ok(Packument::parse(&bytes)?.into_owned())
    }

    /// The same document owning every piece, free of the bytes it was parsed from.
    pub fn into_owned(self) -> Packument<'static> {
        let own = |m: RawMap<'a>| -> RawMap<'static> {
            m.into_iter()
                .map(|(k, v)| (k, Cow::Owned(v.into_owned())))
                .collect()
        };
        Packument {
            fields: own(self.fields),
            versions: own(self.versions),
        }
    }

    /// Bytes `write_to` will produce, about: what a buffer for it should reserve.
    pub fn encoded_len(&self) -> usize {
        self.versions
            .values()
            .chain(self.fields.values())
            .map(|v| v.get().len() + 16)
            .sum::<usize>()
            + 64
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        // Writing into a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }

    /// Writes the document as JSON, piece by piece: a caller that compresses or hashes it
    /// on the way never holds the whole serialisation.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        self.write_mapped(out, |_, m| Some(Cow::Borrowed(m)))
    }

    /// `write_to` with each version's manifest passed through `map` on the way out (`None`
    /// leaves the version out): a transform of every manifest that never holds more than one
    /// rewritten manifest at a time.
    pub fn write_mapped<'m>(
        &'m self,
        out: &mut impl Write,
        mut map: impl FnMut(&str, &'m RawValue) -> Option<Cow<'m, RawValue>>,
    ) -> std::io::Result<()> {
        out.write_all(b"{")?;
        let mut wrote_versions = false;
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            write_key(out, k)?;
            if k == "versions" {
                write_versions(out, &self.versions, &mut map)?;
                wrote_versions = true;
            } else {
                out.write_all(v.get().as_bytes())?;
            }
        }
        if !wrote_versions {
            if !self.fields.is_empty() {
                out.write_all(b",")?;
            }
            write_key(out, "versions")?;
            write_versions(out, &self.versions, &mut map)?;
        }
        out.write_all(b"}")
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

fn write_key(out: &mut impl Write, k: &str) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, k)?;
    out.write_all(b":")
}

fn write_versions<'m>(
    out: &mut impl Write,
    versions: &'m RawMap<'_>,
    map: &mut impl FnMut(&str, &'m RawValue) -> Option<Cow<'m, RawValue>>,
) -> std::io::Result<()> {
    out.write_all(b"{")?;
    let mut first = true;
    for (k, v) in versions {
        let Some(v) = map(k, v) else {
            continue;
        };
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        write_key(out, k)?;
        out.write_all(v.get().as_bytes())?;
    }
    out.write_all(b"}")
}

/// Points every dist-tag at a version the document still has; `latest` falls back to the
/// highest remaining stable version (or the highest at all), other dangling tags are dropped.
pub fn repair_dist_tags(doc: &mut Packument<'_>) {
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
