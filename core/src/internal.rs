//! Pure operations on an internal package's stored document: adding a published version,
//! removing versions, dist-tags, and judging the whole documents npm `PUT`s back for
//! deprecate and one-version unpublish (only `deprecated` fields and version removals are
//! accepted from them). I/O lives in `internal_store`.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::names::PackageName;
use crate::packument;
use crate::publish::Publish;

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

pub fn iso_now() -> String {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    iso_from_ms(secs as i64)
}

/// `2024-05-01T12:00:00.000Z` from Unix milliseconds (civil-from-days, no date crate).
pub fn iso_from_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

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

/// The signature nproxy stores with a version (Ed25519; kept out of `dist.signatures`, where
/// npm's verifier would choke on the key type).
#[derive(Debug, Clone)]
pub struct VersionSignature {
    pub key_id: String,
    pub signature_b64: String,
}

/// What nproxy signs for a version: the same message shape npm's registry signs.
pub fn signed_message(name: &PackageName, version: &str, integrity: &str) -> String {
    format!("{name}@{version}:{integrity}")
}

/// Adds a freshly published version. Fails if the version exists or existed before.
pub fn add_version(
    current: Option<&Value>,
    name: &PackageName,
    p: &Publish,
    sig: &VersionSignature,
    publisher: &str,
    now_iso: &str,
    publish_id: &str,
) -> Result<Value, DocError> {
    let v = p.version.to_string();
    let mut doc = current.cloned().unwrap_or_else(|| {
        json!({
            "_id": name.as_str(),
            "name": name.as_str(),
            "dist-tags": {},
            "versions": {},
            "time": {"created": now_iso},
        })
    });
    if is_tombstone(&doc) {
        // Publishing again after a whole-package unpublish: a new package that still
        // remembers every version number it ever had (checked just below).
        if let Some(own) = doc.get_mut(OWN).and_then(Value::as_object_mut) {
            own.remove("tombstone");
        }
        obj_mut(&mut doc, "time").remove("unpublished");
    }
    if doc["versions"].get(&v).is_some() {
        return Err(DocError::Conflict(format!(
            "{name}@{v} already exists; versions are immutable, publish a new one"
        )));
    }
    let count = doc["versions"].as_object().map_or(0, |m| m.len());
    if count >= crate::doc_bounds::MAX_VERSIONS {
        return Err(DocError::Invalid(format!(
            "{name} has {count} versions, the most one package may have"
        )));
    }
    let was_unpublished = doc
        .get(OWN)
        .and_then(|o| o.get("unpublished"))
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(v.as_str())));
    if was_unpublished {
        return Err(DocError::Conflict(format!(
            "{name}@{v} was published before and unpublished; a version number is never reused"
        )));
    }
    let mut manifest = p.manifest.clone();
    manifest.insert(
        "dist".into(),
        json!({
            "integrity": p.integrity,
            "shasum": p.shasum,
            // Rewritten to the client's public URL when served.
            "tarball": "",
        }),
    );
    manifest.insert("_npmUser".into(), json!({"name": publisher}));
    manifest.insert(
        OWN.into(),
        json!({
            "blob": p.sha512_hex,
            "signatures": [{"keyid": sig.key_id, "sig": sig.signature_b64, "alg": "ed25519"}],
            // Which publish (its audit hand-off) put this version here.
            "publish_id": publish_id,
        }),
    );
    obj_mut(&mut doc, "versions").insert(v.clone(), Value::Object(manifest));
    let time = obj_mut(&mut doc, "time");
    time.insert(v.clone(), json!(now_iso));
    time.insert("modified".into(), json!(now_iso));
    let tags = obj_mut(&mut doc, "dist-tags");
    for t in &p.dist_tags {
        tags.insert(t.clone(), json!(v));
    }
    if let Some(r) = &p.readme {
        doc["readme"] = r.clone();
    }
    if let Some(d) = &p.description {
        doc["description"] = d.clone();
    }
    bump_rev(&mut doc);
    Ok(doc)
}

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

pub fn set_dist_tag(current: &Value, tag: &str, version: &str) -> Result<Value, DocError> {
    if !crate::doc_bounds::valid_tag(tag) {
        return Err(DocError::Invalid(format!(
            "{tag:?} is not a valid dist-tag"
        )));
    }
    if current["versions"].get(version).is_none() {
        return Err(DocError::NotFound(format!(
            "version {version} does not exist"
        )));
    }
    let mut doc = current.clone();
    obj_mut(&mut doc, "dist-tags").insert(tag.to_string(), json!(version));
    bump_rev(&mut doc);
    Ok(doc)
}

