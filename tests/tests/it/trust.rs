//! Issue 13's acceptance ("npm-native trust"): registry signatures npm itself verifies
//! (the upstream's and the org's own, across a key rotation, with the upstream down, and
//! failing for exactly what was tampered with in storage), provenance attestations
//! (proxied, kept, refused when they lie, published with internal packages), and trusted
//! publishing (a CI job's OIDC id token exchanged for a short-lived publish token, with the
//! real npm and directly).
//!
//! Written ahead of the implementation; what it assumes of the servers and the CLI:
//! - `nproxyctl -o json key list --org X` lists `algorithm` `ed25519` and `ecdsa-p256`
//!   keys; an `ecdsa-p256` key's `key_id` is npm's key id and its `public_key` the base64
//!   DER SPKI; `key rotate` retires the active key of both algorithms and creates new ones.
//! - `GET /-/npm/v1/keys` (per org) = the upstream's keys as the upstream serves them + the
//!   org's `ecdsa-p256` keys (retired ones with `expires`, ISO 8601, = their retirement).
//! - `nproxyctl trust add --org acme --issuer <url> --package '@acme/*' --claim k=v …`.
//! - `NPROXY_TRUSTED_PUBLISHING_TOKEN_TTL_SECS` sets the minted tokens' lifetime.
//! - The audit event of a minted token is `token.created` with `details.via` =
//!   `"trusted-publishing"` and `details.repository` = the id token's `repository`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use nproxy_core::names::PackageName;
use nproxy_data_plane::store::{get_bytes, BlobStore, Key, LocalStore, PutBody, PutMode};
use nproxy_tests::clients::{Client, Project};
use nproxy_tests::eventually;
use nproxy_tests::fixtures::{
    publish_payload, publish_payload_with_provenance, FixturePackage, SLSA_PROVENANCE_V1,
};
use nproxy_tests::npm_keys::{keyid_of_spki_b64, signed_message, verify_npm_signature};
use nproxy_tests::oidc::{Issuer, LOOPBACK_AUDIENCE};
use nproxy_tests::verify::{all_ok, npm_verify_signatures};
use serde_json::{json, Value};

use crate::control_plane::Stack;
use crate::support::{blocking, raw_http, sri_sha512};

/// A request with an optional bearer; the status and the JSON body (`Null` if none).
async fn send(method: &str, url: &str, token: Option<&str>, body: Option<Vec<u8>>) -> (u16, Value) {
    let mut req = raw_http()
        .request(method.parse().expect("method"), url)
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let code = res.status().as_u16();
    let bytes = res.bytes().await.unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    send("GET", url, token, None).await
}

