//! Tests of the document transforms on a small scoped package.

use serde_json::{json, Value};

use super::*;
use crate::names::PackageName;

fn doc_value() -> Value {
    json!({
        "_id": "@acme/utils",
        "name": "@acme/utils",
        "readme": "long text",
        "dist-tags": {"latest": "1.1.0", "beta": "2.0.0-beta.1"},
        "versions": {
            "1.0.0": {"name": "@acme/utils", "version": "1.0.0", "readme": "x",
                      "scripts": {"postinstall": "node x"},
                      "dist": {"tarball": "https://up.example/@acme/utils/-/utils-1.0.0.tgz",
                               "integrity": "sha512-aaa", "shasum": "abc"}},
            "1.1.0": {"name": "@acme/utils", "version": "1.1.0",
                      "dependencies": {"a": "1"},
                      "dist": {"tarball": "https://up.example/@acme/utils/-/utils-1.1.0.tgz",
                               "integrity": "sha512-bbb"}},
            "2.0.0-beta.1": {"name": "@acme/utils", "version": "2.0.0-beta.1",
                      "dist": {"tarball": "https://up.example/x.tgz"}}
        },
        "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2021-01-01T00:00:00.000Z",
                 "1.0.0": "2020-01-01T00:00:00.000Z", "1.1.0": "2020-06-01T00:00:00.000Z",
                 "2.0.0-beta.1": "2021-01-01T00:00:00.000Z"}
    })
}

fn doc() -> Packument<'static> {
    Packument::from_value(&doc_value()).unwrap()
}

fn name() -> PackageName {
    PackageName::parse("@acme/utils").unwrap()
}

#[test]
fn round_trips_and_keeps_field_order() {
    let d = doc();
    assert_eq!(d.to_value(), doc_value());
    let text = String::from_utf8(d.to_vec()).unwrap();
    let pos = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
    assert!(pos("dist-tags") < pos("versions") && pos("versions") < pos("time"));
}

#[test]
fn rejects_non_documents() {
    assert!(Packument::parse(b"[]").is_err());
    assert!(Packument::parse(b"{\"versions\": []}").is_err());
    assert!(Packument::parse(b"{\"versions\": {").is_err());
}

#[test]
fn accept_header_picks_the_form() {
    assert_eq!(
        Form::from_accept(Some(
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
        )),
        Form::Abbreviated
    );
    assert_eq!(Form::from_accept(Some("application/json")), Form::Full);
    assert_eq!(Form::from_accept(None), Form::Full);
}

#[test]
fn rewrites_tarballs_to_the_public_url() {
    let mut d = doc();
    rewrite_tarballs(&mut d, "http://127.0.0.1:1234/acme", &name());
    let v = d.to_value();
    assert_eq!(
        v["versions"]["1.0.0"]["dist"]["tarball"],
        "http://127.0.0.1:1234/acme/@acme/utils/-/utils-1.0.0.tgz"
    );
    assert_eq!(v["versions"]["1.0.0"]["dist"]["integrity"], "sha512-aaa");
    assert_eq!(
        v["versions"]["1.0.0"]["readme"], "x",
        "other fields untouched"
    );
}

#[test]
fn rewriting_while_writing_gives_the_bytes_of_rewriting_in_place() {
    let mut v = doc_value();
    // A version nothing can address is dropped either way.
    v["versions"]["not-semver"] = json!({"name": "@acme/utils"});
    v["versions"]["3.0.0"] = json!("not an object");
    let bytes = serde_json::to_vec(&v).unwrap();
    let base = "http://127.0.0.1:1234/acme";
    let mut in_place = Packument::parse(&bytes).unwrap();
    rewrite_tarballs(&mut in_place, base, &name());
    let borrowed = Packument::parse(&bytes).unwrap();
    let mut streamed = Vec::new();
    borrowed
        .write_mapped(&mut streamed, |v, m| {
            rewritten_manifest(v, m, base, &name()).map(std::borrow::Cow::Owned)
        })
        .unwrap();
    assert_eq!(
        String::from_utf8(streamed).unwrap(),
        String::from_utf8(in_place.to_vec()).unwrap()
    );
    let out = in_place.to_value();
    assert!(out["versions"].get("not-semver").is_none());
    assert!(out["versions"].get("3.0.0").is_none());
    assert_eq!(out["versions"].as_object().unwrap().len(), 3);
}

#[test]
fn a_document_that_is_not_utf8_is_an_error() {
    assert!(Packument::parse(b"{\"name\":\"\xff\"}").is_err());
}

#[test]
fn abbreviated_keeps_install_fields_and_time() {
    let a = abbreviate(&doc()).to_value();
    assert_eq!(a["name"], "@acme/utils");
    assert_eq!(a["modified"], "2021-01-01T00:00:00.000Z");
    assert!(a.get("readme").is_none());
    assert_eq!(a["time"]["1.0.0"], "2020-01-01T00:00:00.000Z");
    assert!(a["versions"]["1.0.0"].get("readme").is_none());
    assert!(a["versions"]["1.0.0"].get("scripts").is_none());
    assert_eq!(a["versions"]["1.0.0"]["hasInstallScript"], true);
    assert_eq!(a["versions"]["1.1.0"]["dependencies"]["a"], "1");
    assert!(a["versions"]["1.1.0"].get("hasInstallScript").is_none());
}

