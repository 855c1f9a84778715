//! Attestations (Sigstore bundles of in-toto statements) and the one check nproxy can make
//! of them without Sigstore's trust roots: that they are about this very package version,
//! i.e. their statement's subject is `pkg:npm/<name>@<version>` with the sha512 of the
//! tarball nproxy serves. That is the check npm makes before verifying the bundle itself
//! (`EATTESTATIONSUBJECT`), so a bundle that fails it would only break `npm audit
//! signatures`; one that passes is kept byte for byte and verified by npm against Sigstore.

use base64::Engine;
use serde_json::Value;

use crate::names::PackageName;

/// The largest attestations document or provenance bundle nproxy keeps (real ones are
/// 5–20 KiB).
pub const MAX_ATTESTATIONS_BYTES: usize = 1024 * 1024;

/// npm's package URL for a version (`npa.toPurl`): a leading `@` is percent-encoded.
pub fn purl(name: &PackageName, version: &str) -> String {
    let n = name.as_str();
    match n.strip_prefix('@') {
        Some(rest) => format!("pkg:npm/%40{rest}@{version}"),
        None => format!("pkg:npm/{n}@{version}"),
    }
}

/// The lower-case hex sha512 in an SRI string (`sha512-<base64>`, possibly among others).
pub fn sha512_hex_of_integrity(integrity: &str) -> Option<String> {
    integrity
        .split_whitespace()
        .find_map(|h| h.strip_prefix("sha512-"))
        .and_then(|b64| {
            // npm's SRI may carry `?options`; the digest ends before them.
            let b64 = b64.split('?').next().unwrap_or(b64);
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        })
        .filter(|d| d.len() == 64)
        .map(hex::encode)
}

/// Checks one Sigstore bundle: its DSSE payload is an in-toto statement whose subject names
/// this version with this sha512. Returns the statement's predicate type.
pub fn check_bundle(
    bundle: &Value,
    name: &PackageName,
    version: &str,
    sha512_hex: &str,
) -> Result<String, String> {
    let payload = bundle
        .pointer("/dsseEnvelope/payload")
        .and_then(Value::as_str)
        .ok_or("the bundle has no dsseEnvelope.payload")?;
    let statement = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| "the bundle's payload is not base64".to_string())?;
    let statement: Value = serde_json::from_slice(&statement)
        .map_err(|_| "the bundle's payload is not a JSON statement".to_string())?;
    let want = purl(name, version);
    let subjects = statement["subject"]
        .as_array()
        .ok_or("the statement has no subject")?;
    let matches = subjects.iter().any(|s| {
        s["name"].as_str() == Some(want.as_str())
            && s.pointer("/digest/sha512")
                .and_then(Value::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case(sha512_hex))
    });
    if !matches {
        return Err(format!(
            "its subject is not {want} with the sha512 of the tarball"
        ));
    }
    statement["predicateType"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the statement has no predicateType".to_string())
}

/// Checks an attestations document (`{"attestations": [{predicateType, bundle}]}`, what
/// `/-/npm/v1/attestations/<name>@<version>` answers): at least one, every bundle about this
/// version and tarball, each entry's declared predicate type its statement's.
pub fn check_document(
    doc: &Value,
    name: &PackageName,
    version: &str,
    sha512_hex: &str,
) -> Result<(), String> {
    let list = doc["attestations"]
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("the document lists no attestations")?;
    for (i, a) in list.iter().enumerate() {
        let predicate = check_bundle(&a["bundle"], name, version, sha512_hex)
            .map_err(|e| format!("attestation {i}: {e}"))?;
        if a["predicateType"].as_str() != Some(predicate.as_str()) {
            return Err(format!(
                "attestation {i}: its predicateType is not its statement's"
            ));
        }
    }
    Ok(())
}

/// A `npm publish --provenance` bundle nproxy keeps with the version.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The bundle's JSON, byte for byte as the client sent it.
    pub bundle: bytes::Bytes,
    pub predicate_type: String,
}

