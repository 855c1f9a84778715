//! Dist-tags of an internal package: set one on an existing version, remove one (never
//! `latest`).

use serde_json::{json, Value};

use super::{bump_rev, obj_mut, DocError};

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
