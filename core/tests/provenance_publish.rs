//! `npm publish --provenance` payloads: the `.sigstore` attachment is accepted only when its
//! statement is about the published version and tarball.

use base64::Engine;
use nproxy_core::names::PackageName;
use nproxy_core::publish::{sri_sha512, validate};
use serde_json::{json, Value};
use sha1::Digest;

fn tgz() -> Vec<u8> {
    // A gzip stream of one tar header block and its end: enough for the format checks.
    let mut tar = vec![0u8; 512];
    let path = b"package/package.json";
    tar[..path.len()].copy_from_slice(path);
    tar[100..108].copy_from_slice(b"0000644\0");
    tar[124..136].copy_from_slice(b"00000000000\0");
    tar[136..148].copy_from_slice(b"00000000000\0");
    tar[156] = b'0';
    tar[257..263].copy_from_slice(b"ustar\0");
    tar[148..156].copy_from_slice(b"        ");
    let sum: u32 = tar.iter().map(|b| u32::from(*b)).sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    gz.finish().expect("gzip")
}

fn bundle(subject: &str, sha512_hex: &str) -> String {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject, "digest": {"sha512": sha512_hex}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {}
    });
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "dsseEnvelope": {
            "payload": base64::engine::general_purpose::STANDARD.encode(statement.to_string()),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "MEUC", "keyid": ""}]
        }
    })
    .to_string()
}

fn payload(extra: Option<(&str, String)>) -> (Value, String) {
    let tarball = tgz();
    let (integrity, hex) = sri_sha512(&tarball);
    let shasum = hex::encode(sha1::Sha1::digest(&tarball));
    let mut v = json!({
        "_id": "@acme/lib", "name": "@acme/lib",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": "@acme/lib", "version": "1.0.0",
            "dist": {"integrity": integrity, "shasum": shasum, "tarball": "http://x/y.tgz"}}},
        "_attachments": {"@acme/lib-1.0.0.tgz": {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(&tarball),
            "length": tarball.len()
        }}
    });
    if let Some((file, data)) = extra {
        v["_attachments"][file] = json!({
            "content_type": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "length": data.len(),
            "data": data,
        });
    }
    (v, hex)
}

#[test]
fn a_matching_provenance_bundle_is_kept_byte_for_byte() {
    let name = PackageName::parse("@acme/lib").unwrap();
    let (_, hex) = payload(None);
    let b = bundle("pkg:npm/%40acme/lib@1.0.0", &hex);
    let (v, _) = payload(Some(("@acme/lib-1.0.0.sigstore", b.clone())));
    let p = validate(&name, &serde_json::to_vec(&v).unwrap()).expect("valid");
    let prov = p.provenance.expect("provenance kept");
    assert_eq!(prov.bundle.as_ref(), b.as_bytes());
    assert_eq!(prov.predicate_type, "https://slsa.dev/provenance/v1");
    let (plain, _) = payload(None);
    let p = validate(&name, &serde_json::to_vec(&plain).unwrap()).expect("valid");
    assert!(p.provenance.is_none());
}

#[test]
fn provenance_about_other_bytes_or_versions_is_refused() {
    let name = PackageName::parse("@acme/lib").unwrap();
    let (_, hex) = payload(None);
    for (file, data, why) in [
        (
            "@acme/lib-1.0.0.sigstore",
            bundle("pkg:npm/%40acme/lib@1.0.0", &"00".repeat(64)),
            "does not match",
        ),
        (
            "@acme/lib-1.0.0.sigstore",
            bundle("pkg:npm/%40acme/lib@2.0.0", &hex),
            "does not match",
        ),
        ("@acme/lib-1.0.0.sigstore", "not json".into(), "not a JSON"),
        (
            "@acme/lib-9.9.9.sigstore",
            bundle("pkg:npm/%40acme/lib@1.0.0", &hex),
            "unexpected attachment",
        ),
    ] {
        let (v, _) = payload(Some((file, data)));
        let err = validate(&name, &serde_json::to_vec(&v).unwrap()).expect_err(why);
        assert!(err.0.contains(why), "{why}: {}", err.0);
    }
}