pub fn remove_dist_tag(current: &Value, tag: &str) -> Result<Value, DocError> {
    if tag == "latest" {
        return Err(DocError::Invalid("the latest tag can't be removed".into()));
    }
    let mut doc = current.clone();
    if obj_mut(&mut doc, "dist-tags").remove(tag).is_none() {
        return Err(DocError::NotFound(format!(
            "dist-tag {tag:?} does not exist"
        )));
    }
    bump_rev(&mut doc);
    Ok(doc)
}

/// Applies a whole document sent back by npm (deprecate, one-version unpublish). Only two
/// kinds of change are taken from it: `versions[v].deprecated` (set, changed or removed),
/// and versions left out (unpublished). Anything else that differs is refused.
pub fn apply_client_document(
    current: &Value,
    sent: &Value,
    now_iso: &str,
) -> Result<(Value, Vec<String>, Vec<String>), DocError> {
    let cur_versions = current["versions"].as_object().cloned().unwrap_or_default();
    let sent_versions = sent
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| DocError::Invalid("the document has no versions object".into()))?;
    let mut deprecated_changes = Vec::new();
    let mut doc = current.clone();
    for (v, sent_m) in sent_versions {
        let cur_m = cur_versions.get(v).ok_or_else(|| {
            DocError::Invalid(format!("version {v} does not exist; publish adds versions"))
        })?;
        let strip = |m: &Value| {
            let mut m = m.as_object().cloned().unwrap_or_default();
            m.remove("deprecated");
            // npm sends back what it was served: nproxy's URL and fields clients never own.
            if let Some(Value::Object(d)) = m.get_mut("dist") {
                d.remove("tarball");
            }
            m.remove(OWN);
            m
        };
        if strip(sent_m) != strip(cur_m) {
            return Err(DocError::Invalid(format!(
                "only `deprecated` may change in an existing version; {v} differs elsewhere"
            )));
        }
        let new_dep = sent_m
            .get("deprecated")
            .filter(|d| d.as_str().is_some_and(|s| !s.is_empty()));
        if new_dep != cur_m.get("deprecated") {
            let m = obj_mut(&mut doc, "versions")
                .get_mut(v)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| DocError::Invalid(format!("version {v} vanished")))?;
            match new_dep {
                Some(d) => {
                    if !d.is_string() {
                        return Err(DocError::Invalid("`deprecated` must be a string".into()));
                    }
                    let len = d.as_str().map(str::len).unwrap_or(0);
                    if len > crate::doc_bounds::MAX_DEPRECATION_BYTES {
                        return Err(DocError::Invalid(format!(
                            "the deprecation message is {len} bytes; the limit is {}",
                            crate::doc_bounds::MAX_DEPRECATION_BYTES
                        )));
                    }
                    m.insert("deprecated".into(), d.clone());
                }
                None => {
                    m.remove("deprecated");
                }
            }
            deprecated_changes.push(v.clone());
        }
    }
    let removed: Vec<String> = cur_versions
        .keys()
        .filter(|v| !sent_versions.contains_key(*v))
        .cloned()
        .collect();
    check_unchanged_elsewhere(current, sent, &removed)?;
    if removed.is_empty() && deprecated_changes.is_empty() {
        // Nothing to change: the document (and its revision) stays as it is.
        return Ok((current.clone(), deprecated_changes, removed));
    }
    let doc = if removed.is_empty() {
        let mut d = doc;
        obj_mut(&mut d, "time").insert("modified".into(), json!(now_iso));
        bump_rev(&mut d);
        d
    } else {
        remove_versions(&doc, &removed, now_iso)?
    };
    Ok((doc, deprecated_changes, removed))
}

