//! The import pipeline on a local store: bundles built here (signed with a test key), then
//! staged, verified and merged as `bundle import` does, minus the control plane.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use nproxy_data_plane::store::{BlobStore, Key, LocalStore, PutBody, PutMode};
use serde_json::json;
use sha1::Sha1;
use sha2::{Digest, Sha512};

use super::format::{self, Manifest, PackageEntry, VersionEntry};
use super::import::stage_verify_apply;
use super::trust::TrustedKey;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5u8; 32])
}

fn trusted(k: &SigningKey) -> Vec<TrustedKey> {
    let raw = k.verifying_key().to_bytes();
    vec![TrustedKey {
        raw,
        key_id: format::ed25519_key_id(&raw),
    }]
}

/// Versions of one package: (version, tarball bytes).
type Versions<'a> = &'a [(&'a str, &'a [u8])];

/// A bundle of `packages` (name → versions); `tamper` may change any member's bytes after
/// signing.
fn bundle(
    k: &SigningKey,
    packages: &[(&str, Versions<'_>)],
    tamper: impl Fn(&str, &mut Vec<u8>),
) -> Vec<u8> {
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    for (name, versions) in packages {
        let n = nproxy_core::names::PackageName::parse(name).unwrap();
        let mut vs = serde_json::Map::new();
        let mut time = serde_json::Map::new();
        let mut ves = Vec::new();
        for (v, bytes) in *versions {
            let sv = semver::Version::parse(v).unwrap();
            let integrity = format::sri_sha512(&Sha512::digest(bytes));
            vs.insert(
                v.to_string(),
                json!({"name": name, "version": v, "dist": {
                "integrity": integrity, "shasum": hex::encode(Sha1::digest(bytes)),
                "tarball": format!("http://exporter.test/{name}/-/x.tgz")}}),
            );
            time.insert(v.to_string(), json!("2020-01-01T00:00:00.000Z"));
            let member = format::tarball_member(&n, &sv);
            members.push((member.clone(), bytes.to_vec()));
            ves.push(VersionEntry {
                version: v.to_string(),
                integrity,
                tarball: member,
            });
        }
        let doc = json!({"name": name, "dist-tags": {"latest": versions[versions.len() - 1].0},
                         "versions": vs, "time": time});
        let bytes = serde_json::to_vec(&doc).unwrap();
        entries.push(PackageEntry {
            name: name.to_string(),
            packument: format::packument_member(&n),
            packument_sha512: hex::encode(Sha512::digest(&bytes)),
            internal: false,
            versions: ves,
        });
        members.push((format::packument_member(&n), bytes));
    }
    let manifest = serde_json::to_vec_pretty(&Manifest {
        format: format::FORMAT.into(),
        format_version: format::FORMAT_VERSION,
        created: "2026-01-01T00:00:00Z".into(),
        org: "exporter".into(),
        key_id: format::ed25519_key_id(&k.verifying_key().to_bytes()),
        packages: entries,
    })
    .unwrap();
    let sig = k
        .sign(format::signed_message(&manifest).as_bytes())
        .to_bytes()
        .to_vec();
    let mut all = vec![
        (format::MANIFEST.to_string(), manifest),
        (format::SIGNATURE.to_string(), sig),
    ];
    all.extend(members);
    let mut b = tar::Builder::new(Vec::new());
    for (p, mut d) in all {
        tamper(&p, &mut d);
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &p, &d[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn flip(d: &mut [u8]) {
    let i = d.len() / 2;
    d[i] ^= 1;
}

/// Every key in the store with its bytes.
async fn snapshot(store: &dyn BlobStore) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for k in store.list("").await.unwrap() {
        let (_, b) = nproxy_data_plane::store::get_bytes(store, &k)
            .await
            .unwrap()
            .unwrap();
        out.insert(k.as_str().to_string(), b.to_vec());
    }
    out
}

async fn import(store: &Arc<dyn BlobStore>, dir: &Path, bytes: &[u8]) -> anyhow::Result<String> {
    let f = dir.join(format!("b-{}.tar", nproxy_common::time::now_ms()));
    std::fs::write(&f, bytes).unwrap();
    let (_, applied) = stage_verify_apply(store.clone(), &f, &trusted(&key())).await?;
    Ok(format!(
        "new {} written {} present {} refused {:?}",
        applied.new_versions, applied.tarballs_written, applied.tarballs_present, applied.refused
    ))
}

const FXA: &[(&str, &[u8])] = &[("1.0.0", b"a-one"), ("2.0.0", b"a-two")];
const FXB: &[(&str, &[u8])] = &[("1.0.1", b"b-one")];

#[tokio::test(flavor = "multi_thread")]
async fn imports_merge_and_a_second_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(LocalStore::open(dir.path().join("s")).unwrap());
    let b = bundle(&key(), &[("fx-a", FXA), ("@fx/b", FXB)], |_, _| {});
    let r = import(&store, dir.path(), &b).await.unwrap();
    assert_eq!(r, "new 3 written 3 present 0 refused []");
    let first = snapshot(store.as_ref()).await;
    assert!(first.contains_key("public/tarballs/@fx/b/b-1.0.1.tgz"));
    assert!(first.contains_key("public/packument-meta/fx-a.json"));
    let again = import(&store, dir.path(), &b).await.unwrap();
    assert_eq!(again, "new 0 written 0 present 3 refused []");
    assert_eq!(
        snapshot(store.as_ref()).await,
        first,
        "same keys, same bytes"
    );
    // A later bundle with one more version of fx-a: merged, the stored ones kept.
    let b2 = bundle(&key(), &[("fx-a", &[("3.0.0", b"a-three")])], |_, _| {});
    assert_eq!(
        import(&store, dir.path(), &b2).await.unwrap(),
        "new 1 written 1 present 0 refused []"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&snapshot(store.as_ref()).await["public/packuments/fx-a.json"])
            .unwrap();
    let versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["1.0.0", "2.0.0", "3.0.0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_flipped_byte_refuses_the_whole_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(LocalStore::open(dir.path().join("s")).unwrap());
    for (member, want) in [
        ("tarballs/fx-a/fx-a-2.0.0.tgz", "fx-a@2.0.0"),
        ("packuments/@fx/b.json", "@fx/b"),
        ("manifest.json", "signature"),
        ("manifest.sig", "signature"),
    ] {
        let b = bundle(&key(), &[("fx-a", FXA), ("@fx/b", FXB)], |p, d| {
            if p == member {
                flip(d);
            }
        });
        let e = import(&store, dir.path(), &b)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("nothing was imported"),
            "{member}: {e}"
        );
        assert!(snapshot(store.as_ref()).await.is_empty(), "{member}");
    }
    let other = SigningKey::from_bytes(&[6u8; 32]);
    let b = bundle(&other, &[("fx-a", FXA)], |_, _| {});
    let e = import(&store, dir.path(), &b)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("signature"), "{e}");
    // Leftover staging files would be visible as disk use, not as keys: none either.
    let staging = std::fs::read_dir(store.staging_dir()).unwrap().count();
    assert_eq!(staging, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_stored_tarball_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(LocalStore::open(dir.path().join("s")).unwrap());
    let key2 = Key::parse("public/tarballs/fx-a/fx-a-2.0.0.tgz").unwrap();
    store
        .put(
            &key2,
            PutBody::Bytes(b"other".to_vec().into()),
            PutMode::CreateOnly,
        )
        .await
        .unwrap();
    let b = bundle(&key(), &[("fx-a", FXA), ("@fx/b", FXB)], |_, _| {});
    let r = import(&store, dir.path(), &b).await.unwrap();
    assert!(r.starts_with("new 1 written 1 present 0"), "{r}");
    assert!(r.contains("fx-a@2.0.0: a different tarball"), "{r}");
    let s = snapshot(store.as_ref()).await;
    assert_eq!(s["public/tarballs/fx-a/fx-a-2.0.0.tgz"], b"other");
    assert!(!s.contains_key("public/packuments/fx-a.json"));
    assert!(!s.contains_key("public/tarballs/fx-a/fx-a-1.0.0.tgz"));
    assert!(s.contains_key("public/packuments/@fx/b.json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_stored_packument_refuses_only_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(LocalStore::open(dir.path().join("s")).unwrap());
    let doc = Key::parse("public/packuments/fx-a.json").unwrap();
    store
        .put(
            &doc,
            PutBody::Bytes(b"{not json".to_vec().into()),
            PutMode::CreateOnly,
        )
        .await
        .unwrap();
    let b = bundle(&key(), &[("fx-a", FXA), ("@fx/b", FXB)], |_, _| {});
    let r = import(&store, dir.path(), &b).await.unwrap();
    assert!(r.starts_with("new 1 "), "{r}");
    assert!(r.contains("fx-a: the stored packument"), "{r}");
    let s = snapshot(store.as_ref()).await;
    assert_eq!(s["public/packuments/fx-a.json"], b"{not json");
    assert!(s.contains_key("public/packuments/@fx/b.json"));
}