/// `name` as it appears in a packument URL (`@scope%2fname`).
fn escaped(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

/// The org's signing keys, as `nproxyctl -o json key list` prints them.
fn org_keys(s: &Stack, org: &str) -> Vec<Value> {
    s.ctl(&["-o", "json", "key", "list", "--org", org])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn keys_of<'a>(keys: &'a [Value], algorithm: &str, status: &str) -> Vec<&'a Value> {
    keys.iter()
        .filter(|k| k["algorithm"] == algorithm && k["status"] == status)
        .collect()
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// The key ids a `/-/npm/v1/keys` answer lists.
fn keyids(doc: &Value) -> BTreeSet<String> {
    doc["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k["keyid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn key_entry<'a>(doc: &'a Value, keyid: &str) -> &'a Value {
    doc["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["keyid"] == keyid))
        .unwrap_or_else(|| panic!("no key {keyid} in {doc}"))
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → Unix milliseconds.
fn parse_iso_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').filter_map(|x| x.parse().ok()).collect();
    if d.len() != 3 || t.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((((days * 24 + t[0]) * 60 + t[1]) * 60 + t[2]) * 1000 + ms)
}

#[test]
fn iso_times_parse() {
    assert_eq!(parse_iso_ms("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        parse_iso_ms("2024-02-29T12:34:56.789Z"),
        Some(1_709_210_096_789)
    );
    assert_eq!(parse_iso_ms("2000-03-01T00:00:00Z"), Some(951_868_800_000));
    assert_eq!(parse_iso_ms("yesterday"), None);
}

/// The control plane's id of an org.
fn org_id(s: &Stack, org: &str) -> String {
    str_of(&s.ctl(&["-o", "json", "org", "settings", org]).json()["org_id"])
}

/// The data planes' blob store (the stack's local folder), opened as they open it.
fn store(s: &Stack) -> LocalStore {
    LocalStore::open(s.dir.path().join("store")).expect("open the stack's store")
}

async fn read_stored_packument(store: &LocalStore, org_id: &str, name: &str) -> (Key, Value) {
    let n = PackageName::parse(name).expect("name");
    let key = Key::internal_packument(org_id, &n).expect("key");
    let (_, bytes) = get_bytes(store, &key)
        .await
        .expect("read the store")
        .unwrap_or_else(|| panic!("{name} is not stored at {key}"));
    (key, serde_json::from_slice(&bytes).expect("stored json"))
}

/// Rewrites an internal package's stored document through the store (as anyone with write
/// access to the bucket could).
async fn tamper_packument(s: &Stack, org_id: &str, name: &str, edit: impl FnOnce(&mut Value)) {
    let store = store(s);
    let (key, mut doc) = read_stored_packument(&store, org_id, name).await;
    edit(&mut doc);
    store
        .put(
            &key,
            PutBody::Bytes(Bytes::from(serde_json::to_vec(&doc).expect("json"))),
            PutMode::Overwrite,
        )
        .await
        .expect("write the store");
}

/// Flips one byte in the middle of a stored internal tarball (same length).
async fn tamper_tarball(s: &Stack, org_id: &str, name: &str, version: &str) {
    let store = store(s);
    let (_, doc) = read_stored_packument(&store, org_id, name).await;
    let blob = nproxy_core::internal::blob_of(&doc, version)
        .unwrap_or_else(|| panic!("no blob recorded for {name}@{version}"));
    let n = PackageName::parse(name).expect("name");
    let key = Key::internal_blob(org_id, &n, &blob).expect("key");
    let (_, bytes) = get_bytes(&store, &key)
        .await
        .expect("read the store")
        .unwrap_or_else(|| panic!("no tarball at {key}"));
    let mut v = bytes.to_vec();
    let mid = v.len() / 2;
    v[mid] ^= 0x5a;
    store
        .put(&key, PutBody::Bytes(Bytes::from(v)), PutMode::Overwrite)
        .await
        .expect("write the store");
}

/// Installs `project` with npm (panics with npm's output if it fails).
async fn npm_install(project: Project) -> Project {
    blocking(move || {
        let r = project.install(Client::Npm);
        assert!(r.ok, "npm install failed:\n{}", r.output);
        project
    })
    .await
}

/// `npm publish` of a generated `name@version` (panics with npm's output if it fails).
async fn npm_publish(project: Project, name: &'static str, version: &'static str) -> Project {
    blocking(move || {
        let r = project.publish(name, version);
        assert!(r.ok, "npm publish {name}@{version} failed:\n{}", r.output);
        project
    })
    .await
}

/// Checks that `name@version`'s served `dist.signatures` is exactly one valid signature by
/// the key `keyid` (`spki`: its base64 DER SPKI).
fn assert_signed_by(doc: &Value, name: &str, version: &str, keyid: &str, spki: &str) {
    let dist = &doc["versions"][version]["dist"];
    let sigs = dist["signatures"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}@{version} has no dist.signatures: {dist}"));
    assert_eq!(sigs.len(), 1, "{name}@{version}: {dist}");
    assert_eq!(sigs[0]["keyid"], keyid, "{name}@{version}: {dist}");
    let message = signed_message(name, version, &str_of(&dist["integrity"]));
    assert!(
        verify_npm_signature(spki, &message, &str_of(&sigs[0]["sig"])),
        "{name}@{version}: the signature does not verify over {message:?}"
    );
}

const PUBLIC_IDS: [&str; 5] = [
    "fx-a@2.0.0",
    "fx-a@1.1.0",
    "@fx/b@1.0.1",
    "fx-c@1.0.0",
    "fx-tool@1.0.0",
];

/// npm's verifier accepts every package installed through nproxy (public ones signed by the
/// upstream, internal ones by the org), still after a key rotation; with the store tampered
/// with, exactly the tampered packages fail; the keys survive the upstream going away.
#[tokio::test(flavor = "multi_thread")]
async fn npm_verifies_signatures_through_nproxy_across_rotation_and_tampering() {
    // A package with a dependency that nests (`fx-tool` → `fx-a@^1`, the project → `fx-a@^2`).
    let tool = FixturePackage::new("fx-tool").version("1.0.0", &[("fx-a", "^1.0.0")], 300);
    let s = Stack::start_with(&[], vec![tool]).await;
    let (_, token) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let acme = org_id(&s, "acme");
    let dp = s.data_plane("dp", &[]).await;
    let keys_url = |base: &str| format!("{base}/-/npm/v1/keys");
    let upstream_keyid = s.registry.keyid();
    let upstream_entry = s.registry.keys_document()["keys"][0].clone();

    // One active key of each algorithm; the npm-format one in npm's key id format.
    let keys = org_keys(&s, "acme");
    assert_eq!(keys_of(&keys, "ed25519", "active").len(), 1, "{keys:?}");
    let ecdsa = keys_of(&keys, "ecdsa-p256", "active");
    assert_eq!(ecdsa.len(), 1, "{keys:?}");
    let first_id = str_of(&ecdsa[0]["key_id"]);
    let first_spki = str_of(&ecdsa[0]["public_key"]);
    assert_eq!(keyid_of_spki_b64(&first_spki), Some(first_id.clone()));

    // The keys endpoint: the upstream's key as the upstream serves it, and the org's.
    let (code, doc) = get(&keys_url(&dp.url()), Some(&token)).await;
    assert_eq!(code, 200, "{doc}");
    assert_eq!(keyids(&doc), set(&[&upstream_keyid, &first_id]), "{doc}");
    assert_eq!(key_entry(&doc, &upstream_keyid), &upstream_entry);
    let own = key_entry(&doc, &first_id);
    assert_eq!(own["keytype"], "ecdsa-sha2-nistp256", "{own}");
    assert_eq!(own["scheme"], "ecdsa-sha2-nistp256", "{own}");
    assert_eq!(own["key"], first_spki.as_str(), "{own}");
    assert!(own["expires"].is_null(), "{own}");
    let fetched = s.registry.count("GET", "/-/npm/v1/keys");
    assert!(fetched >= 1, "the upstream's keys come from the upstream");
    let (code, again) = get(&keys_url(&dp.url()), Some(&token)).await;
    assert_eq!((code, &again), (200, &doc));
    assert_eq!(
        s.registry.count("GET", "/-/npm/v1/keys"),
        fetched,
        "the upstream's keys are cached"
    );

    // An internal package published with npm carries the org's npm-format signature.
    let publisher = Project::new(&s.dir.path().join("publisher"), &dp.url(), &[]);
    publisher.set_token(&token);
    let publisher = npm_publish(publisher, "@acme/lib", "1.0.0").await;
    let (code, lib) = get(
        &format!("{}/{}", dp.url(), escaped("@acme/lib")),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200, "{lib}");
    assert_signed_by(&lib, "@acme/lib", "1.0.0", &first_id, &first_spki);

    let mut deps = vec![
        ("fx-a", "^2.0.0"),
        ("fx-tool", "^1.0.0"),
        ("fx-c", "^1.0.0"),
        ("@acme/lib", "^1.0.0"),
    ];
    let consumer = Project::new(&s.dir.path().join("consumer"), &dp.url(), &deps);
    consumer.set_token(&token);
    let consumer = npm_install(consumer).await;
    let got = npm_verify_signatures(&dp.url(), Some(&token), &consumer.dir).await;
    let mut want: Vec<&str> = PUBLIC_IDS.to_vec();
    want.push("@acme/lib@1.0.0");
    assert_eq!(got, all_ok(want.iter().copied()));

    // Rotation: both algorithms' keys retired, new ones active.
    s.ctl(&["key", "rotate", "--org", "acme"]);
    let keys = org_keys(&s, "acme");
    for alg in ["ed25519", "ecdsa-p256"] {
        assert_eq!(keys_of(&keys, alg, "active").len(), 1, "{alg}: {keys:?}");
        assert_eq!(keys_of(&keys, alg, "retired").len(), 1, "{alg}: {keys:?}");
    }
    let second = keys_of(&keys, "ecdsa-p256", "active")[0].clone();
    let second_id = str_of(&second["key_id"]);
    let second_spki = str_of(&second["public_key"]);
    assert_ne!(second_id, first_id);
    let retired = keys_of(&keys, "ecdsa-p256", "retired")[0].clone();
    assert_eq!(retired["key_id"], first_id.as_str());
    let retired_at = retired["retired_at_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("no retired_at_ms: {retired}"));
    let (doc, _) = eventually(
        "the keys endpoint lists the new key beside the retired one",
        Duration::from_secs(20),
        || async {
            let (code, doc) = get(&keys_url(&dp.url()), Some(&token)).await;
            (code == 200 && keyids(&doc) == set(&[&upstream_keyid, &first_id, &second_id]))
                .then_some(doc)
        },
    )
    .await;
    let old = key_entry(&doc, &first_id);
    let expires = parse_iso_ms(&str_of(&old["expires"]))
        .unwrap_or_else(|| panic!("expires is not an ISO-8601 time: {old}"));
    assert!(
        (expires - retired_at).abs() <= 1000,
        "expires {expires} ms vs retired at {retired_at} ms"
    );
    assert_eq!(key_entry(&doc, &second_id)["key"], second_spki.as_str());
    assert!(key_entry(&doc, &second_id)["expires"].is_null());

    // New versions are signed with the new key; the old version keeps its signature.
    let publisher = npm_publish(publisher, "@acme/lib", "1.0.1").await;
    let _publisher = npm_publish(publisher, "@acme/tools", "1.0.0").await;
    let (_, lib) = get(
        &format!("{}/{}", dp.url(), escaped("@acme/lib")),
        Some(&token),
    )
    .await;
    assert_signed_by(&lib, "@acme/lib", "1.0.0", &first_id, &first_spki);
    assert_signed_by(&lib, "@acme/lib", "1.0.1", &second_id, &second_spki);
    let (_, tools) = get(
        &format!("{}/{}", dp.url(), escaped("@acme/tools")),
        Some(&token),
    )
    .await;
    assert_signed_by(&tools, "@acme/tools", "1.0.0", &second_id, &second_spki);

    // A project with both versions of @acme/lib (one through an alias) and the new package.
    deps.retain(|(n, _)| *n != "@acme/lib");
    deps.extend([
        ("@acme/lib", "^1.0.1"),
        ("lib-old", "npm:@acme/lib@1.0.0"),
        ("@acme/tools", "^1.0.0"),
    ]);
    let consumer = Project::new(&s.dir.path().join("consumer-2"), &dp.url(), &deps);
    consumer.set_token(&token);
    let consumer = npm_install(consumer).await;
    let mut want: Vec<&str> = PUBLIC_IDS.to_vec();
    want.extend(["@acme/lib@1.0.0", "@acme/lib@1.0.1", "@acme/tools@1.0.0"]);
    let got = npm_verify_signatures(&dp.url(), Some(&token), &consumer.dir).await;
    assert_eq!(got, all_ok(want.iter().copied()));

    // Tampering 1: another integrity in the stored document of @acme/tools@1.0.0 (the
    // signature no longer matches). A fresh data plane holds nothing in memory.
    tamper_packument(&s, &acme, "@acme/tools", |d| {
        d["versions"]["1.0.0"]["dist"]["integrity"] =
            Value::String(sri_sha512(b"some other tarball"));
    })
    .await;
    let fresh = s.data_plane("dp-fresh-1", &[]).await;
    let got = npm_verify_signatures(&fresh.url(), Some(&token), &consumer.dir).await;
    let failed = |got: &BTreeMap<String, String>| -> BTreeSet<String> {
        got.iter()
            .filter(|(_, v)| v.as_str() != "ok")
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        set(&want),
        "{got:?}"
    );
    assert_eq!(failed(&got), set(&["@acme/tools@1.0.0"]), "{got:?}");
    assert_ne!(got["@acme/tools@1.0.0"], "missing", "{got:?}");

    // Tampering 2: one byte of @acme/lib@1.0.0's stored tarball (npm: EINTEGRITY).
    tamper_tarball(&s, &acme, "@acme/lib", "1.0.0").await;
    let fresh = s.data_plane("dp-fresh-2", &[]).await;
    let got = npm_verify_signatures(&fresh.url(), Some(&token), &consumer.dir).await;
    assert_eq!(
        failed(&got),
        set(&["@acme/tools@1.0.0", "@acme/lib@1.0.0"]),
        "{got:?}"
    );
    assert_ne!(got["@acme/lib@1.0.0"], "missing", "{got:?}");
    assert_eq!(got["@acme/lib@1.0.1"], "ok", "{got:?}");

    // The upstream goes away: its keys are still served, by the running data plane and by
    // a data plane started after it went away.
    s.registry.stop();
    let every = set(&[&upstream_keyid, &first_id, &second_id]);
    let (code, doc) = get(&keys_url(&dp.url()), Some(&token)).await;
    assert_eq!((code, keyids(&doc)), (200, every.clone()), "{doc}");
    assert_eq!(key_entry(&doc, &upstream_keyid), &upstream_entry);
    let fresh = s.data_plane("dp-fresh-3", &[]).await;
    let (code, doc) = get(&keys_url(&fresh.url()), Some(&token)).await;
    assert_eq!((code, keyids(&doc)), (200, every), "{doc}");
    assert_eq!(key_entry(&doc, &upstream_keyid), &upstream_entry);
}

/// Provenance attestations: the upstream's proxied, kept and refused when they lie; an
/// internal publish's provenance bundle checked, stored and served to the org.
#[tokio::test(flavor = "multi_thread")]
async fn attestations_are_proxied_kept_checked_and_published() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    // fx-a@1.1.0's attestation names other bytes than its tarball.
    s.registry.mismatch_attestation("fx-a", "1.1.0");
    let dp = s.data_plane("dp", &[]).await;
    let base = dp.url();
    let att_url = |spec: &str| format!("{base}/-/npm/v1/attestations/{spec}");

    // The packument: attestations at nproxy's address, the upstream's signatures untouched.
    let (code, doc) = get(&format!("{base}/fx-c"), Some(&token)).await;
    assert_eq!(code, 200, "{doc}");
    let dist = &doc["versions"]["1.0.0"]["dist"];
    assert_eq!(
        dist["attestations"]["url"],
        att_url("fx-c@1.0.0").as_str(),
        "{dist}"
    );
    assert_eq!(
        dist["attestations"]["provenance"]["predicateType"],
        SLSA_PROVENANCE_V1
    );
    let upstream_doc = s.registry.served_packument("fx-c").expect("fixture");
    assert_eq!(
        dist["signatures"],
        upstream_doc["versions"]["1.0.0"]["dist"]["signatures"]
    );
    let (_, b) = get(&format!("{base}/@fx%2fb"), Some(&token)).await;
    let b_url = str_of(&b["versions"]["1.0.1"]["dist"]["attestations"]["url"]);
    assert!(
        b_url.starts_with(&format!("{base}/-/npm/v1/attestations/")),
        "{b_url}"
    );

    // Proxied once, then answered from the copy.
    let want_c = s.registry.attestations("fx-c", "1.0.0").expect("fixture");
    for _ in 0..2 {
        let (code, got) = get(&att_url("fx-c@1.0.0"), Some(&token)).await;
        assert_eq!((code, &got), (200, &want_c));
    }
    assert_eq!(s.registry.attestation_requests("fx-c", "1.0.0"), 1);
    let want_b = s.registry.attestations("@fx/b", "1.0.1").expect("fixture");
    for spec in ["@fx/b@1.0.1", "@fx%2fb@1.0.1"] {
        let (code, got) = get(&att_url(spec), Some(&token)).await;
        assert_eq!((code, &got), (200, &want_b), "{spec}");
    }
    assert_eq!(s.registry.attestation_requests("@fx/b", "1.0.1"), 1);

    // An attestation whose subject is not the tarball: 502, never served.
    let (code, body) = get(&att_url("fx-a@1.1.0"), Some(&token)).await;
    assert_eq!(code, 502, "{body}");
    assert!(body["error"].is_string(), "{body}");

    // Internal: a publish with a provenance bundle (npm --provenance's attachment).
    let (put, _, bundle) = publish_payload_with_provenance("@acme/prov", "1.0.0", 100, None);
    let (code, body) = send(
        "PUT",
        &format!("{base}/{}", escaped("@acme/prov")),
        Some(&token),
        Some(put),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, doc) = get(&format!("{base}/{}", escaped("@acme/prov")), Some(&token)).await;
    assert_eq!(code, 200, "{doc}");
    let dist = &doc["versions"]["1.0.0"]["dist"];
    assert_eq!(
        dist["attestations"]["provenance"]["predicateType"], SLSA_PROVENANCE_V1,
        "{dist}"
    );
    let own_url = str_of(&dist["attestations"]["url"]);
    assert!(
        own_url.starts_with(&format!("{base}/-/npm/v1/attestations/")),
        "{own_url}"
    );
    let want_own =
        json!({"attestations": [{"predicateType": SLSA_PROVENANCE_V1, "bundle": bundle}]});
    let (code, got) = get(&own_url, Some(&token)).await;
    assert_eq!((code, &got), (200, &want_own));
    for spec in ["@acme/prov@1.0.0", "@acme%2fprov@1.0.0"] {
        let (code, got) = get(&att_url(spec), Some(&token)).await;
        assert_eq!((code, &got), (200, &want_own), "{spec}");
    }
    assert_eq!(
        get(&own_url, None).await.0,
        401,
        "internal: a token is needed"
    );

    // A bundle whose subject is other bytes: 400, nothing stored.
    let (put, _, _) =
        publish_payload_with_provenance("@acme/prov-bad", "1.0.0", 100, Some(b"other bytes"));
    let (code, body) = send(
        "PUT",
        &format!("{base}/{}", escaped("@acme/prov-bad")),
        Some(&token),
        Some(put),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (code, _) = get(
        &format!("{base}/{}", escaped("@acme/prov-bad")),
        Some(&token),
    )
    .await;
    assert_eq!(code, 404);
    assert_ne!(
        get(&att_url("@acme/prov-bad@1.0.0"), Some(&token)).await.0,
        200
    );
    let (put, _, _) =
        publish_payload_with_provenance("@acme/prov", "1.0.1", 100, Some(b"other bytes"));
    let (code, body) = send(
        "PUT",
        &format!("{base}/{}", escaped("@acme/prov")),
        Some(&token),
        Some(put),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (_, doc) = get(&format!("{base}/{}", escaped("@acme/prov")), Some(&token)).await;
    assert!(doc["versions"].get("1.0.1").is_none(), "{doc}");
    assert!(
        s.registry
            .requests()
            .iter()
            .all(|r| !r.path.contains("acme")),
        "internal packages never reach the upstream"
    );

    // The upstream goes away: the copies are served, the lie still is not.
    s.registry.stop();
    let (code, got) = get(&att_url("fx-c@1.0.0"), Some(&token)).await;
    assert_eq!((code, &got), (200, &want_c));
    let (code, got) = get(&att_url("@fx%2fb@1.0.1"), Some(&token)).await;
    assert_eq!((code, &got), (200, &want_b));
    let (code, body) = get(&att_url("fx-a@1.1.0"), Some(&token)).await;
    assert_ne!(code, 200, "{body}");
}

/// Audit events of tokens minted by trusted publishing.
fn trusted_publishing_tokens(s: &Stack) -> Vec<Value> {
    s.ctl(&[
        "-o",
        "json",
        "audit",
        "list",
        "--org",
        "acme",
        "--type",
        "token.created",
    ])
    .stdout
    .lines()
    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    .filter(|e| e["details"]["via"] == "trusted-publishing")
    .collect()
}

/// Trusted publishing: the real npm publishes from a (simulated) GitHub Actions job with no
/// stored token; the exchange refuses every bad id token; the minted token is good for one
/// package, for a few seconds.
#[tokio::test(flavor = "multi_thread")]
async fn trusted_publishing_with_npm_and_the_exchange_rules() {
    let ttl_secs = 5;
    let s = Stack::start(&[(
        "NPROXY_TRUSTED_PUBLISHING_TOKEN_TTL_SECS",
        &ttl_secs.to_string(),
    )])
    .await;
    let (_, reader) = s.org_and_token(false, &["proxy"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    s.ctl(&["org", "create", "beta", "--display-name", "Beta"]);
    s.ctl(&["org", "settings", "beta", "--internal-scopes", "@beta"]);
    let beta = str_of(
        &s.ctl(&[
            "-o", "json", "token", "create", "--org", "beta", "--name", "b", "--scope", "publish",
        ])
        .json()["secret"],
    );
    let issuer = Issuer::start().await;
    s.ctl(&[
        "trust",
        "add",
        "--org",
        "acme",
        "--issuer",
        &issuer.issuer(),
        "--package",
        "@acme/*",
        "--claim",
        "repository=acme/app",
        "--claim",
        "environment=release",
    ]);
    // Orgs by path: npm's registry is `<host>/acme/`, the exchange is at the host's root.
    let dp = s.data_plane("dp", &[("NPROXY_ORG_MODE", "path")]).await;
    let registry = format!("{}/acme/", dp.url());
    let pkg_url = |name: &str| format!("{registry}{}", escaped(name));
    let (body, _) = publish_payload("@beta/x", "1.0.0", 10);
    let (code, res) = send(
        "PUT",
        &format!("{}/beta/{}", dp.url(), escaped("@beta/x")),
        Some(&beta),
        Some(body),
    )
    .await;
    assert_eq!(code, 201, "{res}");

    // The CI job: GitHub Actions' variables, a .npmrc with only the registry, no token.
    let ci = Project::new(&s.dir.path().join("ci"), &registry, &[]);
    let pkg_dir = ci.package_dir("@acme/ci-pkg", "1.0.0");
    std::fs::write(pkg_dir.join(".npmrc"), format!("registry={registry}\n")).expect(".npmrc");
    let env = [
        ("GITHUB_ACTIONS", "true".to_string()),
        ("CI", "true".to_string()),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", issuer.request_url()),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            issuer.request_token().to_string(),
        ),
    ];
    let run = blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ci.npm_in_with_env(&pkg_dir, &["publish", "--loglevel=verbose"], &env)
    })
    .await;
    assert!(run.ok, "trusted npm publish failed:\n{}", run.output);
    let asked = issuer.token_requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].authorized, "{asked:?}");
    assert_eq!(asked[0].audience.as_deref(), Some(LOOPBACK_AUDIENCE));
    let (code, doc) = get(&pkg_url("@acme/ci-pkg"), Some(&reader)).await;
    assert_eq!(code, 200, "{doc}");
    assert!(doc["versions"].get("1.0.0").is_some(), "{doc}");
    let minted = trusted_publishing_tokens(&s);
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0]["details"]["repository"], "acme/app", "{minted:?}");

    // The exchange, directly, at the host's root: each bad id token refused with a reason.
    let exchange = format!(
        "{}/-/npm/v1/oidc/token/exchange/package/{}",
        dp.url(),
        escaped("@acme/ci-pkg")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let refusals = [
        (
            "wrong audience",
            Some(issuer.mint(json!({"aud": "npm:registry.elsewhere.test"}))),
            401,
        ),
        (
            "expired",
            Some(issuer.mint(json!({"iat": now - 900, "nbf": now - 900, "exp": now - 300}))),
            401,
        ),
        (
            "unknown issuer",
            Some(issuer.mint(json!({"iss": "http://127.0.0.1:9"}))),
            401,
        ),
        (
            "bad signature",
            Some(issuer.mint_with_foreign_key(json!({}))),
            401,
        ),
        ("no id token", None, 401),
        (
            "wrong repository",
            Some(issuer.mint(json!({
                "repository": "evil/app",
                "repository_owner": "evil",
                "sub": "repo:evil/app:environment:release",
            }))),
            403,
        ),
        (
            "wrong environment",
            Some(issuer.mint(
                json!({"environment": "staging", "sub": "repo:acme/app:environment:staging"}),
            )),
            403,
        ),
    ];
    for (what, jwt, want) in &refusals {
        let (code, body) = send("POST", &exchange, jwt.as_deref(), None).await;
        assert_eq!(code, *want, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
    }
    assert_eq!(trusted_publishing_tokens(&s).len(), 1, "no token for those");

    // A good one: a token for @acme/ci-pkg only.
    let (code, body) = send("POST", &exchange, Some(&issuer.mint(json!({}))), None).await;
    assert!((200..300).contains(&code), "{code}: {body}");
    let t = str_of(&body["token"]);
    assert!(!t.is_empty());
    let (code, doc) = get(&pkg_url("@acme/ci-pkg"), Some(&t)).await;
    assert_eq!(code, 200, "{doc}");
    let (put, _) = publish_payload("@acme/ci-pkg", "1.0.1", 10);
    let (code, res) = send("PUT", &pkg_url("@acme/ci-pkg"), Some(&t), Some(put)).await;
    assert_eq!(code, 201, "{res}");
    let (put, _) = publish_payload("@acme/other", "1.0.0", 10);
    let (code, res) = send("PUT", &pkg_url("@acme/other"), Some(&t), Some(put)).await;
    assert_eq!(code, 403, "another package: {res}");
    let (code, res) = get(&pkg_url("fx-c"), Some(&t)).await;
    assert!(matches!(code, 401 | 403), "a public package: {code} {res}");
    let (code, res) = get(
        &format!("{}/beta/{}", dp.url(), escaped("@beta/x")),
        Some(&t),
    )
    .await;
    assert!(matches!(code, 401 | 403), "another org: {code} {res}");
    let (_, doc) = get(&pkg_url("@acme/ci-pkg"), Some(&reader)).await;
    assert!(doc["versions"].get("1.0.1").is_some(), "{doc}");
    assert!(
        s.registry
            .requests()
            .iter()
            .all(|r| !r.path.contains("acme")),
        "internal packages never reach the upstream"
    );
    let minted = trusted_publishing_tokens(&s);
    assert_eq!(minted.len(), 2, "{minted:?}");

    // Short-lived.
    eventually(
        "the minted token expires",
        Duration::from_secs(ttl_secs + 20),
        || async { (get(&pkg_url("@acme/ci-pkg"), Some(&t)).await.0 == 401).then_some(()) },
    )
    .await;
}

/// A token is good on a data plane as soon as it is in Redis, even if the invalidation never
/// reached that data plane: trusted publishing's npm uses its token at once, possibly on
/// another data plane than the exchange's. The data plane is made to hold an older config
/// (without the token) while Redis holds the newer one, with no invalidation sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_redis_is_accepted_without_its_invalidation() {
    let s = Stack::start(&[]).await;
    let (_, old_token) = s.org_and_token(false, &["proxy"]);
    let dp = s.data_plane("dp", &[]).await;
    let whoami = format!("{}/-/whoami", dp.url());
    let key = "nproxy:v1:org:acme";
    assert_eq!(
        nproxy_tests::stack::status(&whoami, Some(&old_token)).await,
        200
    );
    s.redis.cli(&["COPY", key, "test:before", "REPLACE"]);
    let t = s
        .ctl(&[
            "-o", "json", "token", "create", "--org", "acme", "--name", "late", "--scope", "proxy",
        ])
        .json();
    let new_token = t["secret"].as_str().expect("secret").to_string();
    s.redis.cli(&["COPY", key, "test:after", "REPLACE"]);
    // The data plane forgets and reloads the config without the new token...
    s.redis.cli(&["COPY", "test:before", key, "REPLACE"]);
    s.redis.cli(&["PUBLISH", "nproxy:v1:invalidate", "acme"]);
    eventually(
        "the data plane holds the older config",
        Duration::from_secs(10),
        || async {
            (nproxy_tests::stack::status(&whoami, Some(&new_token)).await == 401).then_some(())
        },
    )
    .await;
    assert_eq!(
        nproxy_tests::stack::status(&whoami, Some(&old_token)).await,
        200
    );
    // ...then Redis gets the newer config, and nobody tells the data plane.
    s.redis.cli(&["COPY", "test:after", key, "REPLACE"]);
    assert_eq!(
        nproxy_tests::stack::status(&whoami, Some(&new_token)).await,
        200,
        "a token Redis holds is accepted at once"
    );
    // Tokens that are nowhere stay refused.
    assert_eq!(
        nproxy_tests::stack::status(&whoami, Some("nproxy_not_a_real_token_at_all")).await,
        401
    );
}
