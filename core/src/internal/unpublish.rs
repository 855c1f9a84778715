//! Unpublishing: removing versions (one-version unpublish) and whole packages (which leave
//! a tombstone), and what is remembered of them: every version number the package ever had,
//! so none is reused, which publish created each removed version (for the audit hand-off),
//! and the blobs left to delete.

use serde_json::{json, Value};

use super::{blob_of, bump_rev, obj_mut, DocError, OWN};

/// Removes versions, remembering them so their numbers are never reused, and repairs tags.
pub fn remove_versions(
    current: &Value,
    versions: &[String],
    now_iso: &str,
) -> Result<Value, DocError> {
    let mut doc = current.clone();
    for v in versions {
        let blob = blob_of(&doc, v);
        let Some(removed) = obj_mut(&mut doc, "versions").remove(v) else {
            return Err(DocError::NotFound(format!("version {v} does not exist")));
        };
        remember_publish(&mut doc, v, &removed);
        if let Some(b) = blob {
            // Remembered until npm's DELETE of the tarball removes the bytes.
            let own = obj_mut(&mut doc, OWN);
            let orphans = own.entry("orphan_blobs").or_insert_with(|| json!({}));
            if let Value::Object(o) = orphans {
                o.insert(v.clone(), json!(b));
            }
        }
        obj_mut(&mut doc, "time").remove(v);
        let own = obj_mut(&mut doc, OWN);
        let list = own.entry("unpublished").or_insert_with(|| json!([]));
        if let Value::Array(a) = list {
            a.push(json!(v));
        }
    }
    obj_mut(&mut doc, "time").insert("modified".into(), json!(now_iso));
    let present: Vec<String> = doc["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let tags = obj_mut(&mut doc, "dist-tags");
    tags.retain(|_, v| v.as_str().is_some_and(|v| present.iter().any(|p| p == v)));
    if !tags.contains_key("latest") {
        let best = present
            .iter()
            .filter_map(|v| semver::Version::parse(v).ok())
            .filter(|v| v.pre.is_empty())
            .max()
            .or_else(|| {
                present
                    .iter()
                    .filter_map(|v| semver::Version::parse(v).ok())
                    .max()
            });
        if let Some(b) = best {
            tags.insert("latest".into(), json!(b.to_string()));
        }
    }
    bump_rev(&mut doc);
    Ok(doc)
}

/// What identifies the publish that created a version: its hand-off id, and its integrity.
fn publish_record(manifest: &Value) -> Value {
    json!({
        "publish_id": manifest.get(OWN).and_then(|o| o.get("publish_id")).cloned().unwrap_or(Value::Null),
        "integrity": manifest["dist"].get("integrity").cloned().unwrap_or(Value::Null),
    })
}

/// Remembers which publish created a removed version, so the audit hand-off of that publish
/// can still tell it landed (see `outbox`).
fn remember_publish(doc: &mut Value, version: &str, manifest: &Value) {
    let record = publish_record(manifest);
    let own = obj_mut(doc, OWN);
    let gone = own.entry("gone").or_insert_with(|| json!({}));
    if let Value::Object(m) = gone {
        m.insert(version.to_string(), record);
    }
}

/// Whether the publish `publish_id` (of `version` with `integrity`) landed: the version is
/// there from that publish, or was there and has been unpublished since. A later publish
/// refused for the same number (even with the same bytes) does not count.
pub fn was_published(doc: &Value, version: &str, integrity: &str, publish_id: &str) -> bool {
    let matches = |record: &Value| {
        let id_ok = match record["publish_id"].as_str() {
            Some(id) => id == publish_id,
            // Versions stored before publish ids existed: the integrity decides.
            None => true,
        };
        id_ok && record["integrity"].as_str() == Some(integrity)
    };
    doc["versions"]
        .get(version)
        .is_some_and(|m| matches(&publish_record(m)))
        || doc
            .get(OWN)
            .and_then(|o| o.get("gone"))
            .and_then(|g| g.get(version))
            .is_some_and(matches)
}

/// What a whole-package unpublish leaves behind: no versions, no tags, and the list of
/// every version number the package ever had, so none of them is ever published again
/// with other bytes (installs that locked the old bytes must never get different ones).
pub fn tombstone(current: &Value, now_iso: &str) -> Value {
    let mut gone: Vec<Value> = current
        .get(OWN)
        .and_then(|o| o.get("unpublished"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let live: Vec<String> = current["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for v in &live {
        if !gone.iter().any(|g| g.as_str() == Some(v)) {
            gone.push(json!(v));
        }
    }
    let gone_publishes = {
        let mut g = current
            .get(OWN)
            .and_then(|o| o.get("gone"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        for v in &live {
            g[v] = publish_record(&current["versions"][v]);
        }
        g
    };
    let mut doc = json!({
        "_id": current.get("_id").cloned().unwrap_or(Value::Null),
        "name": current.get("name").cloned().unwrap_or(Value::Null),
        "dist-tags": {},
        "versions": {},
        "time": {
            "created": current["time"].get("created").cloned().unwrap_or_else(|| json!(now_iso)),
            "modified": now_iso,
            "unpublished": {"time": now_iso, "versions": live},
        },
        OWN: {"unpublished": gone, "gone": gone_publishes, "tombstone": true},
    });
    if let Some(r) = current.get("_rev") {
        doc["_rev"] = r.clone();
    }
    bump_rev(&mut doc);
    doc
}

/// Whether a stored document is what a whole-package unpublish left (reads see no package).
pub fn is_tombstone(doc: &Value) -> bool {
    doc.get(OWN)
        .and_then(|o| o.get("tombstone"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Forgets the blob of an unpublished version; returns the document and the blob to delete.
pub fn take_orphan(current: &Value, version: &str) -> (Value, Option<String>) {
    let mut doc = current.clone();
    let blob = obj_mut(&mut doc, OWN)
        .get_mut("orphan_blobs")
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(version))
        .and_then(|b| b.as_str().map(str::to_string));
    if blob.is_some() {
        bump_rev(&mut doc);
    }
    (doc, blob)
}
