//! Issue 8: what real projects and real client flows need, beyond the fixtures of the first
//! issues: legacy package names, publish-then-install of public packages through nproxy,
//! and the data plane's configuration accepted by `nproxyctl dev`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use nproxy_tests::clients::{Client, Project};
use nproxy_tests::eventually;
use nproxy_tests::fixtures::{self, publish_payload};
use nproxy_tests::procs::{binary, free_port};
use nproxy_tests::registry::Registry;
use serde_json::Value;

use crate::control_plane::Stack;
use crate::support::{blocking, raw_http, Env};

fn file_text(p: &Project, rel: &str) -> String {
    std::fs::read_to_string(p.dir.join(rel)).unwrap_or_default()
}

/// `JSONStream` (a transitive dependency of browserify and conventional-changelog) and
/// `jsonstream` are two packages; both install, side by side, with npm and pnpm.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_names_install_with_npm_and_pnpm() {
    let mut b = Env::builder();
    for p in fixtures::legacy() {
        b = b.package(p);
    }
    let env = b.start().await;
    for path in ["/JSONStream", "/Base64", "/jsonstream"] {
        let r = raw_http().get(env.url(path)).send().await.expect("get");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
    }
    for (client, dir) in [(Client::Npm, "npm"), (Client::Pnpm, "pnpm")] {
        let p = Project::new(
            &env.dir.path().join(dir),
            &env.dp.url(),
            &[("fx-legacy-app", "^1.0.0")],
        );
        let (p, run) = blocking(move || {
            let r = p.install(client);
            (p, r)
        })
        .await;
        assert!(run.ok, "{client:?} install failed:\n{}", run.output);
        let listing: Vec<String> = std::fs::read_dir(p.dir.join("node_modules"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            p.resolved_version(Some("fx-legacy-app"), "JSONStream")
                .as_deref(),
            Some("1.3.5"),
            "{client:?}: node_modules holds {listing:?}\n{}",
            run.output
        );
        assert_eq!(
            p.resolved_version(Some("fx-legacy-app"), "Base64")
                .as_deref(),
            Some("1.1.0")
        );
        if client == Client::Npm {
            let upper = file_text(&p, "node_modules/JSONStream/index.js");
            assert!(upper.contains("\"JSONStream\""), "{upper}");
            for url in p.npm_lock_resolved() {
                assert!(url.starts_with(&env.dp.url()), "{url}");
            }
        }
    }
    // Two packages whose names differ only in case keep their own bytes in the store.
    for name in ["JSONStream", "jsonstream"] {
        let path = format!("/{name}/-/{name}-1.3.5.tgz");
        let r = raw_http().get(env.url(&path)).send().await.expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let got = r.bytes().await.expect("bytes");
        let want = &env.fixture(name).versions["1.3.5"].tarball.bytes;
        assert_eq!(&got, want, "{path} served another package's bytes");
    }
    // Each spelling was fetched from the upstream once, as itself.
    assert_eq!(
        env.registry
            .count("GET", "/JSONStream/-/JSONStream-1.3.5.tgz"),
        1
    );
    assert_eq!(
        env.registry
            .count("GET", "/jsonstream/-/jsonstream-1.3.5.tgz"),
        1
    );
}

