//! Issue 12's scale test: nproxy run the way deploy/ runs it, on loopback. PostgreSQL,
//! Redis, SeaweedFS, two control planes and three data planes (started with the `args` and
//! `env` of `deploy/kubernetes/base`, see `nproxy_tests::manifest`) behind HAProxy with
//! active health checks. While clients work through the balancer without retries (a loop of
//! `npm ci --fetch-retries=0` of a ~50-package project, packument and tarball readers, a
//! publisher of internal versions), a token is revoked and every data plane must refuse it,
//! then every data plane and every control plane is restarted in turn. Acceptance: no
//! request failed (counted from HAProxy's log and by the clients), every acknowledged
//! publish is there once, and the audit chain verifies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nproxy_tests::clients::Project;
use nproxy_tests::control::{ctl, Redis, ADMIN_TOKEN, DATA_PLANE_TOKEN, MASTER_KEY};
use nproxy_tests::fixtures::{publish_payload, FixturePackage};
use nproxy_tests::haproxy::Haproxy;
use nproxy_tests::manifest::{self, Process};
use nproxy_tests::procs::{free_port, SeaweedFs};
use nproxy_tests::registry::Registry;
use nproxy_tests::stack::status;
use serde_json::Value;

use crate::support::{blocking, raw_http};

/// 50 public packages: 10 the project depends on, each pulling in 4 of the other 40.
fn scale_packages() -> Vec<FixturePackage> {
    let mut out = Vec::new();
    for i in 10..50 {
        out.push(FixturePackage::new(&format!("scale-{i}")).version("1.0.0", &[], 2_000 + i * 97));
    }
    for i in 0..10 {
        let deps: Vec<(String, &str)> = (0..4)
            .map(|k| (format!("scale-{}", 10 + (i * 4 + k) % 40), "^1.0.0"))
            .collect();
        let deps: Vec<(&str, &str)> = deps.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        out.push(FixturePackage::new(&format!("scale-{i}")).version("1.0.0", &deps, 1_000));
    }
    out
}

const S3_KEY: &str = "scale-test";

fn secrets(database_url: &str) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "nproxy-control-plane-secrets",
            "master-key",
            MASTER_KEY.into(),
        ),
        (
            "nproxy-control-plane-secrets",
            "admin-token",
            ADMIN_TOKEN.into(),
        ),
        (
            "nproxy-control-plane-secrets",
            "database-url",
            database_url.into(),
        ),
        ("nproxy-data-plane-token", "token", DATA_PLANE_TOKEN.into()),
        ("nproxy-s3-credentials", "access-key-id", S3_KEY.into()),
        ("nproxy-s3-credentials", "secret-access-key", S3_KEY.into()),
    ]
}

/// What the clients saw, each kept by its own loop.
#[derive(Default)]
struct Seen {
    ok: u64,
    failures: Vec<String>,
    slowest: Duration,
}

