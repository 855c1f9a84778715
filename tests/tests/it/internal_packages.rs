//! Issue 4's acceptance: an org's internal packages, published, installed and managed with
//! the real npm (and installed with pnpm and yarn 4), signed and audited.

use std::time::{Duration, Instant};

use nproxy_tests::clients::{Client, Project};
use nproxy_tests::control::ctl;
use nproxy_tests::fixtures::publish_payload;
use nproxy_tests::procs::{DataPlane, SeaweedFs, Storage};
use serde_json::Value;

use crate::control_plane::{status, Stack};
use crate::support::{blocking, files_under, raw_http};

const PKG: &str = "@acme/utils";

/// An org `acme` whose internal scope is `@acme`, with a publish token.
async fn internal_stack() -> (Stack, String) {
    let s = Stack::start(&[]).await;
    let (_, secret) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    (s, secret)
}

async fn doc(dp: &DataPlane, token: &str, name: &str) -> (u16, Value) {
    let res = raw_http()
        .get(format!("{}/{}", dp.url(), name.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

async fn put_payload(dp: &DataPlane, token: &str, name: &str, body: Vec<u8>) -> reqwest::Response {
    raw_http()
        .put(format!("{}/{}", dp.url(), name.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("put")
}

fn project(s: &Stack, dp: &DataPlane, dir: &str, token: &str, deps: &[(&str, &str)]) -> Project {
    let p = Project::new(&s.dir.path().join(dir), &dp.url(), deps);
    p.set_token(token);
    p
}

async fn npm(p: Project, args: &'static [&'static str]) -> (Project, nproxy_tests::clients::Run) {
    blocking(move || {
        let r = p.npm(args);
        (p, r)
    })
    .await
}

async fn events_of(s: &Stack, kind: &str) -> Vec<Value> {
    let all = s.ctl(&[
        "-o", "json", "audit", "list", "--org", "acme", "--type", kind,
    ]);
    all.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_publish_install_tag_deprecate_unpublish() {
    let (s, token) = internal_stack().await;
    let dp = s.data_plane("dp", &[]).await;
    let publisher = project(&s, &dp, "publisher", &token, &[]);
    let publisher = blocking(move || {
        for v in ["1.0.0", "1.0.1"] {
            let r = publisher.publish(PKG, v);
            assert!(r.ok, "npm publish {v} failed:\n{}", r.output);
        }
        publisher
    })
    .await;
    let (code, d) = doc(&dp, &token, PKG).await;
    assert_eq!(code, 200);
    assert_eq!(d["dist-tags"]["latest"], "1.0.1");
    assert_eq!(
        d["versions"]["1.0.0"]["dist"]["tarball"],
        format!("{}/@acme/utils/-/utils-1.0.0.tgz", dp.url())
    );
    assert_eq!(
        d["versions"]["1.0.0"]["_nproxy"]["signatures"][0]["alg"],
        "ed25519"
    );
    // npm's own field holds only the npm-format (ECDSA P-256) signature, never Ed25519.
    let npm_sigs = d["versions"]["1.0.0"]["dist"]["signatures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(npm_sigs.len(), 1, "{d}");
    assert!(npm_sigs[0]["keyid"]
        .as_str()
        .is_some_and(|k| k.starts_with("SHA256:")));
    assert_ne!(
        npm_sigs[0]["keyid"], d["versions"]["1.0.0"]["_nproxy"]["signatures"][0]["keyid"],
        "not the Ed25519 key"
    );
    // Internal packages never touch the upstream.
    assert!(s
        .registry
        .requests()
        .iter()
        .all(|r| !r.path.contains("acme")));

    let consumer = project(&s, &dp, "consumer", &token, &[(PKG, "^1.0.0")]);
    let (consumer, run) = blocking(move || {
        let r = consumer.install(Client::Npm);
        (consumer, r)
    })
    .await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(
        consumer.resolved_version(None, PKG).as_deref(),
        Some("1.0.1")
    );

    let (publisher, r) = npm(publisher, &["dist-tag", "add", "@acme/utils@1.0.0", "beta"]).await;
    assert!(r.ok, "{}", r.output);
    assert_eq!(doc(&dp, &token, PKG).await.1["dist-tags"]["beta"], "1.0.0");
    let (publisher, r) = npm(publisher, &["dist-tag", "ls", "@acme/utils"]).await;
    assert!(r.ok && r.output.contains("beta: 1.0.0"), "{}", r.output);
    let (publisher, r) = npm(publisher, &["dist-tag", "rm", "@acme/utils", "beta"]).await;
    assert!(r.ok, "{}", r.output);
    assert!(doc(&dp, &token, PKG).await.1["dist-tags"]
        .get("beta")
        .is_none());

    let (publisher, r) = npm(publisher, &["deprecate", "@acme/utils@1.0.0", "use 1.0.1"]).await;
    assert!(r.ok, "{}", r.output);
    assert_eq!(
        doc(&dp, &token, PKG).await.1["versions"]["1.0.0"]["deprecated"],
        "use 1.0.1"
    );
    let (publisher, r) = npm(publisher, &["deprecate", "@acme/utils@1.0.0", ""]).await;
    assert!(r.ok, "{}", r.output);
    assert!(doc(&dp, &token, PKG).await.1["versions"]["1.0.0"]
        .get("deprecated")
        .is_none());

    let (publisher, r) = npm(publisher, &["unpublish", "@acme/utils@1.0.1"]).await;
    assert!(r.ok, "{}", r.output);
    let d = doc(&dp, &token, PKG).await.1;
    assert!(d["versions"].get("1.0.1").is_none());
    assert_eq!(d["dist-tags"]["latest"], "1.0.0");
    let gone = raw_http()
        .get(format!("{}/@acme/utils/-/utils-1.0.1.tgz", dp.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status().as_u16(), 404);
    // A version number is never reused (README: "Unpublished versions").
    let publisher = blocking(move || {
        let r = publisher.publish(PKG, "1.0.1");
        assert!(!r.ok && r.output.contains("E409"), "{}", r.output);
        publisher
    })
    .await;

    let (_, r) = npm(publisher, &["unpublish", "@acme/utils", "--force"]).await;
    assert!(r.ok, "{}", r.output);
    assert_eq!(doc(&dp, &token, PKG).await.0, 404);

    // The audit log got every step (handed over through the outbox).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let published = events_of(&s, "package.published").await.len();
        let signed = events_of(&s, "package.signed").await.len();
        let unpublished = events_of(&s, "package.unpublished").await.len();
        let deprecated = events_of(&s, "package.deprecated").await;
        let tags = events_of(&s, "package.dist_tag_changed").await;
        if published == 2
            && signed == 2
            && unpublished == 2
            && deprecated.len() == 2
            && tags.len() == 2
        {
            // Deprecate and un-deprecate, each with who did it; tag changes too.
            assert_eq!(deprecated[0]["details"]["version"], "1.0.0");
            for e in deprecated.iter().chain(&tags) {
                assert_eq!(e["details"]["token"], "ci", "{e}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit events: published {published}, signed {signed}, unpublished {unpublished}, \
             deprecated {}, dist-tag {}",
            deprecated.len(),
            tags.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pnpm_and_yarn4_install_an_internal_package() {
    let (s, token) = internal_stack().await;
    let dp = s.data_plane("dp", &[]).await;
    let (body, _) = publish_payload(PKG, "2.0.0", 100);
    assert_eq!(
        put_payload(&dp, &token, PKG, body).await.status().as_u16(),
        201
    );
    for (client, dir) in [(Client::Pnpm, "pnpm"), (Client::Yarn4, "yarn4")] {
        let p = project(&s, &dp, dir, &token, &[(PKG, "^2.0.0"), ("fx-c", "^1.0.0")]);
        let (p, run) = blocking(move || {
            let r = p.install(client);
            (p, r)
        })
        .await;
        assert!(run.ok, "{client:?}:\n{}", run.output);
        assert_eq!(
            p.resolved_version(None, PKG).as_deref(),
            Some("2.0.0"),
            "{client:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_publishes_are_refused_and_store_nothing() {
    let (s, token) = internal_stack().await;
    let (_, proxy_only) = {
        let t = s
            .ctl(&[
                "-o", "json", "token", "create", "--org", "acme", "--name", "ro", "--scope",
                "proxy",
            ])
            .json();
        (
            t["id"].clone(),
            t["secret"].as_str().expect("secret").to_string(),
        )
    };
    let dp = s.data_plane("dp", &[]).await;
    let (body, _) = publish_payload(PKG, "1.0.0", 100);
    assert_eq!(
        put_payload(&dp, &token, PKG, body.clone())
            .await
            .status()
            .as_u16(),
        201
    );
    // Republishing a version: 409.
    let again = put_payload(&dp, &token, PKG, body).await;
    assert_eq!(again.status().as_u16(), 409);
    assert!(again
        .text()
        .await
        .unwrap_or_default()
        .contains("already exists"));
    // Tampered integrity: 400, nothing stored.
    let (body, _) = publish_payload(PKG, "1.0.2", 100);
    let mut v: Value = serde_json::from_slice(&body).expect("json");
    v["versions"]["1.0.2"]["dist"]["integrity"] =
        Value::String(publish_payload(PKG, "9.9.9", 5).1.integrity);
    let res = put_payload(&dp, &token, PKG, serde_json::to_vec(&v).expect("json")).await;
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.text().await.unwrap_or_default().contains("integrity"));
    assert!(doc(&dp, &token, PKG).await.1["versions"]
        .get("1.0.2")
        .is_none());
    // A proxy-only token can't publish.
    let (body, _) = publish_payload(PKG, "1.0.3", 100);
    let res = put_payload(&dp, &proxy_only, PKG, body).await;
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap_or_default().contains("publish"));
    // No token at all, even with public reads on: 401.
    assert_eq!(
        status(&format!("{}/@acme%2futils", dp.url()), None).await,
        401
    );
    // 60 MB: 413, refused while reading.
    let huge = vec![b' '; 60 * 1024 * 1024];
    let res = put_payload(&dp, &token, PKG, huge).await;
    assert_eq!(res.status().as_u16(), 413);
    let d = doc(&dp, &token, PKG).await.1;
    assert_eq!(d["versions"].as_object().map(|m| m.len()), Some(1), "{d}");
}

async fn concurrent_distinct_versions(
    dps: &[&DataPlane],
    token: &str,
    name: &str,
) -> (Vec<String>, Vec<u16>) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let version = format!("1.0.{i}");
        let (body, _) = publish_payload(name, &version, 200);
        let url = format!(
            "{}/{}",
            dps[i % dps.len()].url(),
            name.replacen('/', "%2f", 1)
        );
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let r = raw_http()
                .put(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("put");
            (version, r.status().as_u16())
        }));
    }
    let mut ok = Vec::new();
    let mut codes = Vec::new();
    for t in tasks {
        let (v, code) = t.await.expect("task");
        codes.push(code);
        if code == 201 {
            ok.push(v);
        }
    }
    (ok, codes)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_publishes_lose_nothing() {
    let (s, token) = internal_stack().await;
    let weed = SeaweedFs::start().await;
    weed.bucket("internal").await;
    let local = s.data_plane("dp-local", &[]).await;
    let s3 = s
        .data_plane_on(
            "dp-s3",
            &[],
            Storage::S3 {
                endpoint: weed.endpoint.clone(),
                bucket: "internal".into(),
            },
        )
        .await;
    let s3_b = s
        .data_plane_on(
            "dp-s3-b",
            &[],
            Storage::S3 {
                endpoint: weed.endpoint.clone(),
                bucket: "internal".into(),
            },
        )
        .await;
    // One data plane, local store, then S3: all 20 succeed and all 20 are there.
    for (dp, name) in [(&local, "@acme/local"), (&s3, "@acme/remote")] {
        let (ok, codes) = concurrent_distinct_versions(&[dp], &token, name).await;
        assert_eq!(ok.len(), 20, "every publish gets 201: {codes:?}");
        let d = doc(dp, &token, name).await.1;
        assert_eq!(
            d["versions"].as_object().map(|m| m.len()),
            Some(20),
            "{name}"
        );
    }
    // Split across two data planes sharing the bucket: every 201 is present, the rest were
    // told to retry.
    let (ok, codes) = concurrent_distinct_versions(&[&s3, &s3_b], &token, "@acme/split").await;
    assert!(codes.iter().all(|c| *c == 201 || *c == 503), "{codes:?}");
    let d = doc(&s3_b, &token, "@acme/split").await.1;
    for v in &ok {
        assert!(d["versions"].get(v).is_some(), "{v} got 201 but is missing");
    }
    println!("split publishes: {} of 20 got 201 ({codes:?})", ok.len());
    // Ten publishes of one version: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (body, _) = publish_payload("@acme/same", "1.0.0", 100 + i);
        let url = format!(
            "{}/@acme%2fsame",
            if i % 2 == 0 { s3.url() } else { s3_b.url() }
        );
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            raw_http()
                .put(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("put")
                .status()
                .as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task"));
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 201 || *c == 409), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn orgs_are_isolated() {
    let (s, acme_token) = internal_stack().await;
    s.ctl(&["org", "create", "beta"]);
    let beta = s
        .ctl(&[
            "-o", "json", "token", "create", "--org", "beta", "--name", "b", "--scope", "publish",
        ])
        .json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let dp = s.data_plane("dp", &[("NPROXY_ORG_MODE", "path")]).await;
    let (body, _) = publish_payload(PKG, "1.0.0", 100);
    let res = raw_http()
        .put(format!("{}/acme/@acme%2futils", dp.url()))
        .bearer_auth(&acme_token)
        .body(body)
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let acme_url = format!("{}/acme/@acme%2futils", dp.url());
    assert_eq!(status(&acme_url, Some(&acme_token)).await, 200);
    assert_eq!(
        status(&acme_url, Some(&beta)).await,
        401,
        "beta's token is nothing to acme"
    );
    // For beta, @acme is just a public scope: it goes upstream (where it does not exist).
    assert_eq!(
        status(&format!("{}/beta/@acme%2futils", dp.url()), Some(&beta)).await,
        404
    );
    assert!(s.registry.count("GET", "/@acme%2futils") >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_catches_tampering_in_storage() {
    let (s, token) = internal_stack().await;
    let dp = s.data_plane("dp", &[]).await;
    let (body, _) = publish_payload(PKG, "1.0.0", 100);
    assert_eq!(
        put_payload(&dp, &token, PKG, body).await.status().as_u16(),
        201
    );
    let verify = |t: &str| {
        ctl(
            &s.cp.endpoint(),
            &[
                "verify",
                "@acme/utils@1.0.0",
                "--org",
                "acme",
                "--registry",
                &dp.url(),
                "--npm-token",
                t,
            ],
        )
    };
    let ok = verify(&token);
    assert!(ok.ok, "{}\n{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("verified"));

    // Alter the stored document: another integrity (with a matching blob it would pass the
    // integrity check, so the signature is what must catch it).
    let store = s.dir.path().join("store");
    let packument = files_under(&store)
        .into_iter()
        .find(|p| p.ends_with("utils/packument.json"))
        .expect("stored packument");
    let original = std::fs::read(&packument).expect("read");
    let mut d: Value = serde_json::from_slice(&original).expect("json");
    d["versions"]["1.0.0"]["_nproxy"]["signatures"][0]["sig"] =
        Value::String(base64_of(&[7u8; 64]));
    std::fs::write(&packument, serde_json::to_vec(&d).expect("json")).expect("write");
    let bad = verify(&token);
    assert!(
        !bad.ok && bad.stderr.contains("SIGNATURE INVALID"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );

    let mut d: Value = serde_json::from_slice(&original).expect("json");
    d["versions"]["1.0.0"]["dist"]["integrity"] =
        Value::String(publish_payload(PKG, "1.0.0", 7).1.integrity);
    std::fs::write(&packument, serde_json::to_vec(&d).expect("json")).expect("write");
    let bad = verify(&token);
    assert!(
        !bad.ok && bad.stderr.contains("INTEGRITY MISMATCH"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_events_survive_a_killed_control_plane_and_a_flushed_redis() {
    let (mut s, token) = internal_stack().await;
    let dp = s.data_plane("dp", &[]).await;
    let (body, _) = publish_payload(PKG, "3.0.0", 100);
    assert_eq!(
        put_payload(&dp, &token, PKG, body).await.status().as_u16(),
        201
    );
    // Right after the 201: the control plane dies, Redis is wiped.
    s.cp.kill();
    s.redis.cli(&["FLUSHALL"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let del = raw_http()
        .delete(format!(
            "{}/@acme%2futils/-rev/{}",
            dp.url(),
            doc(&dp, &token, PKG).await.1["_rev"]
                .as_str()
                .unwrap_or("0-0")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    let _ = del;
    s.cp.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let published = events_of(&s, "package.published").await;
        let signed = events_of(&s, "package.signed").await;
        if published.len() == 1 && signed.len() == 1 {
            assert_eq!(published[0]["details"]["version"], "3.0.0");
            assert!(published[0]["details"]["token_hash"]
                .as_str()
                .is_some_and(|h| h.len() == 64));
            assert!(signed[0]["details"]["key_id"]
                .as_str()
                .is_some_and(|k| k.starts_with("SHA256:")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "published {published:?} signed {signed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let v = s
        .ctl(&["-o", "json", "audit", "verify", "--org", "acme"])
        .json();
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn public_writes_go_upstream_without_nproxy_tokens() {
    let (s, token) = internal_stack().await;
    let dp = s.data_plane("dp", &[]).await;
    let (body, _) = publish_payload("fx-new", "1.0.0", 100);
    // With only an nproxy token nothing is relayed: the upstream would refuse it anyway.
    let refused = put_payload(&dp, &token, "fx-new", body.clone()).await;
    assert_eq!(refused.status().as_u16(), 401);
    let _ = raw_http()
        .put(format!("{}/fx-new", dp.url()))
        .bearer_auth("npm_usersOwnUpstreamToken")
        .body(body)
        .send()
        .await
        .expect("put");
    let puts: Vec<_> = s
        .registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == "/fx-new")
        .collect();
    assert_eq!(
        puts.len(),
        1,
        "only the publish with an upstream token reached it"
    );
    assert_eq!(
        puts[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer npm_usersOwnUpstreamToken"),
        "the user's own token passes untouched"
    );
    // npm login through nproxy reaches the upstream, even without an nproxy token.
    s.registry.canned(
        "/-/user/org.couchdb.user:alice",
        201,
        serde_json::json!({"ok": true, "token": "npm_fromUpstream"}),
    );
    let login = raw_http()
        .put(format!("{}/-/user/org.couchdb.user:alice", dp.url()))
        .json(&serde_json::json!({"name": "alice", "password": "pw"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status().as_u16(), 201);
    let body: Value = login.json().await.expect("json");
    assert_eq!(body["token"], "npm_fromUpstream");
    // whoami: an nproxy token is answered here, with its name.
    let who: Value = raw_http()
        .get(format!("{}/-/whoami", dp.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("whoami")
        .json()
        .await
        .expect("json");
    assert_eq!(who["username"], "ci");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_on_one_data_plane_installs_through_another() {
    let (s, token) = internal_stack().await;
    let a = s.data_plane("dp-a", &[]).await;
    let b = s.data_plane("dp-b", &[]).await;
    let (body, _) = publish_payload(PKG, "1.0.0", 100);
    assert_eq!(
        put_payload(&a, &token, PKG, body).await.status().as_u16(),
        201
    );
    assert_eq!(doc(&b, &token, PKG).await.0, 200);
    let (body, _) = publish_payload(PKG, "1.1.0", 100);
    assert_eq!(
        put_payload(&a, &token, PKG, body).await.status().as_u16(),
        201
    );
    let p = project(&s, &b, "via-b", &token, &[(PKG, "^1.0.0")]);
    let (p, run) = blocking(move || {
        let r = p.install(Client::Npm);
        (p, r)
    })
    .await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(p.resolved_version(None, PKG).as_deref(), Some("1.1.0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deprecate_that_alters_another_version_is_refused() {
    let (s, token) = internal_stack().await;
    let dp = s.data_plane("dp", &[]).await;
    for v in ["1.0.0", "1.0.1"] {
        let (body, _) = publish_payload(PKG, v, 100);
        assert_eq!(
            put_payload(&dp, &token, PKG, body).await.status().as_u16(),
            201
        );
    }
    let write = raw_http()
        .get(format!("{}/@acme%2futils?write=true", dp.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    let before: Value = write.json().await.expect("json");
    assert!(
        before["_rev"].as_str().is_some(),
        "?write=true returns _rev"
    );
    let mut sent = before.clone();
    sent["versions"]["1.0.0"]["deprecated"] = Value::String("old".into());
    sent["versions"]["1.0.1"]["dist"]["integrity"] =
        Value::String(publish_payload(PKG, "1.0.1", 5).1.integrity);
    let res = put_payload(&dp, &token, PKG, serde_json::to_vec(&sent).expect("json")).await;
    assert_eq!(res.status().as_u16(), 400);
    let after = doc(&dp, &token, PKG).await.1;
    assert!(
        after["versions"]["1.0.0"].get("deprecated").is_none(),
        "nothing changed"
    );
    assert_eq!(
        after["versions"]["1.0.1"]["dist"]["integrity"],
        before["versions"]["1.0.1"]["dist"]["integrity"]
    );
}

/// An outbox entry that can't be read (or whose package can't be read) never holds back the
/// entries after it: it is moved to `quarantine/` and the drain goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_outbox_entry_is_quarantined_and_the_rest_delivered() {
    let (s, token) = internal_stack().await;
    let settings = s.ctl(&["-o", "json", "org", "settings", "acme"]).json();
    let org_id = settings["org_id"].as_str().expect("org id").to_string();
    let store = s.dir.path().join("store");
    let outbox = store.join("outbox").join(&org_id);
    std::fs::create_dir_all(&outbox).expect("outbox dir");
    // Sorts before every real entry (their ids start with the time).
    std::fs::write(outbox.join("0000000000000-broken.json"), b"{not an entry").expect("write");
    let dp = s.data_plane("dp", &[]).await;
    let (body, _) = publish_payload(PKG, "7.0.0", 10);
    assert_eq!(
        put_payload(&dp, &token, PKG, body).await.status().as_u16(),
        201
    );
    nproxy_tests::eventually(
        "the publish's events arrive despite the broken entry",
        Duration::from_secs(20),
        || async { (events_of(&s, "package.published").await.len() == 1).then_some(()) },
    )
    .await;
    nproxy_tests::eventually(
        "the broken entry is quarantined",
        Duration::from_secs(20),
        || async {
            let moved = store
                .join("quarantine/outbox")
                .join(&org_id)
                .join("0000000000000-broken.json")
                .exists();
            (moved && !outbox.join("0000000000000-broken.json").exists()).then_some(())
        },
    )
    .await;
}