/// Outside `versions`, a whole document sent back may differ from the stored one only as a
/// removed version implies (npm's one-version unpublish drops that version's `time` entry
/// and moves the tags that pointed at it). Client bookkeeping (`_…` keys such as `_rev`,
/// `_attachments`, `_revisions`, `_cached`) is ignored; anything else that differs is refused.
fn check_unchanged_elsewhere(
    current: &Value,
    sent: &Value,
    removed: &[String],
) -> Result<(), DocError> {
    let refuse = |what: String| {
        Err(DocError::Invalid(format!(
            "{what} can't be changed by sending the document back; only `deprecated` and \
             removed versions are taken from it"
        )))
    };
    let empty = Map::new();
    let sent_obj = sent.as_object().unwrap_or(&empty);
    for (k, v) in sent_obj {
        if k.starts_with('_') || matches!(k.as_str(), "versions" | "time" | "dist-tags") {
            continue;
        }
        if current.get(k) != Some(v) {
            return refuse(format!("`{k}`"));
        }
    }
    let is_removed = |v: &str| removed.iter().any(|r| r == v);
    let cur_time = current["time"].as_object().unwrap_or(&empty);
    if let Some(time) = sent.get("time").and_then(Value::as_object) {
        for (k, v) in time {
            if matches!(k.as_str(), "modified" | "unpublished") || is_removed(k) {
                continue;
            }
            if cur_time.get(k) != Some(v) {
                return refuse(format!("`time.{k}`"));
            }
        }
    }
    let cur_tags = current["dist-tags"].as_object().unwrap_or(&empty);
    if let Some(tags) = sent.get("dist-tags").and_then(Value::as_object) {
        for (tag, v) in tags {
            let moved_by_removal = cur_tags
                .get(tag)
                .and_then(Value::as_str)
                .is_some_and(is_removed);
            if cur_tags.get(tag) != Some(v) && !moved_by_removal {
                return refuse(format!("dist-tag `{tag}`"));
            }
        }
        for (tag, target) in cur_tags {
            let gone_with_version = target.as_str().is_some_and(is_removed);
            if !tags.contains_key(tag) && !gone_with_version {
                return refuse(format!("dist-tag `{tag}`"));
            }
        }
    }
    Ok(())
}

/// The document as clients see it: tarball URLs through nproxy, nproxy's bookkeeping out of
/// the top level (signatures stay per version under `_nproxy`). `_rev` is always there, as
/// on npm's registry: pnpm 11 reads without `?write=true` and copies it into its writes.
pub fn client_view(doc: &Value, base: &str, name: &PackageName) -> packument::Packument {
    let mut d = doc.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove(OWN);
    }
    if let Some(vs) = d.get_mut("versions").and_then(Value::as_object_mut) {
        for m in vs.values_mut() {
            if let Some(own) = m.get_mut(OWN).and_then(Value::as_object_mut) {
                own.remove("blob");
                own.remove("publish_id");
            }
        }
    }
    let mut p = packument::Packument::from_value(&d).unwrap_or_else(|_| {
        packument::Packument::from_value(&json!({"name": name.as_str(), "versions": {}}))
            .unwrap_or_else(|_| unreachable!("a literal document parses"))
    });
    packument::rewrite_tarballs(&mut p, base, name);
    p
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
mod tests {
    use super::*;
    use crate::publish::tests::{payload, tgz};
    use crate::publish::validate;

    fn name() -> PackageName {
        PackageName::parse("@acme/utils").unwrap()
    }

