//! Issue 10's fault matrix for the data plane's own process and disk: `kill -9` in the
//! middle of concurrent publishes and cold downloads, and a store whose disk fills up.
//! Afterwards nothing partial is visible, every acknowledged publish is there exactly once,
//! the audit outbox drains and the audit chain verifies.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nproxy_tests::fixtures::publish_payload;
use nproxy_tests::procs::{DataPlane, Storage};
use serde_json::Value;

use crate::control_plane::Stack;
use crate::faults::verify_local_store;
use crate::support::{files_under, raw_http, sri_sha512};

async fn publish(url: &str, token: &str, name: &str, version: &str) -> u16 {
    let (body, _) = publish_payload(name, version, 2_000);
    raw_http()
        .put(format!("{url}/{}", name.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(60))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The document's versions, and for each whether its tarball downloads with the bytes its
/// `dist.integrity` promises.
async fn check_package(dp: &DataPlane, token: &str, name: &str) -> (u16, Vec<(String, bool)>) {
    let res = raw_http()
        .get(format!("{}/{}", dp.url(), name.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let code = res.status().as_u16();
    let doc: Value = res.json().await.unwrap_or(Value::Null);
    let mut out = Vec::new();
    for (v, m) in doc["versions"].as_object().cloned().unwrap_or_default() {
        let url = m["dist"]["tarball"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let want = m["dist"]["integrity"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let bytes = raw_http()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("tarball")
            .bytes()
            .await
            .unwrap_or_default();
        let got = sri_sha512(&bytes);
        out.push((v, got == want));
    }
    (code, out)
}

async fn audit_chain_ok(s: &Stack) -> bool {
    let v = s
        .ctl(&["-o", "json", "audit", "verify", "--org", "acme"])
        .json();
    v["ok"] == true
}

async fn published_events(s: &Stack) -> Vec<Value> {
    s.ctl(&[
        "-o",
        "json",
        "audit",
        "list",
        "--org",
        "acme",
        "--type",
        "package.published",
    ])
    .stdout
    .lines()
    .filter_map(|l| serde_json::from_str(l).ok())
    .collect()
}

/// `kill -9` while 50 internal publishes and 50 cold tarball downloads are in flight. After
/// a restart on the same store: every publish answered 201 is there once with a tarball
/// that matches its integrity; an unanswered one is either absent or equally whole; every
/// stored public tarball matches its integrity; the outbox drains; the chain verifies.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_publishes_and_downloads_loses_nothing() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let mut dp = s.data_plane("dp", &[]).await;
    // The big packument once, so downloads start right away.
    assert_eq!(
        raw_http()
            .get(format!("{}/fx-big", dp.url()))
            .send()
            .await
            .expect("fx-big")
            .status()
            .as_u16(),
        200
    );

    let acked = Arc::new(AtomicUsize::new(0));
    let mut publishes = tokio::task::JoinSet::new();
    let mut downloads = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (url, token, acked) = (dp.url(), token.clone(), acked.clone());
        publishes.spawn(async move {
            let code = publish(&url, &token, &format!("@acme/k{i}"), "1.0.0").await;
            if code == 201 {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            (i, code)
        });
        let url = format!("{}/fx-big/-/fx-big-1.0.{i}.tgz", dp.url());
        downloads.spawn(async move {
            raw_http()
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        });
    }
    // Kill once some publishes were acknowledged and others are still in flight.
    let _ = nproxy_tests::eventually(
        "some publishes acknowledged",
        Duration::from_secs(60),
        || {
            let n = acked.load(Ordering::SeqCst);
            async move { (n >= 5).then_some(()) }
        },
    )
    .await;
    dp.kill9();
    let mut ok = BTreeSet::new();
    while let Some(r) = publishes.join_next().await {
        let (i, code) = r.expect("publish task");
        if code == 201 {
            ok.insert(i);
        }
    }
    while downloads.join_next().await.is_some() {}
    eprintln!("{} of 50 publishes acknowledged before kill -9", ok.len());

    // Entries of publishes that never landed wait this long before they are dropped.
    let dp = s
        .data_plane("dp-after", &[("NPROXY_AUDIT_OUTBOX_GRACE_SECS", "5")])
        .await;
    for i in 0..50 {
        let name = format!("@acme/k{i}");
        let (code, versions) = check_package(&dp, &token, &name).await;
        if ok.contains(&i) {
            assert_eq!(code, 200, "{name} was acknowledged");
            assert_eq!(versions, vec![("1.0.0".to_string(), true)], "{name}");
        } else {
            assert!(
                code == 404 || versions == vec![("1.0.0".to_string(), true)],
                "{name}: unacknowledged but partly there ({code} {versions:?})"
            );
        }
    }
    let store = s.dir.path().join("store");
    verify_local_store(&store);
    for i in 0..50 {
        let code = raw_http()
            .get(format!("{}/fx-big/-/fx-big-1.0.{i}.tgz", dp.url()))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(code, 200, "fx-big 1.0.{i} after the restart");
    }
    verify_local_store(&store);
    nproxy_tests::eventually("the outbox drains", Duration::from_secs(60), || {
        let left = files_under(&store.join("outbox")).len();
        async move { (left == 0).then_some(()) }
    })
    .await;
    assert!(
        files_under(&store.join("quarantine")).is_empty(),
        "no outbox entry was left unreadable by the kill"
    );
    let events = published_events(&s).await;
    for i in &ok {
        let name = format!("@acme/k{i}");
        let n = events
            .iter()
            .filter(|e| e["details"]["name"] == name.as_str())
            .count();
        assert_eq!(n, 1, "{name}: one package.published event");
    }
    assert!(audit_chain_ok(&s).await, "the audit chain verifies");
}

/// The local store's disk fills up (a 16 MiB tmpfs in the data plane's own mount
/// namespace, filled through `/proc/<pid>/root`): a cold tarball and an internal publish
/// fail with a 500 that carries only a request id, nothing partial becomes visible, and
/// once space is freed the same requests succeed. Skipped where mount namespaces are not
/// permitted (not root).
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_cleanly_and_recovers_when_space_frees() {
    // Both steps must be allowed: a new mount namespace, and a tmpfs mount inside it
    // (containers may grant the first and refuse the second).
    let probe_dir = tempfile::tempdir().expect("probe dir");
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", r#"mount -t tmpfs -o size=1m tmpfs "$0""#])
        .arg(probe_dir.path())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED: mount namespaces are not permitted here (needs root): disk-full test not run"
        );
        return;
    }
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let store = s.dir.path().join("tmpfs-store");
    std::fs::create_dir_all(&store).expect("store dir");
    let store_s = store.to_string_lossy().to_string();
    let dp = s
        .data_plane_wrapped(
            "dp",
            &[],
            Storage::Local(store.clone()),
            &[
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                r#"mount -t tmpfs -o size=16m tmpfs "$0" && exec "$@""#,
                &store_s,
            ],
        )
        .await;
    // The store as the data plane sees it.
    let inside = PathBuf::from(format!("/proc/{}/root{}", dp.pid(), store_s));
    assert!(inside.join(".tmp").exists() || files_under(&inside).is_empty());
    assert_eq!(
        raw_http()
            .get(format!("{}/fx-a", dp.url()))
            .send()
            .await
            .expect("fx-a")
            .status()
            .as_u16(),
        200
    );

    // Fill the disk.
    let filler = inside.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    let res = raw_http()
        .get(format!("{}/fx-a/-/fx-a-2.0.0.tgz", dp.url()))
        .send()
        .await
        .expect("tarball");
    let code = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(code, 500, "{text}");
    assert!(
        text.contains("request id") && !text.contains("space"),
        "{text}"
    );
    let code = publish(&dp.url(), &token, "@acme/full", "1.0.0").await;
    assert!(code >= 500, "a publish onto a full disk: {code}");
    assert_eq!(check_package(&dp, &token, "@acme/full").await.0, 404);
    verify_local_store(&inside);

    std::fs::remove_file(&filler).expect("free space");
    assert_eq!(
        raw_http()
            .get(format!("{}/fx-a/-/fx-a-2.0.0.tgz", dp.url()))
            .send()
            .await
            .expect("tarball")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(publish(&dp.url(), &token, "@acme/full", "1.0.0").await, 201);
    let (code, versions) = check_package(&dp, &token, "@acme/full").await;
    assert_eq!((code, versions), (200, vec![("1.0.0".to_string(), true)]));
    assert_eq!(verify_local_store(&inside), 1);
}
