//! Issue 5: security rules on public packages, end to end with nproxyctl, Redis, the data
//! plane and real npm.

use std::time::{Duration, Instant};

use nproxy_core::internal::iso_from_ms;
use nproxy_tests::clients::{Client, Project};
use nproxy_tests::fixtures::{publish_payload, FixturePackage};
use serde_json::{json, Value};

use crate::control_plane::{status, Stack};
use crate::support::{blocking, raw_http};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn install(
    s: &Stack,
    dp_url: &str,
    dir: &str,
    token: &str,
    deps: &[(&str, &str)],
) -> (Project, nproxy_tests::clients::Run) {
    let p = Project::new(&s.dir.path().join(dir), dp_url, deps);
    p.set_token(token);
    blocking(move || {
        let r = p.install(Client::Npm);
        (p, r)
    })
    .await
}

async fn get_json(url: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = raw_http()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    (code, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn cooldown_blocks_warns_expires_and_changes_within_seconds() {
    let s = Stack::start(&[("NPROXY_RECONCILE_INTERVAL_SECS", "3600")]).await;
    let (_, token) = s.org_and_token(true, &["proxy"]);
    // 1.1.0 was published 1 hour minus 4 seconds ago: a 1-hour cooldown holds it for 4 s.
    let fresh = iso_from_ms(now_ms() - 3_600_000 + 4_000);
    let pkg = FixturePackage::new("rx-cool")
        .version("1.0.0", &[], 10)
        .version("1.1.0", &[], 10)
        .published_at("1.1.0", &fresh);
    s.registry.publish(&pkg);
    let dp = s
        .data_plane("dp", &[("NPROXY_ORG_CONFIG_REFRESH_SECS", "3600")])
        .await;
    let url = format!("{}/rx-cool", dp.url());

    let (_, _, before) = get_json(&url, &token).await;
    assert!(before["versions"].get("1.1.0").is_some());
    let old_etag = raw_http()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .headers()["etag"]
        .clone();

    let started = Instant::now();
    s.ctl(&[
        "rules",
        "set",
        "--org",
        "acme",
        "--cooldown",
        "block",
        "--cooldown-hours",
        "1",
    ]);
    // A client revalidating with its old ETag gets the new answer, not a 304.
    let mut took = None;
    while started.elapsed() < Duration::from_secs(5) {
        let r = raw_http()
            .get(&url)
            .bearer_auth(&token)
            .header("if-none-match", old_etag.clone())
            .send()
            .await
            .expect("get");
        if r.status().as_u16() == 200 {
            let d: Value = r.json().await.expect("json");
            if d["versions"].get("1.1.0").is_none() {
                took = Some(started.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = took.expect("the rule change did not reach the data plane within 5 s");
    println!("rule change reached the data plane in {took:?}");
    let (code, headers, d) = get_json(&url, &token).await;
    assert_eq!(code, 200);
    assert_eq!(
        d["dist-tags"]["latest"], "1.0.0",
        "latest moves to the newest allowed version"
    );
    assert_eq!(headers["x-nproxy-blocked"], "1.1.0=cooldown");
    let t = raw_http()
        .get(format!("{}/rx-cool/-/rx-cool-1.1.0.tgz", dp.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(t.status().as_u16(), 403);
    assert!(t.text().await.unwrap_or_default().contains("cooldown"));
    let (p, run) = install(&s, &dp.url(), "blocked", &token, &[("rx-cool", "^1.0.0")]).await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(
        p.resolved_version(None, "rx-cool").as_deref(),
        Some("1.0.0")
    );

    // Warn: installed, and recorded.
    s.ctl(&["rules", "set", "--org", "acme", "--cooldown", "warn"]);
    assert!(
        wait_until(|| async {
            get_json(&url, &token).await.2["versions"]
                .get("1.1.0")
                .is_some()
        })
        .await,
        "warn mode keeps the version"
    );
    let (p, run) = install(&s, &dp.url(), "warned", &token, &[("rx-cool", "^1.0.0")]).await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(
        p.resolved_version(None, "rx-cool").as_deref(),
        Some("1.1.0")
    );

    // Block again, then the version ages past the threshold: it appears by itself.
    s.ctl(&["rules", "set", "--org", "acme", "--cooldown", "block"]);
    assert!(
        wait_until(|| async {
            get_json(&url, &token).await.2["versions"]
                .get("1.1.0")
                .is_none()
        })
        .await
    );
    assert!(
        wait_until(|| async {
            get_json(&url, &token).await.2["versions"]
                .get("1.1.0")
                .is_some()
        })
        .await,
        "the held-back version appears once old enough, with no rule change"
    );
    // Off: nothing changes.
    s.ctl(&["rules", "set", "--org", "acme", "--cooldown", "off"]);
    let events = s
        .ctl(&["-o", "json", "audit", "list", "--org", "acme"])
        .stdout;
    assert!(
        events.contains("package.blocked") && events.contains("package.warned"),
        "{events}"
    );
}

async fn wait_until<F, Fut>(f: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    nproxy_tests::eventually("the condition holds", Duration::from_secs(10), || async {
        f().await.then_some(())
    })
    .await;
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn malware_blocks_even_with_rules_on_warn_and_internal_packages_are_never_filtered() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let pkg = FixturePackage::new("rx-mal")
        .version("1.0.0", &[], 10)
        .version("1.0.1", &[], 10);
    s.registry.publish(&pkg);
    let dp = s.data_plane("dp", &[]).await;
    s.ctl(&[
        "rules",
        "set",
        "--org",
        "acme",
        "--vulnerabilities",
        "warn",
        "--install-scripts",
        "block",
    ]);
    let osv = s.dir.path().join("mal.json");
    std::fs::write(
        &osv,
        json!({"id": "MAL-2026-1", "summary": "credential stealer",
               "affected": [{"package": {"ecosystem": "npm", "name": "rx-mal"}, "versions": ["1.0.1"]}]})
        .to_string(),
    )
    .expect("write");
    let imported = s.ctl(&["advisories", "import", osv.to_str().expect("path")]);
    assert!(
        imported.stdout.contains("imported 1"),
        "{}",
        imported.stdout
    );
    let url = format!("{}/rx-mal", dp.url());
    assert!(
        wait_until(|| async {
            get_json(&url, &token).await.2["versions"]
                .get("1.0.1")
                .is_none()
        })
        .await,
        "malware is blocked even though the vulnerability rule only warns"
    );
    let (p, run) = install(&s, &dp.url(), "mal", &token, &[("rx-mal", "^1.0.0")]).await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(p.resolved_version(None, "rx-mal").as_deref(), Some("1.0.0"));
    // pnpm reads the abbreviated form: filtered the same way.
    let pn = Project::new(
        &s.dir.path().join("pnpm"),
        &dp.url(),
        &[("rx-mal", "^1.0.0")],
    );
    pn.set_token(&token);
    let (pn, run) = blocking(move || {
        let r = pn.install(Client::Pnpm);
        (pn, r)
    })
    .await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(
        pn.resolved_version(None, "rx-mal").as_deref(),
        Some("1.0.0")
    );

    // An internal package with an install script is the org's own code: never filtered.
    let (body, _) = publish_payload("@acme/tool", "1.0.0", 10);
    let mut v: Value = serde_json::from_slice(&body).expect("json");
    v["versions"]["1.0.0"]["scripts"] = json!({"postinstall": "node setup.js"});
    let res = raw_http()
        .put(format!("{}/@acme%2ftool", dp.url()))
        .bearer_auth(&token)
        .body(serde_json::to_vec(&v).expect("json"))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let (_, _, d) = get_json(&format!("{}/@acme%2ftool", dp.url()), &token).await;
    assert!(d["versions"].get("1.0.0").is_some());

    // Allow-list-only: an unlisted package is refused with a message saying so.
    s.ctl(&[
        "rules",
        "set",
        "--org",
        "acme",
        "--lists",
        "block",
        "--allow-list-only",
        "true",
        "--allow",
        "fx-a",
        "--allow",
        "@fx/*",
    ]);
    let denied = format!("{}/fx-c", dp.url());
    assert!(wait_until(|| async { status(&denied, Some(&token)).await == 403 }).await);
    let r = raw_http()
        .get(&denied)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert!(r.text().await.unwrap_or_default().contains("allow-list"));
    assert_eq!(
        status(&format!("{}/fx-a", dp.url()), Some(&token)).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_audit_reports_imported_advisories_and_exceptions_allow_a_version() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["proxy"]);
    let pkg = FixturePackage::new("rx-vuln")
        .version("1.0.0", &[], 10)
        .version("1.1.0", &[], 10);
    s.registry.publish(&pkg);
    let dp = s.data_plane("dp", &[]).await;
    let osv = s.dir.path().join("osv");
    std::fs::create_dir_all(&osv).expect("dir");
    std::fs::write(
        osv.join("ghsa.json"),
        json!({"id": "GHSA-test-0001", "summary": "prototype pollution in rx-vuln",
               "affected": [{"package": {"ecosystem": "npm", "name": "rx-vuln"},
                             "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.1.0"}]}]}],
               "database_specific": {"severity": "HIGH", "cwe_ids": ["CWE-1321"]}})
        .to_string(),
    )
    .expect("write");
    s.ctl(&["advisories", "import", osv.to_str().expect("path")]);
    let listed = s
        .ctl(&["-o", "json", "advisories", "list", "--package", "rx-vuln"])
        .json();
    assert_eq!(listed[0]["id"], "GHSA-test-0001");

    let (p, run) = install(&s, &dp.url(), "audit", &token, &[("rx-vuln", "1.0.0")]).await;
    assert!(run.ok, "{}", run.output);
    let audit = blocking(move || p.npm(&["audit", "--json"])).await;
    assert!(
        audit.output.contains("prototype pollution in rx-vuln"),
        "npm audit did not report the imported advisory:\n{}",
        audit.output
    );

    // Block the vulnerable version; then allow it explicitly.
    s.ctl(&[
        "rules",
        "set",
        "--org",
        "acme",
        "--vulnerabilities",
        "block",
        "--min-severity",
        "high",
    ]);
    let url = format!("{}/rx-vuln", dp.url());
    assert!(
        wait_until(|| async {
            get_json(&url, &token).await.2["versions"]
                .get("1.0.0")
                .is_none()
        })
        .await
    );
    s.ctl(&[
        "exceptions",
        "add",
        "--org",
        "acme",
        "rx-vuln@1.0.0",
        "--reason",
        "patched in our fork",
    ]);
    assert!(
        wait_until(|| async {
            get_json(&url, &token).await.2["versions"]
                .get("1.0.0")
                .is_some()
        })
        .await,
        "the exception allows the version again"
    );
    let list = s
        .ctl(&["-o", "json", "exceptions", "list", "--org", "acme"])
        .json();
    assert_eq!(list[0]["package"], "rx-vuln");
    let audit = s.ctl(&[
        "-o",
        "json",
        "audit",
        "list",
        "--org",
        "acme",
        "--type",
        "exception.added",
    ]);
    assert!(
        audit.stdout.contains("patched in our fork"),
        "{}",
        audit.stdout
    );
}

/// One crafted package per rule: its newest version (1.1.0) is what the rule flags.
fn crafted() -> Vec<(&'static str, FixturePackage, Vec<&'static str>)> {
    let by = |u: &str| json!({"name": u, "email": format!("{u}@example.test")});
    let mut publisher = FixturePackage::new("rx-pub");
    for v in ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.1.0"] {
        publisher = publisher.version(v, &[], 10);
    }
    for v in ["1.0.0", "1.0.1", "1.0.2", "1.0.3"] {
        publisher = publisher.with(v, "_npmUser", by("alice"));
    }
    publisher = publisher.with("1.1.0", "_npmUser", by("mallory"));
    vec![
        (
            "install-scripts",
            FixturePackage::new("rx-scripts")
                .version("1.0.0", &[], 10)
                .version("1.1.0", &[], 10)
                .with("1.1.0", "scripts", json!({"postinstall": "node -e 1"})),
            vec!["--install-scripts"],
        ),
        (
            "deprecated",
            FixturePackage::new("rx-dep")
                .version("1.0.0", &[], 10)
                .version("1.1.0", &[], 10)
                .with("1.1.0", "deprecated", json!("do not use")),
            vec!["--deprecated"],
        ),
        (
            "license",
            FixturePackage::new("rx-lic")
                .version("1.0.0", &[], 10)
                .version("1.1.0", &[], 10)
                .with("1.1.0", "license", json!("GPL-3.0-only")),
            vec!["--licenses", "MIT", "--license"],
        ),
        (
            "unexpected-dependencies",
            FixturePackage::new("rx-deps")
                .version("1.0.0", &[("fx-c", "^1.0.0")], 10)
                .version("1.1.0", &[("fx-c", "^1.0.0"), ("@fx/b", "^1.0.0")], 10),
            vec!["--unexpected-dependencies"],
        ),
        ("publisher-change", publisher, vec!["--publisher-change"]),
        (
            "deny-list",
            FixturePackage::new("rx-deny")
                .version("1.0.0", &[], 10)
                .version("1.1.0", &[], 10),
            vec!["--deny", "rx-deny@>=1.1.0", "--lists"],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_blocks_warns_and_turns_off() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["proxy"]);
    let cases = crafted();
    for (_, pkg, _) in &cases {
        s.registry.publish(pkg);
    }
    let dp = s.data_plane("dp", &[]).await;
    for (label, pkg, flags) in &cases {
        let url = format!("{}/{}", dp.url(), pkg.name);
        let set = |mode: &str| {
            let mut args: Vec<&str> = vec!["rules", "set", "--org", "acme"];
            args.extend(flags.iter().copied());
            args.push(mode);
            s.ctl(&args);
        };
        set("block");
        assert!(
            wait_until(|| async {
                get_json(&url, &token).await.2["versions"]
                    .get("1.1.0")
                    .is_none()
            })
            .await,
            "{label}: block did not remove 1.1.0"
        );
        let (p, run) = install(
            &s,
            &dp.url(),
            &format!("p-{label}"),
            &token,
            &[(pkg.name.as_str(), "^1.0.0")],
        )
        .await;
        assert!(run.ok, "{label}: {}", run.output);
        let newest_allowed = if *label == "publisher-change" {
            "1.0.3"
        } else {
            "1.0.0"
        };
        assert_eq!(
            p.resolved_version(None, &pkg.name).as_deref(),
            Some(newest_allowed),
            "{label}"
        );
        let t = raw_http()
            .get(format!("{}{}", dp.url(), pkg.tarball_path("1.1.0")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(t.status().as_u16(), 403, "{label}");
        let msg = t.text().await.unwrap_or_default();
        assert!(
            msg.contains(label),
            "{label}: the 403 names the rule: {msg}"
        );

        let explain = nproxy_tests::control::ctl(
            &s.cp.endpoint(),
            &[
                "-o",
                "json",
                "rules",
                "explain",
                &format!("{}@1.1.0", pkg.name),
                "--org",
                "acme",
                "--registry",
                &dp.url(),
                "--npm-token",
                &token,
            ],
        );
        assert!(explain.ok, "{}", explain.stderr);
        let e = explain.json();
        assert_eq!(e["findings"]["1.1.0"][0]["rule"], *label, "{label}: {e}");
        assert_eq!(e["findings"]["1.1.0"][0]["mode"], "block");

        set("warn");
        assert!(
            wait_until(|| async {
                get_json(&url, &token).await.2["versions"]
                    .get("1.1.0")
                    .is_some()
            })
            .await,
            "{label}: warn must keep 1.1.0"
        );
        set("off");
        let (_, headers, d) = get_json(&url, &token).await;
        assert!(
            d["versions"].get("1.1.0").is_some() && headers.get("x-nproxy-blocked").is_none(),
            "{label}: off changes nothing"
        );
    }
    let warned = s.ctl(&[
        "-o",
        "json",
        "audit",
        "list",
        "--org",
        "acme",
        "--type",
        "package.warned",
    ]);
    assert!(
        warned.stdout.lines().count() >= cases.len(),
        "one warned event per rule:\n{}",
        warned.stdout
    );
}