/// Some upstreams (mirrors) send no `time.modified`; npm's registry always sends a
/// top-level `modified` in the abbreviated form.
#[test]
fn abbreviated_has_modified_without_time_modified() {
    let mut v = doc_value();
    v["time"].as_object_mut().unwrap().remove("modified");
    let a = abbreviate(&Packument::from_value(&v).unwrap()).to_value();
    assert_eq!(a["modified"], "2021-01-01T00:00:00.000Z");
    v["time"]["1.1.0"] = json!("2022-02-02T00:00:00.000Z");
    let a = abbreviate(&Packument::from_value(&v).unwrap()).to_value();
    assert_eq!(a["modified"], "2022-02-02T00:00:00.000Z");
}

#[test]
fn merge_keeps_cached_versions_the_upstream_dropped() {
    let mut up = doc_value();
    up["versions"].as_object_mut().unwrap().remove("1.0.0");
    up["time"].as_object_mut().unwrap().remove("1.0.0");
    let up = Packument::from_value(&up).unwrap();
    let merged = merge(Some(doc()), Some(up.clone()), |v| v == "1.0.0")
        .unwrap()
        .to_value();
    assert!(merged["versions"].get("1.0.0").is_some());
    assert_eq!(merged["time"]["1.0.0"], "2020-01-01T00:00:00.000Z");
    // Not cached: the upstream's word stands.
    let merged = merge(Some(doc()), Some(up), |_| false).unwrap().to_value();
    assert!(merged["versions"].get("1.0.0").is_none());
}

#[test]
fn merge_of_a_vanished_package_keeps_only_cached_versions() {
    let merged = merge(Some(doc()), None, |v| v == "1.0.0")
        .unwrap()
        .to_value();
    let vs = merged["versions"].as_object().unwrap();
    assert_eq!(vs.keys().collect::<Vec<_>>(), vec!["1.0.0"]);
    assert_eq!(merged["dist-tags"]["latest"], "1.0.0");
    assert!(merged["dist-tags"].get("beta").is_none());
    assert!(merge(Some(doc()), None, |_| false).is_none());
    assert!(merge(None, None, |_| true).is_none());
}

#[test]
fn dist_tags_repair_prefers_stable() {
    let mut v = doc_value();
    v["dist-tags"]["latest"] = json!("9.9.9");
    let mut d = Packument::from_value(&v).unwrap();
    repair_dist_tags(&mut d);
    let d = d.to_value();
    assert_eq!(d["dist-tags"]["latest"], "1.1.0");
    assert_eq!(d["dist-tags"]["beta"], "2.0.0-beta.1");
}

#[test]
fn tarball_index_uses_canonical_files() {
    let idx = tarball_index(&name(), &doc());
    let e = &idx["utils-1.0.0.tgz"];
    assert_eq!(e.integrity.as_deref(), Some("sha512-aaa"));
    assert_eq!(
        idx["utils-2.0.0-beta.1.tgz"]
            .upstream_url(&name(), "utils-2.0.0-beta.1.tgz")
            .as_deref(),
        Some("https://up.example/x.tgz")
    );
    assert_eq!(idx.len(), 3);
}

#[test]
fn tarball_index_gives_back_every_upstream_url_exactly() {
    let mut v = doc_value();
    let urls = [
        (
            "1.0.0",
            "https://reg.example/npm/@acme/utils/-/utils-1.0.0.tgz",
        ),
        (
            "1.1.0",
            "https://reg.example/npm/@acme/utils/-/utils-1.1.0.tgz",
        ),
        // Not the conventional shape: kept as given.
        ("2.0.0-beta.1", "https://cdn.example/blobs/abc.tgz"),
    ];
    for (version, url) in urls {
        v["versions"][version]["dist"]["tarball"] = json!(url);
    }
    let d = Packument::from_value(&v).unwrap();
    let idx = tarball_index(&name(), &d);
    for (version, url) in urls {
        let file = format!("utils-{version}.tgz");
        assert_eq!(
            idx[file.as_str()].upstream_url(&name(), &file).as_deref(),
            Some(url)
        );
    }
}

#[test]
fn attestation_urls_point_at_nproxy_and_signatures_are_kept() {
    let mut v = doc_value();
    let sigs = json!([{"keyid": "SHA256:up", "sig": "MEUC"}]);
    v["versions"]["1.0.0"]["dist"]["signatures"] = sigs.clone();
    v["versions"]["1.0.0"]["dist"]["attestations"] = json!({
        "url": "https://upstream.example/-/npm/v1/attestations/@acme/utils@1.0.0",
        "provenance": {"predicateType": "https://slsa.dev/provenance/v1"}
    });
    let bytes = serde_json::to_vec(&v).unwrap();
    let mut d = Packument::parse(&bytes).unwrap();
    rewrite_tarballs(&mut d, "http://127.0.0.1:1234/acme", &name());
    let out = d.to_value();
    let dist = &out["versions"]["1.0.0"]["dist"];
    assert_eq!(
        dist["attestations"]["url"],
        "http://127.0.0.1:1234/acme/-/npm/v1/attestations/@acme/utils@1.0.0"
    );
    assert_eq!(
        dist["attestations"]["provenance"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    // Signed over name, version and integrity only: untouched, they still verify.
    assert_eq!(dist["signatures"], sigs);
    assert!(out["versions"]["1.1.0"]["dist"]
        .get("attestations")
        .is_none());
}
