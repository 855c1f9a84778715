//! Issue 3's acceptance: the control plane, Redis config distribution, nproxyctl and
//! `nproxyctl dev`, driven through the real binaries, a real redis-server, real gRPC over TCP
//! and the real npm client.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nproxy_tests::clients::{Client, Project};
use nproxy_tests::control::{ctl, ctl_with, ADMIN_TOKEN};
use nproxy_tests::procs::target_dir;
use nproxy_tests::registry::Registry;
use nproxy_tests::{eventually, fixtures};

use crate::support::blocking;

pub(crate) use nproxy_tests::stack::{status, Stack};

async fn wait_for_status(
    url: &str,
    token: Option<&str>,
    want: u16,
    within: Duration,
) -> Option<Duration> {
    let what = format!("{url} answers {want}");
    let ((), took) = eventually(&what, within, || async {
        (status(url, token).await == want).then_some(())
    })
    .await;
    Some(took)
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_needs_a_token_when_public_reads_are_off() {
    let s = Stack::start(&[]).await;
    let (_, secret) = s.org_and_token(false, &["proxy"]);
    let dp = s.data_plane("dp", &[]).await;

    let with = Project::new(&s.dir.path().join("with"), &dp.url(), &[("fx-a", "^2.0.0")]);
    with.set_token(&secret);
    let (with, run) = blocking(move || {
        let r = with.install(Client::Npm);
        (with, r)
    })
    .await;
    assert!(run.ok, "install with the token failed:\n{}", run.output);
    assert_eq!(
        with.resolved_version(None, "fx-a").as_deref(),
        Some("2.0.0")
    );

    let without = Project::new(
        &s.dir.path().join("without"),
        &dp.url(),
        &[("fx-a", "^2.0.0")],
    );
    let run = blocking(move || without.install(Client::Npm)).await;
    assert!(!run.ok, "install without a token must fail");
    assert!(run.output.contains("E401"), "{}", run.output);
    assert!(
        run.output.contains("authentication required"),
        "npm shows a readable reason:\n{}",
        run.output
    );
    // A token of the right org but a forged secret is refused too.
    assert_eq!(
        status(&format!("{}/fx-c", dp.url()), Some("nproxy_forged")).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_reaches_two_data_planes_through_redis() {
    // An hour between reconciles: only the invalidation message can carry the revocation.
    let s = Stack::start(&[("NPROXY_RECONCILE_INTERVAL_SECS", "3600")]).await;
    let (id, secret) = s.org_and_token(false, &["proxy"]);
    let refresh = [("NPROXY_ORG_CONFIG_REFRESH_SECS", "3600")];
    let a = s.data_plane("dp-a", &refresh).await;
    let b = s.data_plane("dp-b", &refresh).await;
    for dp in [&a, &b] {
        assert_eq!(
            status(&format!("{}/fx-c", dp.url()), Some(&secret)).await,
            200
        );
    }

    let started = Instant::now();
    s.ctl(&["token", "revoke", "--org", "acme", &id]);
    let revoked_at = started.elapsed();
    let (ua, ub) = (format!("{}/fx-c", a.url()), format!("{}/fx-c", b.url()));
    let (ra, rb) = tokio::join!(
        wait_for_status(&ua, Some(&secret), 401, Duration::from_secs(5)),
        wait_for_status(&ub, Some(&secret), 401, Duration::from_secs(5)),
    );
    let (ra, rb) = (
        ra.expect("data plane A still accepts the revoked token after 5 s"),
        rb.expect("data plane B still accepts the revoked token after 5 s"),
    );
    println!(
        "revocation: nproxyctl returned after {revoked_at:?}; refused by A after {ra:?}, by B after {rb:?} (from the start of the revoke command)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn survives_redis_restart_and_recovers_from_a_flush() {
    let mut s = Stack::start(&[("NPROXY_RECONCILE_INTERVAL_SECS", "2")]).await;
    let (_, secret) = s.org_and_token(true, &["proxy"]);
    let dp = s
        .data_plane("dp", &[("NPROXY_ORG_CONFIG_REFRESH_SECS", "3600")])
        .await;
    let url = format!("{}/fx-c", dp.url());
    assert_eq!(status(&url, None).await, 200);

    // Outage: the last known config keeps serving.
    s.redis.stop();
    assert_eq!(
        status(&url, None).await,
        200,
        "served during the Redis outage"
    );
    assert_eq!(status(&url, Some(&secret)).await, 200);

    // Back (empty: no persistence). A change made now reaches the data plane.
    s.redis.restart().await;
    s.ctl(&["org", "settings", "acme", "--public-reads", "false"]);
    let took = wait_for_status(&url, None, 401, Duration::from_secs(15)).await;
    let took = took.expect("the data plane did not pick up a change made after the Redis restart");
    println!("change after the Redis restart reached the data plane in {took:?}");
    assert_eq!(status(&url, Some(&secret)).await, 200);

    // Flush: the reconcile loop puts the org back.
    s.redis.cli(&["FLUSHALL"]);
    assert_eq!(s.redis.cli(&["EXISTS", "nproxy:v1:org:acme"]).trim(), "0");
    eventually(
        "the org's config comes back after the flush",
        Duration::from_secs(10),
        || async { (s.redis.cli(&["EXISTS", "nproxy:v1:org:acme"]).trim() == "1").then_some(()) },
    )
    .await;
    let fresh = s.data_plane("dp-fresh", &[]).await;
    let furl = format!("{}/fx-c", fresh.url());
    assert_eq!(
        status(&furl, None).await,
        401,
        "the fresh data plane sees public reads off"
    );
    assert_eq!(status(&furl, Some(&secret)).await, 200);
}

fn sqlite(db: &Path, sql: &str) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
        ])
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_detects_an_edited_row_and_a_deleted_newest_row() {
    let s = Stack::start(&[]).await;
    for org in ["edited", "truncated"] {
        s.ctl(&["org", "create", org]);
        for name in ["a", "b", "c"] {
            s.ctl(&[
                "token", "create", "--org", org, "--name", name, "--scope", "proxy",
            ]);
        }
        let v = s
            .ctl(&["-o", "json", "audit", "verify", "--org", org])
            .json();
        assert_eq!(v["ok"], true, "{v}");
        // org.created, key.created for each algorithm, three token.created.
        assert_eq!(v["events_checked"], 6);
    }
    let list = s.ctl(&["-o", "json", "org", "list"]).json();
    let id_of = |slug: &str| {
        list.as_array()
            .and_then(|a| a.iter().find(|o| o["slug"] == slug))
            .and_then(|o| o["id"].as_str())
            .expect("org id")
            .to_string()
    };
    let db = s.cp.dir.join("control.db");
    sqlite(
        &db,
        &format!(
            "UPDATE audit_events SET details_json = '{{\"name\":\"nobody\"}}' WHERE org_id = '{}' AND seq = 3",
            id_of("edited")
        ),
    );
    sqlite(
        &db,
        &format!(
            "DELETE FROM audit_events WHERE org_id = '{0}' AND seq = (SELECT MAX(seq) FROM audit_events WHERE org_id = '{0}')",
            id_of("truncated")
        ),
    );
    let edited = ctl(&s.cp.endpoint(), &["audit", "verify", "--org", "edited"]);
    assert!(!edited.ok, "verify must fail on an edited row");
    assert!(
        edited.stdout.contains("seq 3") && edited.stdout.contains("altered"),
        "{}",
        edited.stdout
    );
    let truncated = ctl(&s.cp.endpoint(), &["audit", "verify", "--org", "truncated"]);
    assert!(!truncated.ok, "verify must fail on a deleted newest row");
    assert!(
        truncated.stdout.contains("deleted or replaced"),
        "{}",
        truncated.stdout
    );
    assert!(
        truncated.stderr.contains("failed verification"),
        "{}",
        truncated.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_secrets_never_reach_logs_redis_or_the_database() {
    let s = Stack::start(&[("RUST_LOG", "trace")]).await;
    let (id, secret) = s.org_and_token(false, &["proxy", "publish"]);
    let dp = s.data_plane("dp", &[("RUST_LOG", "trace")]).await;
    let p = Project::new(&s.dir.path().join("p"), &dp.url(), &[("fx-a", "^2.0.0")]);
    p.set_token(&secret);
    let run = blocking(move || p.install(Client::Npm)).await;
    assert!(run.ok, "{}", run.output);
    s.ctl(&["token", "revoke", "--org", "acme", &id]);
    assert!(wait_for_status(
        &format!("{}/fx-c", dp.url()),
        Some(&secret),
        401,
        Duration::from_secs(5)
    )
    .await
    .is_some());

    let dp_log = dp.log_text();
    assert!(
        dp_log.len() > 1000 && dp_log.contains("DEBUG"),
        "verbose logging was on"
    );
    let cp_log = s.cp.log_text();
    for (what, haystack) in [
        ("data plane log", dp_log.into_bytes()),
        ("control plane log", cp_log.into_bytes()),
        ("redis", s.redis.dump_all()),
    ] {
        for needle in [secret.as_str(), ADMIN_TOKEN] {
            let text = String::from_utf8_lossy(&haystack);
            let leak = text
                .lines()
                .find(|l| l.contains(needle))
                .map(|l| l.replace(needle, "<SECRET>"));
            assert!(leak.is_none(), "a secret appears in the {what}: {leak:?}");
        }
    }
    let mut db_files = 0;
    for entry in std::fs::read_dir(&s.cp.dir).expect("cp dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("control.db") {
            continue;
        }
        db_files += 1;
        let bytes = std::fs::read(entry.path()).expect("read db file");
        for needle in [secret.as_str(), ADMIN_TOKEN] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a secret appears in {name}"
            );
        }
    }
    assert!(
        db_files >= 2,
        "the database and its WAL were checked ({db_files} files)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_errors_use_the_right_codes() {
    let s = Stack::start(&[]).await;
    let ep = s.cp.endpoint();
    let unauth = ctl_with(&ep, None, &["org", "list"]);
    assert!(
        !unauth.ok && unauth.stderr.contains("not authenticated"),
        "{}",
        unauth.stderr
    );
    let dp_cred = ctl_with(
        &ep,
        Some(nproxy_tests::control::DATA_PLANE_TOKEN),
        &["org", "list"],
    );
    assert!(
        !dp_cred.ok && dp_cred.stderr.contains("permission denied"),
        "{}",
        dp_cred.stderr
    );
    let bad = ctl(&ep, &["org", "create", "Not_A_Label"]);
    assert!(
        !bad.ok && bad.stderr.contains("invalid argument: slug"),
        "{}",
        bad.stderr
    );
    s.ctl(&["org", "create", "acme"]);
    let dup = ctl(&ep, &["org", "create", "acme"]);
    assert!(
        !dup.ok && dup.stderr.contains("already exists"),
        "{}",
        dup.stderr
    );
    let missing = ctl(&ep, &["org", "get", "nope"]);
    assert!(
        !missing.ok && missing.stderr.contains("not found"),
        "{}",
        missing.stderr
    );
    let scope = ctl(
        &ep,
        &["org", "settings", "acme", "--internal-scopes", "acme"],
    );
    assert!(
        !scope.ok && scope.stderr.contains("internal_scopes"),
        "{}",
        scope.stderr
    );
    // Deleting an org removes its config from Redis at once.
    assert_eq!(s.redis.cli(&["EXISTS", "nproxy:v1:org:acme"]).trim(), "1");
    s.ctl(&["org", "delete", "acme"]);
    assert_eq!(s.redis.cli(&["EXISTS", "nproxy:v1:org:acme"]).trim(), "0");
    // Key rotation keeps the old keys, retired: one of each algorithm (nproxy's Ed25519 and
    // the npm-format ECDSA P-256).
    s.ctl(&["org", "create", "keys"]);
    s.ctl(&["key", "rotate", "--org", "keys"]);
    let keys = s
        .ctl(&["-o", "json", "key", "list", "--org", "keys"])
        .json();
    for algorithm in ["ed25519", "ecdsa-p256"] {
        let statuses: Vec<&str> = keys
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| k["algorithm"] == algorithm)
            .filter_map(|k| k["status"].as_str())
            .collect();
        assert_eq!(statuses, vec!["retired", "active"], "{algorithm}: {keys}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nproxyctl_dev_prints_config_that_npm_can_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(&fixtures::standard()).await;
    let port = nproxy_tests::procs::free_port();
    let grpc = nproxy_tests::procs::free_port();
    let mut child = Command::new(target_dir().join("nproxyctl"))
        .arg("dev")
        .arg("--dir")
        .arg(dir.path().join("dev"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--grpc-listen", &format!("127.0.0.1:{grpc}")])
        .args(["--upstream", &registry.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nproxyctl dev");
    let stdout = child.stdout.take().expect("stdout");
    let printed = blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("Press Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await;
    let npmrc: Vec<String> = printed
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            l.starts_with("registry=") || (l.starts_with("//") && l.contains(":_authToken="))
        })
        .map(str::to_string)
        .collect();
    assert_eq!(npmrc.len(), 2, "printed:\n{}", printed.join("\n"));
    let project = Project::new(
        &dir.path().join("p"),
        &format!("http://127.0.0.1:{port}"),
        &[("fx-a", "^2.0.0")],
    );
    // Paste the printed lines into the project's .npmrc, as a user would.
    std::fs::write(project.dir.join(".npmrc"), npmrc.join("\n") + "\n").expect(".npmrc");
    let (project, run) = blocking(move || {
        let r = project.install(Client::Npm);
        (project, r)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        run.ok,
        "npm install with the printed config failed:\n{}",
        run.output
    );
    assert_eq!(
        project.resolved_version(Some("fx-a"), "@fx/b").as_deref(),
        Some("1.0.1")
    );
}

/// Several control planes publish to one Redis: a publish that arrives late must lose to a
/// newer one already there (else a revoked token could come back), a removal must not be
/// undone by a late publish of the deleted org, and a new org reusing the slug wins over
/// everything of the old one. The audit head only moves forward.
#[tokio::test(flavor = "multi_thread")]
async fn redis_keeps_the_newest_config_whatever_order_publishes_arrive_in() {
    use nproxy_control_plane::sink::{ConfigSink, RedisSink, Stamp};
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = nproxy_tests::control::Redis::start(dir.path()).await;
    let sink = RedisSink::connect(&redis.url()).await.expect("connect");
    let key = nproxy_proto::redis_layout::org_snapshot_key("acme");
    let stamp = |created_at_ms, version| Stamp {
        created_at_ms,
        version,
    };
    let held = || redis.cli(&["GET", &key]).trim().to_string();

    assert!(sink
        .publish("acme", stamp(100, 5), Some(b"v5".to_vec()))
        .await
        .expect("v5"));
    assert!(!sink
        .publish("acme", stamp(100, 4), Some(b"v4".to_vec()))
        .await
        .expect("v4"));
    assert_eq!(held(), "v5", "a late, older publish must not win");
    // The same stamp again (reconciling after a partial loss) writes.
    assert!(sink
        .publish("acme", stamp(100, 5), Some(b"v5".to_vec()))
        .await
        .expect("again"));
    assert_eq!(
        sink.published_stamp("acme").await.expect("stamp"),
        Some(stamp(100, 5))
    );
    // Deleted (deleting bumps the version): a tombstone a late publish can't undo.
    assert!(sink
        .publish("acme", stamp(100, 6), None)
        .await
        .expect("delete"));
    assert_eq!(held(), "");
    assert!(!sink
        .publish("acme", stamp(100, 5), Some(b"v5".to_vec()))
        .await
        .expect("late"));
    assert_eq!(held(), "", "the deleted org must stay deleted");
    // A new org with the slug outranks every version of the old one.
    assert!(sink
        .publish("acme", stamp(200, 1), Some(b"new".to_vec()))
        .await
        .expect("new org"));
    assert!(!sink
        .publish("acme", stamp(100, 9), Some(b"old".to_vec()))
        .await
        .expect("old org"));
    assert_eq!(held(), "new");

    sink.set_audit_head("org1", 6, "h6").await.expect("head 6");
    sink.set_audit_head("org1", 5, "h5").await.expect("head 5");
    assert_eq!(
        sink.audit_head("org1").await.expect("head"),
        Some((6, "h6".to_string()))
    );
}
