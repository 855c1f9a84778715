//! Issue 14, part 2: several upstreams, each owning its names. Two local upstreams: the
//! data plane's own (the stack's fixture registry, which also serves a decoy `@vendor/sdk`),
//! and a vendor's private registry that needs a bearer credential. The org routes `@vendor`
//! to the vendor's registry with a credential the control plane holds; clients send only
//! their nproxy token.

use std::time::Duration;

use nproxy_tests::clients::{Client, Project};
use nproxy_tests::fixtures::FixturePackage;
use nproxy_tests::registry::Registry;
use serde_json::Value;

use crate::control_plane::Stack;
use crate::support::{blocking, raw_http};

const CREDENTIAL: &str = "vendor-secret-7f3a9c2e51d84b06";

async fn get(url: &str, token: &str) -> (u16, Value) {
    let res = raw_http()
        .get(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    assert!(
        !text.contains(CREDENTIAL),
        "a response carries the credential"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every request path and body the registry saw that mentions `needle`.
fn mentions(r: &Registry, needle: &str) -> Vec<String> {
    r.requests()
        .into_iter()
        .filter(|q| {
            q.path.contains(needle)
                || q.path.contains(&needle.replace('/', "%2f"))
                || q.path.contains(&needle.replace('/', "%2F"))
                || String::from_utf8_lossy(&q.body).contains(needle)
        })
        .map(|q| format!("{} {}", q.method, q.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routed_scope_comes_only_from_its_upstream_with_the_held_credential() {
    // The public upstream also has an `@vendor/sdk`: the wrong source, if ever asked.
    let decoy = FixturePackage::new("@vendor/sdk").version("9.9.9", &[], 40);
    let mut s = Stack::start_with(&[], vec![decoy]).await;
    let vendor = Registry::start(&[
        FixturePackage::new("@vendor/sdk").version("1.0.0", &[("fx-c", "^1.0.0")], 60),
        FixturePackage::new("@vendor/cli").version("2.0.0", &[], 50),
        FixturePackage::new("@vendor/extra").version("3.0.0", &[], 50),
    ])
    .await;
    vendor.require_bearer(CREDENTIAL);
    let (_, token) = s.org_and_token(false, &["proxy"]);
    let cred_file = s.dir.path().join("vendor-credential");
    std::fs::write(&cred_file, CREDENTIAL).expect("credential file");
    let added = s
        .ctl(&[
            "-o",
            "json",
            "upstream",
            "add",
            "--org",
            "acme",
            "--pattern",
            "@vendor",
            "--url",
            &vendor.url(),
            "--credential-file",
            cred_file.to_str().expect("path"),
        ])
        .json();
    assert_eq!(added["pattern"], "@vendor", "{added}");
    let dp = s.data_plane("dp", &[]).await;

    // npm installs the routed scope (and its public dependency) with only its nproxy token.
    let project = Project::new(
        &s.dir.path().join("app"),
        &dp.url(),
        &[("@vendor/sdk", "^1.0.0"), ("fx-c", "^1.0.0")],
    );
    project.set_token(&token);
    let project = blocking(move || {
        let r = project.install(Client::Npm);
        assert!(r.ok, "npm install failed:\n{}", r.output);
        project
    })
    .await;
    let lock: Value = serde_json::from_slice(
        &std::fs::read(project.dir.join("package-lock.json")).expect("lockfile"),
    )
    .expect("lockfile json");
    assert_eq!(
        lock["packages"]["node_modules/@vendor/sdk"]["version"], "1.0.0",
        "@vendor/sdk comes from the vendor's registry, not the public decoy"
    );
    assert!(
        mentions(&s.registry, "@vendor").is_empty(),
        "the public upstream heard of @vendor: {:?}",
        mentions(&s.registry, "@vendor")
    );
    let vendor_requests = vendor.requests();
    assert!(!vendor_requests.is_empty());
    for r in &vendor_requests {
        let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(
            auth,
            Some(format!("Bearer {CREDENTIAL}").as_str()),
            "{}",
            r.path
        );
        assert!(
            !r.path.contains("fx-c"),
            "a public name went to the vendor: {}",
            r.path
        );
    }

    // Another org resolves the same name publicly, from its own copy: never the routed one.
    let beta_token = {
        s.ctl(&["org", "create", "beta"]);
        s.ctl(&["org", "settings", "beta", "--public-reads", "false"]);
        let t = s
            .ctl(&[
                "-o", "json", "token", "create", "--org", "beta", "--name", "b", "--scope", "proxy",
            ])
            .json();
        t["secret"].as_str().expect("secret").to_string()
    };
    let beta = s
        .data_plane("beta", &[("NPROXY_DEFAULT_ORG", "beta")])
        .await;
    let (code, doc) = get(&format!("{}/@vendor%2fsdk", beta.url()), &beta_token).await;
    assert_eq!(code, 200, "{doc}");
    assert!(doc["versions"].get("9.9.9").is_some(), "{doc}");
    assert!(doc["versions"].get("1.0.0").is_none(), "{doc}");
    let (code, doc) = get(&format!("{}/@vendor%2fsdk", dp.url()), &token).await;
    assert_eq!(code, 200, "{doc}");
    assert!(doc["versions"].get("9.9.9").is_none(), "{doc}");
    let public_asked = mentions(&s.registry, "@vendor");
    assert!(
        !public_asked.is_empty(),
        "beta's read went to the public upstream"
    );

    // Only installs are relayed for routed names: nothing else reaches any upstream.
    let before = s.registry.requests().len();
    for (method, path) in [
        ("PUT", "/@vendor%2fsdk"),
        ("GET", "/-/package/@vendor%2fsdk/dist-tags"),
        ("GET", "/@vendor%2fsdk?write=true"),
        ("GET", "/-/package/@vendor%2fsdk/collaborators"),
    ] {
        let res = raw_http()
            .request(
                method.parse().expect("method"),
                format!("{}{path}", dp.url()),
            )
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(if method == "PUT" { "{}" } else { "" })
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 403, "{method} {path}");
    }
    let audit = raw_http()
        .post(format!("{}/-/npm/v1/security/advisories/bulk", dp.url()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"@vendor/sdk": ["1.0.0"], "fx-c": ["1.0.0"]}"#)
        .send()
        .await
        .expect("audit");
    assert!(audit.status().is_success() || audit.status().as_u16() == 502);
    // npm's fallback, the whole-tree audit, would carry the names as they are: refused.
    for path in [
        "/-/npm/v1/security/audits/quick",
        "/-/npm/v1/security/audits",
    ] {
        let res = raw_http()
            .post(format!("{}{path}", dp.url()))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(r#"{"name": "app", "requires": {"@vendor/sdk": "^1.0.0"}, "dependencies": {"@vendor/sdk": {"version": "1.0.0"}}}"#)
            .send()
            .await
            .expect("audit");
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    let after: Vec<String> = s.registry.requests()[before..]
        .iter()
        .filter(|r| {
            r.path.contains("vendor") || String::from_utf8_lossy(&r.body).contains("@vendor")
        })
        .map(|r| r.path.clone())
        .collect();
    assert!(
        after.is_empty(),
        "routed names reached the public upstream: {after:?}"
    );

    // The control plane down: the data plane keeps the credential it holds.
    s.cp.kill();
    let (code, doc) = get(&format!("{}/@vendor%2fcli", dp.url()), &token).await;
    assert_eq!(code, 200, "{doc}");
    assert!(doc["versions"].get("2.0.0").is_some(), "{doc}");

    // The vendor's registry down: what is cached is served, the rest fails, and nothing
    // falls through to the public upstream.
    vendor.stop();
    let (code, doc) = get(&format!("{}/@vendor%2fsdk", dp.url()), &token).await;
    assert_eq!(code, 200, "{doc}");
    let (code, _) = get(&format!("{}/@vendor%2fextra", dp.url()), &token).await;
    assert!(matches!(code, 502..=504), "{code}");
    assert!(
        mentions(&s.registry, "@vendor/extra").is_empty(),
        "@vendor/extra fell through to the public upstream"
    );

    // The credential is in no log and no Redis value.
    for log in [dp.log_text(), beta.log_text(), s.cp.log_text()] {
        assert!(!log.contains(CREDENTIAL), "a log carries the credential");
    }
    let keys = s.redis.cli(&["KEYS", "*"]);
    for key in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
        let value = match s.redis.cli(&["TYPE", key]).trim() {
            "string" => s.redis.cli(&["GET", key]),
            "hash" => s.redis.cli(&["HGETALL", key]),
            _ => String::new(),
        };
        assert!(
            !value.contains(CREDENTIAL),
            "Redis key {key} carries the credential"
        );
    }
}