/// npm asks for the packument before it publishes (a 404 for a new package, which nproxy
/// remembers) and installs right after: the forwarded write's 2xx must end both the
/// remembered 404 and the cached copy, or the install fails for `negative_cache_secs`.
#[tokio::test(flavor = "multi_thread")]
async fn public_publish_then_install_through_nproxy() {
    let env = Env::builder()
        .set("NPROXY_NEGATIVE_CACHE_SECS", "3600")
        .set("NPROXY_PACKUMENT_MAX_AGE_SECS", "3600")
        .start()
        .await;
    let publisher = Project::new(&env.dir.path().join("publisher"), &env.dp.url(), &[]);
    // The user's own upstream token (not an nproxy one): passed through to the upstream.
    publisher.set_token("upstream-user-token");
    let publisher = blocking(move || {
        let r = publisher.publish("fx-new", "1.0.0");
        assert!(r.ok, "npm publish failed:\n{}", r.output);
        publisher
    })
    .await;
    assert_eq!(
        env.registry.count("PUT", "/fx-new"),
        1,
        "the publish reached the upstream"
    );
    let consumer = Project::new(
        &env.dir.path().join("consumer"),
        &env.dp.url(),
        &[("fx-new", "^1.0.0")],
    );
    let consumer = blocking(move || {
        let r = consumer.install(Client::Npm);
        assert!(
            r.ok,
            "install right after the publish failed:\n{}",
            r.output
        );
        consumer
    })
    .await;
    assert_eq!(
        consumer.installed_version("fx-new").as_deref(),
        Some("1.0.0")
    );

    // A new version of a package nproxy already holds (fresh for an hour).
    let publisher = blocking(move || {
        let r = publisher.publish("fx-new", "1.1.0");
        assert!(r.ok, "npm publish 1.1.0 failed:\n{}", r.output);
        publisher
    })
    .await;
    drop(publisher);
    let consumer = blocking(move || {
        let r = consumer.npm(&["install", "fx-new@1.1.0"]);
        assert!(r.ok, "install of the new version failed:\n{}", r.output);
        consumer
    })
    .await;
    assert_eq!(
        consumer.installed_version("fx-new").as_deref(),
        Some("1.1.0")
    );
}