    fn published(versions: &[&str]) -> Value {
        let mut doc: Option<Value> = None;
        for v in versions {
            let t = tgz(format!("{{\"v\":\"{v}\"}}").as_bytes());
            let p = validate(
                &name(),
                &serde_json::to_vec(&payload("@acme/utils", v, &t)).unwrap(),
            )
            .unwrap();
            let sig = VersionSignature {
                key_id: "SHA256:k".into(),
                signature_b64: "c2ln".into(),
            };
            doc = Some(
                add_version(
                    doc.as_ref(),
                    &name(),
                    &p,
                    &sig,
                    "ci",
                    "2024-01-01T00:00:00.000Z",
                    &format!("pub-{v}"),
                )
                .unwrap(),
            );
        }
        doc.unwrap()
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_from_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_from_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_from_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn publish_twice_conflicts_and_unpublished_numbers_are_not_reused() {
        let doc = published(&["1.0.0", "1.0.1"]);
        assert_eq!(doc["dist-tags"]["latest"], "1.0.1");
        assert!(rev(&doc).starts_with("2-"));
        let t = tgz(b"{}");
        let p = validate(
            &name(),
            &serde_json::to_vec(&payload("@acme/utils", "1.0.1", &t)).unwrap(),
        )
        .unwrap();
        let sig = VersionSignature {
            key_id: "k".into(),
            signature_b64: "s".into(),
        };
        assert!(matches!(
            add_version(Some(&doc), &name(), &p, &sig, "ci", "t", "p2"),
            Err(DocError::Conflict(_))
        ));
        let after = remove_versions(&doc, &["1.0.1".into()], "t").unwrap();
        assert_eq!(after["dist-tags"]["latest"], "1.0.0");
        assert!(after["versions"].get("1.0.1").is_none());
        let e = add_version(Some(&after), &name(), &p, &sig, "ci", "t", "p3").unwrap_err();
        assert!(
            matches!(&e, DocError::Conflict(m) if m.contains("never reused")),
            "{e}"
        );
    }

    #[test]
    fn deprecate_is_accepted_and_other_edits_are_refused() {
        let doc = published(&["1.0.0", "1.0.1"]);
        let base = "http://nproxy.test";
        let served = client_view(&doc, base, &name()).to_value();
        let mut sent = served.clone();
        sent["versions"]["1.0.0"]["deprecated"] = json!("use 1.0.1");
        let (d, changed, removed) = apply_client_document(&doc, &sent, "t").unwrap();
        assert_eq!(d["versions"]["1.0.0"]["deprecated"], "use 1.0.1");
        assert_eq!(changed, vec!["1.0.0"]);
        assert!(removed.is_empty());
        // Un-deprecate with an empty string.
        let mut undo = client_view(&d, base, &name()).to_value();
        undo["versions"]["1.0.0"]["deprecated"] = json!("");
        let (d2, _, _) = apply_client_document(&d, &undo, "t").unwrap();
        assert!(d2["versions"]["1.0.0"].get("deprecated").is_none());
        // Sneaking in another version's integrity change is refused.
        let mut evil = sent.clone();
        evil["versions"]["1.0.1"]["dist"]["integrity"] = json!("sha512-AAAA");
        assert!(matches!(
            apply_client_document(&doc, &evil, "t"),
            Err(DocError::Invalid(_))
        ));
        let mut evil = sent.clone();
        evil["versions"]["1.0.1"]["_nproxy"] = json!({"signatures": []});
        let ok_because_own_fields_are_ignored = apply_client_document(&doc, &evil, "t");
        let (d3, _, _) = ok_because_own_fields_are_ignored.unwrap();
        assert_eq!(
            d3["versions"]["1.0.1"]["_nproxy"], doc["versions"]["1.0.1"]["_nproxy"],
            "signatures are never taken from clients"
        );
        let mut evil = sent;
        evil["versions"]["1.0.1"]["scripts"] = json!({"postinstall": "curl evil"});
        assert!(apply_client_document(&doc, &evil, "t").is_err());
    }

    #[test]
    fn whole_package_unpublish_leaves_a_tombstone_that_keeps_numbers() {
        let doc = published(&["1.0.0", "1.0.1"]);
        let gone = tombstone(&doc, "2024-01-02T00:00:00.000Z");
        assert!(is_tombstone(&gone));
        assert!(gone["versions"].as_object().unwrap().is_empty());
        let integrity = doc["versions"]["1.0.0"]["dist"]["integrity"]
            .as_str()
            .unwrap();
        assert!(was_published(&gone, "1.0.0", integrity, "pub-1.0.0"));
        assert!(!was_published(&gone, "1.0.0", "sha512-other", "pub-1.0.0"));
        // A refused publish of the same number with the same bytes did not land.
        assert!(!was_published(&gone, "1.0.0", integrity, "a-later-publish"));
        assert_ne!(rev(&gone), rev(&doc));
        let sig = VersionSignature {
            key_id: "k".into(),
            signature_b64: "s".into(),
        };
        for (v, ok) in [("1.0.0", false), ("1.0.1", false), ("1.0.2", true)] {
            let body = serde_json::to_vec(&payload("@acme/utils", v, &tgz(b"other"))).unwrap();
            let p = validate(&name(), &body).unwrap();
            let r = add_version(
                Some(&gone),
                &name(),
                &p,
                &sig,
                "alice",
                "2024-01-03T00:00:00.000Z",
                "p5",
            );
            assert_eq!(r.is_ok(), ok, "{v}: {r:?}");
            if let Ok(d) = r {
                assert!(!is_tombstone(&d));
                // A second whole unpublish still remembers the first one's numbers.
                let again = tombstone(&d, "2024-01-04T00:00:00.000Z");
                let body =
                    serde_json::to_vec(&payload("@acme/utils", "1.0.0", &tgz(b"x"))).unwrap();
                let p = validate(&name(), &body).unwrap();
                assert!(add_version(Some(&again), &name(), &p, &sig, "a", "t", "p4").is_err());
            }
        }
    }

    #[test]
    fn other_changes_in_a_sent_document_are_refused() {
        let doc = published(&["1.0.0", "1.0.1"]);
        let base = "http://h/p";
        let view = client_view(&doc, base, &name()).to_value();
        // Unchanged: accepted, and nothing moves (not even the revision).
        let (same, dep, rem) = apply_client_document(&doc, &view, "t").unwrap();
        assert!(dep.is_empty() && rem.is_empty());
        assert_eq!(rev(&same), rev(&doc));
        for (what, edit) in [
            ("readme", json!({"readme": "changed"})),
            ("description", json!({"description": "changed"})),
            ("new field", json!({"homepage": "https://evil.example"})),
        ] {
            let mut sent = view.clone();
            for (k, v) in edit.as_object().unwrap() {
                sent[k] = v.clone();
            }
            assert!(apply_client_document(&doc, &sent, "t").is_err(), "{what}");
        }
        let mut sent = view.clone();
        sent["time"]["1.0.0"] = json!("1999-01-01T00:00:00.000Z");
        assert!(
            apply_client_document(&doc, &sent, "t").is_err(),
            "time of a kept version"
        );
        let mut sent = view.clone();
        sent["dist-tags"]["latest"] = json!("1.0.0");
        assert!(
            apply_client_document(&doc, &sent, "t").is_err(),
            "moving latest"
        );
        // npm's one-version unpublish: version, its time and the tag that pointed at it go.
        let mut sent = view.clone();
        sent["versions"].as_object_mut().unwrap().remove("1.0.1");
        sent["time"].as_object_mut().unwrap().remove("1.0.1");
        sent["dist-tags"]["latest"] = json!("1.0.0");
        sent["_cached"] = json!(true);
        let (d, _, rem) = apply_client_document(&doc, &sent, "t").unwrap();
        assert_eq!(rem, vec!["1.0.1".to_string()]);
        assert_eq!(d["dist-tags"]["latest"], "1.0.0");
    }

    #[test]
    fn one_version_unpublish_by_document() {
        let doc = published(&["1.0.0", "1.0.1"]);
        let mut sent = client_view(&doc, "http://x", &name()).to_value();
        sent["versions"].as_object_mut().unwrap().remove("1.0.1");
        let (d, _, removed) = apply_client_document(&doc, &sent, "t").unwrap();
        assert_eq!(removed, vec!["1.0.1"]);
        assert_eq!(d["dist-tags"]["latest"], "1.0.0");
    }

    #[test]
    fn dist_tags_and_views() {
        let doc = published(&["1.0.0", "1.0.1"]);
        let d = set_dist_tag(&doc, "beta", "1.0.0").unwrap();
        assert_eq!(d["dist-tags"]["beta"], "1.0.0");
        assert!(set_dist_tag(&doc, "1.x", "1.0.0").is_err());
        assert!(set_dist_tag(&doc, "beta", "9.9.9").is_err());
        let d = remove_dist_tag(&d, "beta").unwrap();
        assert!(d["dist-tags"].get("beta").is_none());
        assert!(remove_dist_tag(&d, "latest").is_err());
        let v = client_view(&doc, "http://h/p", &name()).to_value();
        assert!(v.get("_rev").is_some() && v.get("_nproxy").is_none());
        assert_eq!(
            v["versions"]["1.0.0"]["dist"]["tarball"],
            "http://h/p/@acme/utils/-/utils-1.0.0.tgz"
        );
        assert_eq!(
            v["versions"]["1.0.0"]["_nproxy"]["signatures"][0]["alg"],
            "ed25519"
        );
        assert!(v["versions"]["1.0.0"]["_nproxy"].get("blob").is_none());
        assert_eq!(blob_of(&doc, "1.0.0").map(|b| b.len()), Some(128));
    }
}