impl Seen {
    fn record(&mut self, took: Duration, outcome: Result<(), String>) {
        self.slowest = self.slowest.max(took);
        match outcome {
            Ok(()) => self.ok += 1,
            Err(e) => self.failures.push(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_restarts_behind_haproxy_fail_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let database_url = nproxy_test_postgres::database_url();
    let redis = Redis::start(&root.join("redis")).await;
    let weed = SeaweedFs::start().await;
    let upstream = Registry::start(&scale_packages()).await;
    let owned = secrets(&database_url);
    let secrets: Vec<(&str, &str, &str)> =
        owned.iter().map(|(a, b, c)| (*a, *b, c.as_str())).collect();

    // Two control planes, as control-plane.yaml declares them; only addresses and a short
    // drain differ.
    let mut cps = Vec::new();
    let mut admin_apis = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let http_port = free_port();
        admin_apis.push(format!("http://127.0.0.1:{http_port}/api/v1/openapi.json"));
        let c = manifest::container("control-plane.yaml", &secrets).with(&[
            ("NPROXY_LISTEN", &format!("127.0.0.1:{port}")),
            ("NPROXY_HTTP_LISTEN", &format!("127.0.0.1:{http_port}")),
            ("NPROXY_REDIS_URL", &redis.url()),
            ("NPROXY_DRAIN_SECS", "1"),
        ]);
        cps.push(
            Process::start(
                "nproxy-control-plane",
                c,
                port,
                root.join(format!("cp{i}.log")),
            )
            .await,
        );
    }
    // The manifest's admin HTTP API listens on each (its readiness is the gRPC port's).
    for url in &admin_apis {
        let up = || async { (nproxy_tests::stack::status(url, None).await == 200).then_some(()) };
        nproxy_tests::eventually("the admin API answers", Duration::from_secs(10), up).await;
    }
    let cp_list = cps.iter().map(Process::url).collect::<Vec<_>>().join(",");
    let admin = |args: &[&str]| {
        let r = ctl(&cp_list, args);
        assert!(r.ok, "nproxyctl {args:?}: {}", r.stderr);
        r
    };

    // The org the manifests' data planes serve (`default_org`), an internal scope, and
    // tokens: one the clients use, one to revoke.
    let data_env = manifest::container("data-plane.yaml", &secrets);
    let org = data_env.env["NPROXY_DEFAULT_ORG"].clone();
    let bucket = data_env.env["NPROXY_STORAGE__S3__BUCKET"].clone();
    weed.bucket(&bucket).await;
    admin(&["org", "create", &org]);
    admin(&[
        "org",
        "settings",
        &org,
        "--public-reads",
        "false",
        "--internal-scopes",
        "@acme",
    ]);
    let token = |name: &str| {
        admin(&[
            "-o", "json", "token", "create", "--org", &org, "--name", name, "--scope", "proxy",
            "--scope", "publish",
        ])
        .json()
    };
    let client_token = token("clients")["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let leaving = token("leaving");
    let (leaving_id, leaving_secret) = (
        leaving["id"].as_str().expect("id").to_string(),
        leaving["secret"].as_str().expect("secret").to_string(),
    );

    // Three data planes, as data-plane.yaml declares them.
    let mut dps = Vec::new();
    for i in 0..3 {
        let port = free_port();
        let c = data_env.clone().with(&[
            ("NPROXY_LISTEN", &format!("127.0.0.1:{port}")),
            (
                "NPROXY_METRICS_LISTEN",
                &format!("127.0.0.1:{}", free_port()),
            ),
            ("NPROXY_UPSTREAM", &upstream.url()),
            ("NPROXY_REDIS_URL", &redis.url()),
            ("NPROXY_CONTROL_PLANE_URL", &cp_list),
            ("NPROXY_STORAGE__S3__ENDPOINT", &weed.endpoint),
            ("NPROXY_STORAGE__S3__PATH_STYLE", "true"),
            ("NPROXY_DRAIN_SECS", "2"),
            ("NPROXY_SHUTDOWN_GRACE_SECS", "20"),
        ]);
        dps.push(
            Process::start(
                "nproxy-data-plane",
                c,
                port,
                root.join(format!("dp{i}.log")),
            )
            .await,
        );
    }
    let lb = Haproxy::start(
        &root.join("haproxy"),
        &dps.iter().map(|d| d.port).collect::<Vec<_>>(),
        200,
    )
    .await;
    let lb_url = lb.url();

    // An internal package the project depends on, then the lockfile (one resolving install).
    let (body, _) = publish_payload("@acme/base", "1.0.0", 3_000);
    let r = raw_http()
        .put(format!("{lb_url}/@acme%2fbase"))
        .bearer_auth(&client_token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
    let deps: Vec<(String, &str)> = (0..10).map(|i| (format!("scale-{i}"), "^1.0.0")).collect();
    let mut deps: Vec<(&str, &str)> = deps.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    deps.push(("@acme/base", "^1.0.0"));
    let project = Project::new(&root.join("app"), &lb_url, &deps);
    project.set_token(&client_token);
    let project = blocking(move || {
        let r = project.npm(&["install"]);
        assert!(r.ok, "npm install: {}", r.output);
        project
    })
    .await;
    let locked = project.npm_lock_resolved().len();
    assert!(locked >= 51, "the lockfile holds the whole tree: {locked}");

    // The client loops.
    let stop = Arc::new(AtomicBool::new(false));
    let npm_seen = Arc::new(Mutex::new(Seen::default()));
    let npm_loop = {
        let (stop, seen) = (stop.clone(), npm_seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                project.clear_caches();
                project.remove_node_modules();
                let t = Instant::now();
                let r = project.npm(&["ci", "--fetch-retries=0"]);
                let outcome = if r.ok { Ok(()) } else { Err(r.output) };
                seen.lock().expect("seen").record(t.elapsed(), outcome);
            }
        })
    };
    let http_seen = Arc::new(Mutex::new(Seen::default()));
    let mut readers = Vec::new();
    for reader in 0..2u64 {
        let (stop, seen, url, token) = (
            stop.clone(),
            http_seen.clone(),
            lb_url.clone(),
            client_token.clone(),
        );
        readers.push(tokio::spawn(async move {
            let client = raw_http();
            let mut n = reader;
            while !stop.load(Ordering::Relaxed) {
                n += 7;
                let pkg = format!("scale-{}", n % 50);
                let path = if n % 3 == 0 {
                    format!("/{pkg}/-/{pkg}-1.0.0.tgz")
                } else {
                    format!("/{pkg}")
                };
                let t = Instant::now();
                let outcome = match client
                    .get(format!("{url}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(format!("GET {path}: body: {e}")),
                    },
                    Ok(r) => Err(format!("GET {path}: {}", r.status())),
                    Err(e) => Err(format!("GET {path}: {e}")),
                };
                seen.lock().expect("seen").record(t.elapsed(), outcome);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }));
    }
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let publish_seen = Arc::new(Mutex::new(Seen::default()));
    let publisher = {
        let (stop, seen, acked, url, token) = (
            stop.clone(),
            publish_seen.clone(),
            acknowledged.clone(),
            lb_url.clone(),
            client_token.clone(),
        );
        tokio::spawn(async move {
            let mut patch = 0;
            while !stop.load(Ordering::Relaxed) {
                let version = format!("1.0.{patch}");
                patch += 1;
                let (body, _) = publish_payload("@acme/rolling", &version, 1_000);
                let t = Instant::now();
                let r = raw_http()
                    .put(format!("{url}/@acme%2frolling"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let outcome = match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        acked.lock().expect("acked").push(version.clone());
                        Ok(())
                    }
                    Ok(r) => Err(format!(
                        "publish {version}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Err(format!("publish {version}: {e}")),
                };
                seen.lock().expect("seen").record(t.elapsed(), outcome);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Revoke a token every data plane has seen: each must refuse it within a bounded wait.
    for dp in &dps {
        assert_eq!(
            status(&format!("{}/scale-0", dp.url()), Some(&leaving_secret)).await,
            200
        );
    }
    let revoked_at = Instant::now();
    admin(&["token", "revoke", "--org", &org, &leaving_id]);
    let mut waits = Vec::new();
    for dp in &dps {
        let (url, secret) = (format!("{}/scale-0", dp.url()), leaving_secret.clone());
        waits.push(tokio::spawn(async move {
            let (_, took) = nproxy_tests::eventually(
                "every data plane refuses a revoked token",
                Duration::from_secs(10),
                || {
                    let (url, secret) = (url.clone(), secret.clone());
                    async move { (status(&url, Some(&secret)).await == 401).then_some(()) }
                },
            )
            .await;
            took
        }));
    }
    let mut refusal_delays = Vec::new();
    for w in waits {
        refusal_delays.push(w.await.expect("refusal wait"));
    }
    let refused_by_all = revoked_at.elapsed();

    // Rolling restart: each data plane, then each control plane, one at a time; a data plane
    // is only replaced once the balancer has the previous one back.
    let now_ms = || u64::try_from(nproxy_common::time::now_ms()).unwrap_or(0);
    let restarts_from_ms = now_ms();
    let mut restarts = 0;
    for (i, dp) in dps.iter_mut().enumerate() {
        let ups_before = lb
            .events()
            .iter()
            .filter(|l| l.contains(&format!("dp{i} is UP")))
            .count();
        let status = dp.stop(Duration::from_secs(30)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "dp{i} stops cleanly: {status:?}\n{}",
            dp.log_text()
        );
        dp.start_again().await;
        restarts += 1;
        nproxy_tests::eventually(
            "the balancer takes the restarted data plane back",
            Duration::from_secs(20),
            || {
                let up = lb
                    .events()
                    .iter()
                    .filter(|l| l.contains(&format!("dp{i} is UP")))
                    .count();
                async move { (up > ups_before).then_some(()) }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (i, cp) in cps.iter_mut().enumerate() {
        let status = cp.stop(Duration::from_secs(20)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "cp{i} stops cleanly: {status:?}\n{}",
            cp.log_text()
        );
        cp.start_again().await;
        restarts += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let restarts_to_ms = now_ms();
    tokio::time::sleep(Duration::from_secs(1)).await;

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    publisher.await.expect("publisher");
    blocking(move || npm_loop.join().expect("npm loop")).await;

    // The balancer's account: every request it passed on, none failed.
    let logged = lb.requests();
    let failed: Vec<_> = logged.iter().filter(|r| r.failed()).collect();
    assert!(
        failed.is_empty(),
        "requests failed at the balancer: {failed:#?}\nevents: {:#?}",
        lb.events()
    );
    // The clients' own account.
    let take = |seen: &Mutex<Seen>| std::mem::take(&mut *seen.lock().expect("seen"));
    let (npm, http, publishes) = (take(&npm_seen), take(&http_seen), take(&publish_seen));
    for (what, seen) in [("npm ci", &npm), ("reader", &http), ("publish", &publishes)] {
        assert!(
            seen.failures.is_empty(),
            "{what} failures: {:#?}",
            seen.failures
        );
    }
    assert!(
        npm.ok >= 2,
        "npm ci ran during the restarts: {} runs",
        npm.ok
    );

    let during: Vec<_> = logged
        .iter()
        .filter(|r| r.accepted_ms >= restarts_from_ms && r.accepted_ms <= restarts_to_ms)
        .collect();
    let slowest = during
        .iter()
        .max_by_key(|r| r.total_ms)
        .expect("requests during the restarts");
    let mut per_server = std::collections::BTreeMap::<&str, usize>::new();
    for r in &logged {
        *per_server.entry(r.server.as_str()).or_default() += 1;
    }

    // Every acknowledged publish is there, once; the audit chain of the org verifies.
    let acked = acknowledged.lock().expect("acked").clone();
    assert!(
        !acked.is_empty(),
        "some versions were published during the run"
    );
    let doc: Value = raw_http()
        .get(format!("{lb_url}/@acme%2frolling"))
        .bearer_auth(&client_token)
        .send()
        .await
        .expect("packument")
        .json()
        .await
        .expect("json");
    let versions = doc["versions"].as_object().expect("versions");
    for v in &acked {
        assert!(versions.contains_key(v), "acknowledged {v} is missing");
    }
    assert_eq!(
        versions.len(),
        acked.len(),
        "nothing but the acknowledged versions"
    );
    let published: Vec<Value> = admin(&[
        "-o",
        "json",
        "audit",
        "list",
        "--org",
        &org,
        "--type",
        "package.published",
    ])
    .stdout
    .lines()
    .filter_map(|l| serde_json::from_str(l).ok())
    .filter(|e: &Value| e["details"]["name"] == "@acme/rolling")
    .collect();
    for v in &acked {
        let n = published
            .iter()
            .filter(|e| e["details"]["version"] == v.as_str())
            .count();
        assert_eq!(n, 1, "one package.published event for {v}");
    }
    let verified = admin(&["-o", "json", "audit", "verify", "--org", &org]).json();
    assert_eq!(verified["ok"], true, "{verified}");

    println!(
        "scale test: {} requests through the balancer ({} during the restarts), 0 failed; per server {per_server:?}; \
         {restarts} restarts (3 data planes, 2 control planes); slowest request during the restarts {} ms ({} {} via {}); \
         npm ci: {} runs, slowest {:?}; readers: {} requests, slowest {:?}; publishes: {} acknowledged, slowest {:?}; \
         revoked token refused by all 3 data planes after {:?} (each: {:?}); {} audit events verified",
        logged.len(),
        during.len(),
        slowest.total_ms,
        slowest.method,
        slowest.path,
        slowest.server,
        npm.ok,
        npm.slowest,
        http.ok,
        http.slowest,
        acked.len(),
        publishes.slowest,
        refused_by_all,
        refusal_delays,
        verified["events_checked"],
    );
}