/// The same across data planes: a publish through A is seen by B, which had cached the
/// package (fresh for an hour), through the Redis invalidation.
#[tokio::test(flavor = "multi_thread")]
async fn public_write_reaches_every_data_plane() {
    let s = Stack::start(&[]).await;
    s.org_and_token(true, &["proxy"]);
    let env = [("NPROXY_PACKUMENT_MAX_AGE_SECS", "3600")];
    let a = s.data_plane("dp-a", &env).await;
    let b = s
        .data_plane_on(
            "dp-b",
            &env,
            nproxy_tests::procs::Storage::Local(s.dir.path().join("store-b")),
        )
        .await;
    let versions = |v: &Value| -> Vec<String> {
        v["versions"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let get = |url: String| async move {
        let r = raw_http().get(url).send().await.expect("get");
        let code = r.status().as_u16();
        (code, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    // B remembers the 404 of a package that does not exist yet, and caches fx-c.
    assert_eq!(get(format!("{}/fx-pub", b.url())).await.0, 404);
    assert_eq!(
        versions(&get(format!("{}/fx-c", b.url())).await.1),
        vec!["1.0.0"]
    );
    for (name, version) in [("fx-pub", "1.0.0"), ("fx-c", "1.5.0")] {
        let (body, _) = publish_payload(name, version, 10);
        let r = raw_http()
            .put(format!("{}/{name}", a.url()))
            .bearer_auth("npm_usersOwnUpstreamToken")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status().as_u16(), 201, "publish {name} through A");
    }
    let (_, took) = eventually("B sees both publishes", Duration::from_secs(10), || async {
        let (code, pubdoc) = get(format!("{}/fx-pub", b.url())).await;
        let (_, c) = get(format!("{}/fx-c", b.url())).await;
        (code == 200 && versions(&pubdoc) == ["1.0.0"] && versions(&c).contains(&"1.5.0".into()))
            .then_some(())
    })
    .await;
    println!("a public publish through A reached B in {took:?}");
}

/// `nproxyctl dev` takes the data plane's configuration: a file (`--config`) with data-plane
/// keys and a `[control_plane]` section, and `NPROXY_*` variables; nproxyctl's own
/// `NPROXY_ENDPOINT` does not confuse it.
#[tokio::test(flavor = "multi_thread")]
async fn nproxyctl_dev_reads_the_data_plane_config() {
    let registry = Registry::start(&fixtures::standard()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, grpc, metrics) = (free_port(), free_port(), free_port());
    let config = dir.path().join("nproxy.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
             [dev]\ndir = \"{}\"\n[control_plane]\nlisten = \"127.0.0.1:{grpc}\"\n",
            registry.url(),
            dir.path().join("dev").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(binary("nproxyctl"))
        .args(["dev", "--config"])
        .arg(&config)
        .env("NPROXY_PACKUMENT_MAX_AGE_SECS", "0")
        .env("NPROXY_ENDPOINT", "http://127.0.0.1:1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nproxyctl dev");
    let stdout = child.stdout.take().expect("stdout");
    let banner = blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("Press Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines.join("\n")
    })
    .await;
    assert!(banner.contains(&format!("127.0.0.1:{port}")), "{banner}");
    let token = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .and_then(|t| t.split_whitespace().next())
        .expect("token line")
        .to_string();
    // The file's metrics listener is on; the variable's max age of 0 revalidates each time.
    let m = raw_http()
        .get(format!("http://127.0.0.1:{metrics}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(m.status().as_u16(), 200);
    for _ in 0..2 {
        let r = raw_http()
            .get(format!("http://127.0.0.1:{port}/fx-c"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 200);
    }
    // The second read is answered from the copy (stale-while-revalidate) and refreshed in
    // the background: the upstream sees it shortly after.
    nproxy_tests::eventually(
        "max age 0 from NPROXY_*: the second read revalidates",
        std::time::Duration::from_secs(10),
        || async { (registry.count("GET", "/fx-c") == 2).then_some(()) },
    )
    .await;
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    // RUST_LOG=warn: no DEBUG or INFO line from anyone (caps never raise a level).
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        !logs.contains("DEBUG") && !logs.contains(" INFO "),
        "logs under RUST_LOG=warn:\n{logs}"
    );
}

/// A whole-package unpublish leaves a tombstone: the same version number can never come
/// back with other bytes (npm publish → npm unpublish --force → change a file → publish).
/// And the revision forms clients send (`-rev/undefined` from pnpm 11) are accepted.
#[tokio::test(flavor = "multi_thread")]
async fn unpublished_numbers_stay_taken_and_every_revision_form_works() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["proxy", "publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let dp = s.data_plane("dp", &[]).await;
    let p = Project::new(&s.dir.path().join("p"), &dp.url(), &[]);
    p.set_token(&token);
    let p = blocking(move || {
        let r = p.publish("@acme/tomb", "1.0.0");
        assert!(r.ok, "publish:\n{}", r.output);
        let r = p.npm(&["unpublish", "@acme/tomb", "--force"]);
        assert!(r.ok, "unpublish --force:\n{}", r.output);
        p
    })
    .await;
    let url = format!("{}/@acme%2ftomb", dp.url());
    let get = raw_http()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(
        get.status().as_u16(),
        404,
        "an unpublished package is gone for readers"
    );
    // Different bytes under the old number: refused, on every try.
    let (body, _) = publish_payload("@acme/tomb", "1.0.0", 333);
    let r = raw_http()
        .put(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("put");
    assert_eq!(
        r.status().as_u16(),
        409,
        "1.0.0 was unpublished: never reused"
    );
    // A new number brings the package back.
    let p = blocking(move || {
        let r = p.publish("@acme/tomb", "1.0.1");
        assert!(r.ok, "publish 1.0.1 after the unpublish:\n{}", r.output);
        p
    })
    .await;
    drop(p);
    let doc: Value = raw_http()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(
        doc["_rev"].is_string(),
        "plain full reads carry _rev: {doc}"
    );
    assert_eq!(
        doc["versions"]
            .as_object()
            .map(|v| v.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["1.0.1".to_string()])
    );
    // pnpm 11 without a `_rev` to copy sends the word `undefined`.
    let r = raw_http()
        .delete(format!("{url}/-rev/undefined"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(
        r.status().as_u16(),
        200,
        "-rev/undefined deletes the current document"
    );
}
