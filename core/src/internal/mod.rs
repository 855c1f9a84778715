//! Pure operations on an internal package's stored document: adding a published version,
//! removing versions, dist-tags, and judging the whole documents npm `PUT`s back for
//! deprecate and one-version unpublish (only `deprecated` fields and version removals are
//! accepted from them). I/O lives in the data plane's `internal/store.rs`.
//!
//! Where things are: this file holds what every operation shares (`DocError`, the
//! `_nproxy` bookkeeping key, revisions, where a version's bytes are); `publish` adds a
//! version, `unpublish` removes versions or the whole package (and remembers what was
//! there), `dist_tags` moves tags, `client` is the document as clients see it and judges
//! what they send back, `time` writes the ISO timestamps documents carry.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

mod client;
mod dist_tags;
mod publish;
mod time;
mod unpublish;

pub use client::{apply_client_document, client_view};
pub use dist_tags::{remove_dist_tag, set_dist_tag};
pub use publish::{add_version, signed_message, VersionSignature};
pub use time::{iso_from_ms, iso_now};
pub use unpublish::{is_tombstone, remove_versions, take_orphan, tombstone, was_published};

/// Why a change to a package document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
}

/// nproxy's own bookkeeping inside a document (never taken from clients).
const OWN: &str = "_nproxy";

fn obj_mut<'a>(doc: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !doc.get(key).is_some_and(Value::is_object) {
        doc[key] = json!({});
    }
    match doc.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just made it an object"),
    }
}

/// A new `_rev`: a counter and a hash of the content, as CouchDB-style clients expect.
fn bump_rev(doc: &mut Value) {
    let n = doc
        .get("_rev")
        .and_then(Value::as_str)
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    if let Some(o) = doc.as_object_mut() {
        o.remove("_rev");
    }
    let h = hex::encode(Sha256::digest(doc.to_string().as_bytes()));
    doc["_rev"] = Value::String(format!("{n}-{}", &h[..32]));
}

pub fn rev(doc: &Value) -> &str {
    doc.get("_rev").and_then(Value::as_str).unwrap_or("")
}

/// The blob (content address) of a version's tarball.
pub fn blob_of(doc: &Value, version: &str) -> Option<String> {
    doc["versions"]
        .get(version)?
        .get(OWN)?
        .get("blob")?
        .as_str()
        .filter(|h| h.len() == 128 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
