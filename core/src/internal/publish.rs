//! Publishing a version into an internal package's document: the manifest as stored, with
//! nproxy's signature and bookkeeping, and the refusals that keep versions immutable (a
//! number that exists, or existed and was unpublished, is never published again).

use serde_json::{json, Value};

use crate::names::PackageName;
use crate::publish::Publish;

use super::unpublish::is_tombstone;
use super::{bump_rev, obj_mut, DocError, OWN};

/// The signatures nproxy stores with a version: its own Ed25519 one (in `_nproxy`, kept out
/// of `dist.signatures`, where npm's verifier would choke on the key type) and the
/// npm-format ECDSA P-256 one (`dist.signatures`, checked by `npm audit signatures`).
#[derive(Debug, Clone)]
pub struct VersionSignature {
    pub key_id: String,
    pub signature_b64: String,
    pub npm_key_id: String,
    pub npm_signature_b64: String,
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
    let mut dist = json!({
        "integrity": p.integrity,
        "shasum": p.shasum,
        // Rewritten to the client's public URL when served.
        "tarball": "",
    });
    // Empty only from a control plane older than npm-format keys (a rolling upgrade).
    if !sig.npm_key_id.is_empty() {
        dist["signatures"] = json!([{"keyid": sig.npm_key_id, "sig": sig.npm_signature_b64}]);
    }
    if let Some(prov) = &p.provenance {
        // The URL is nproxy's own, filled in when served (like `tarball`).
        dist["attestations"] = json!({
            "url": "",
            "provenance": {"predicateType": prov.predicate_type},
        });
    }
    manifest.insert("dist".into(), dist);
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
