//! Tests of the document operations, on documents built by real publishes.

use serde_json::{json, Value};

use super::*;
use crate::names::PackageName;
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
            npm_key_id: "SHA256:npm".into(),
            npm_signature_b64: "TUVVQw==".into(),
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
        npm_key_id: "n".into(),
        npm_signature_b64: "ns".into(),
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
        npm_key_id: "n".into(),
        npm_signature_b64: "ns".into(),
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
            let body = serde_json::to_vec(&payload("@acme/utils", "1.0.0", &tgz(b"x"))).unwrap();
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
    // The npm-format signature is where npm's verifier looks for it.
    assert_eq!(
        v["versions"]["1.0.0"]["dist"]["signatures"],
        serde_json::json!([{"keyid": "SHA256:npm", "sig": "TUVVQw=="}])
    );
    assert!(v["versions"]["1.0.0"]["_nproxy"].get("blob").is_none());
    assert_eq!(blob_of(&doc, "1.0.0").map(|b| b.len()), Some(128));
}
