//! The document as clients see it (`client_view`), and the judging of the whole documents
//! npm sends back for deprecate and one-version unpublish (`apply_client_document`): only
//! `deprecated` fields and removed versions are taken from them.

use serde_json::{json, Map, Value};

use crate::names::PackageName;
use crate::packument;

use super::unpublish::remove_versions;
use super::{bump_rev, obj_mut, DocError, OWN};

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
            // npm sends back what it was served: nproxy's URLs and fields clients never own.
            if let Some(Value::Object(d)) = m.get_mut("dist") {
                d.remove("tarball");
                if let Some(Value::Object(a)) = d.get_mut("attestations") {
                    a.remove("url");
                }
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
pub fn client_view(doc: &Value, base: &str, name: &PackageName) -> packument::Packument<'static> {
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