/// The `--provenance` attachment of a publish: npm sends the bundle as a raw JSON string
/// (not base64).
pub fn provenance_attachment(
    att: &Value,
    name: &PackageName,
    version: &str,
    sha512_hex: &str,
) -> Result<Provenance, String> {
    let data = att
        .get("data")
        .and_then(Value::as_str)
        .ok_or("the provenance attachment has no data")?;
    if data.len() > MAX_ATTESTATIONS_BYTES {
        return Err(format!(
            "the provenance bundle is {} bytes; the limit is {MAX_ATTESTATIONS_BYTES}",
            data.len()
        ));
    }
    let bundle: Value = serde_json::from_str(data)
        .map_err(|_| "the provenance attachment is not a JSON Sigstore bundle".to_string())?;
    let predicate_type = check_bundle(&bundle, name, version, sha512_hex)
        .map_err(|e| format!("the provenance bundle does not match this publish: {e}"))?;
    Ok(Provenance {
        bundle: bytes::Bytes::copy_from_slice(data.as_bytes()),
        predicate_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(subject_name: &str, sha: &str) -> Value {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": subject_name, "digest": {"sha512": sha}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {}
        });
        json!({"dsseEnvelope": {
            "payload": base64::engine::general_purpose::STANDARD.encode(statement.to_string()),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "x", "keyid": ""}]
        }})
    }

    #[test]
    fn purls_encode_the_scope_at() {
        let scoped = PackageName::parse("@acme/lib").unwrap();
        assert_eq!(purl(&scoped, "1.0.0"), "pkg:npm/%40acme/lib@1.0.0");
        let plain = PackageName::parse("left-pad").unwrap();
        assert_eq!(purl(&plain, "1.0.0-rc.1"), "pkg:npm/left-pad@1.0.0-rc.1");
    }

    #[test]
    fn integrity_digest_is_hex() {
        let (sri, hex) = crate::publish::sri_sha512(b"abc");
        assert_eq!(sha512_hex_of_integrity(&sri).as_deref(), Some(hex.as_str()));
        assert_eq!(
            sha512_hex_of_integrity(&format!("sha1-xyz {sri}")).as_deref(),
            Some(hex.as_str())
        );
        assert_eq!(sha512_hex_of_integrity("sha1-abc"), None);
        assert_eq!(sha512_hex_of_integrity("sha512-bm90IDY0IGJ5dGVz"), None);
    }

    #[test]
    fn bundles_must_be_about_this_version_and_tarball() {
        let n = PackageName::parse("@acme/lib").unwrap();
        let sha = "ab".repeat(64);
        let good = bundle("pkg:npm/%40acme/lib@1.0.0", &sha);
        assert_eq!(
            check_bundle(&good, &n, "1.0.0", &sha).unwrap(),
            "https://slsa.dev/provenance/v1"
        );
        assert!(check_bundle(&good, &n, "1.0.1", &sha).is_err());
        assert!(check_bundle(&good, &n, "1.0.0", &"cd".repeat(64)).is_err());
        let other = PackageName::parse("@acme/other").unwrap();
        assert!(check_bundle(&good, &other, "1.0.0", &sha).is_err());
        assert!(check_bundle(&json!({}), &n, "1.0.0", &sha).is_err());
        let doc = json!({"attestations": [
            {"predicateType": "https://slsa.dev/provenance/v1", "bundle": good}
        ]});
        assert!(check_document(&doc, &n, "1.0.0", &sha).is_ok());
        let mut lying = doc.clone();
        lying["attestations"][0]["predicateType"] = json!("https://example/other");
        assert!(check_document(&lying, &n, "1.0.0", &sha).is_err());
        let mixed = json!({"attestations": [
            doc["attestations"][0].clone(),
            {"predicateType": "https://slsa.dev/provenance/v1",
             "bundle": bundle("pkg:npm/%40acme/lib@1.0.0", &"ef".repeat(64))}
        ]});
        assert!(check_document(&mixed, &n, "1.0.0", &sha).is_err());
        assert!(check_document(&json!({"attestations": []}), &n, "1.0.0", &sha).is_err());
    }
}
