//! Issue 10's fault matrix for the upstream: a `FaultProxy` between the data plane and the
//! fixture registry makes it hang, stall, trickle, fail, lie and cut off. Each test asserts
//! what a client sees (status and error text, within a generous bound rather than a timing)
//! and the mechanism (the upstream got no connection while the breaker was open; nothing
//! bad was stored), then checks the store: every stored document parses and every stored
//! tarball matches an integrity its document lists.

use std::path::Path;
use std::time::Duration;

use nproxy_tests::faults::Fault;
use serde_json::Value;

use crate::support::{files_under, raw_http, sri_sha512, Env};

/// Small deadlines so faults show quickly.
fn quick() -> Vec<(&'static str, &'static str)> {
    vec![
        ("NPROXY_UPSTREAM_CONNECT_TIMEOUT_MS", "500"),
        ("NPROXY_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "1500"),
        ("NPROXY_UPSTREAM_IDLE_TIMEOUT_MS", "1000"),
        ("NPROXY_UPSTREAM_TIMEOUT_MS", "4000"),
        ("NPROXY_UPSTREAM_BREAKER_PROBE_SECS", "1"),
    ]
}

async fn faulty(extra: &[(&str, &str)]) -> Env {
    let mut b = Env::builder().faulty_upstream();
    for (k, v) in quick().into_iter().chain(extra.iter().copied()) {
        b = b.set(k, v);
    }
    b.start().await
}

/// GET through the data plane; prints status and time (the note on issue 10 reports them).
async fn get(env: &Env, path: &str) -> (u16, Vec<u8>) {
    let started = std::time::Instant::now();
    let res = raw_http()
        .get(env.url(path))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("send");
    let code = res.status().as_u16();
    let body = res.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    eprintln!("GET {path}: {code} in {} ms", started.elapsed().as_millis());
    (code, body)
}

fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).to_string())
}

/// Every stored public document parses as JSON with `versions`; every stored tarball's
/// sha512 is an integrity one of the documents lists. Returns the number of tarballs.
pub fn verify_local_store(root: &Path) -> usize {
    let mut integrities = std::collections::HashSet::new();
    for doc in files_under(&root.join("public/packuments")) {
        let bytes = std::fs::read(&doc).expect("read document");
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", doc.display()));
        let versions = v["versions"]
            .as_object()
            .unwrap_or_else(|| panic!("{} has no versions", doc.display()));
        for m in versions.values() {
            if let Some(i) = m["dist"]["integrity"].as_str() {
                integrities.insert(i.to_string());
            }
        }
    }
    let tarballs = files_under(&root.join("public/tarballs"));
    for t in &tarballs {
        let bytes = std::fs::read(t).expect("read tarball");
        let i = sri_sha512(&bytes);
        assert!(
            integrities.contains(&i),
            "stored tarball {} matches no listed integrity",
            t.display()
        );
    }
    tarballs.len()
}

const WARM: &[&str] = &["/fx-a", "/fx-c", "/@fx%2fb", "/fx-a/-/fx-a-1.0.0.tgz"];

/// A black-holed upstream (accepts, never answers): cached packuments are answered from
/// the copy at once (stale-while-revalidate), the failed background refreshes open the
/// breaker, and then an uncached package fails fast with a 503 that says the upstream is
/// unreachable, without a connection to the upstream. When the upstream answers again,
/// the probe closes the breaker and the uncached package installs.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_upstream_serves_copies_and_fails_fast_behind_the_breaker() {
    let env = faulty(&[
        ("NPROXY_PACKUMENT_MAX_AGE_SECS", "0"),
        ("NPROXY_UPSTREAM_BREAKER_FAILURES", "3"),
    ])
    .await;
    let faults = env.upstream_faults.clone().expect("fault proxy");
    for p in WARM {
        assert_eq!(get(&env, p).await.0, 200, "warming {p}");
    }
    faults.set(Fault::BlackHole);

    // Every copy is stale (max age 0) and still answered, however long the upstream hangs.
    for p in ["/fx-a", "/fx-c", "/@fx%2fb"] {
        let (code, body) = get(&env, p).await;
        assert_eq!(code, 200, "{p}: {}", error_text(&body));
    }
    // Their background refreshes time out one by one and open the breaker.
    nproxy_tests::eventually("the breaker opens", Duration::from_secs(30), || async {
        let open = env.dp.metric("nproxy_upstream_breaker_open", &[]).await;
        if open == 1.0 {
            return Some(());
        }
        // Keep asking: each stale read starts a refresh once the previous one ended.
        let _ = get(&env, "/fx-c").await;
        None
    })
    .await;

    let before = faults.accepted();
    let (code, body) = get(&env, "/fx-big").await;
    assert_eq!(code, 503, "uncached while the breaker is open");
    let text = error_text(&body);
    assert!(text.contains("upstream registry is unreachable"), "{text}");
    for p in ["/fx-a", "/fx-c", "/@fx%2fb", "/fx-a/-/fx-a-1.0.0.tgz"] {
        assert_eq!(get(&env, p).await.0, 200, "{p} from the copy");
    }
    let (code, _) = get(&env, "/fx-a/-/fx-a-1.1.0.tgz").await;
    assert_eq!(code, 503, "an uncached tarball while the breaker is open");
    // The probe runs every second meanwhile (into the black hole); requests add nothing.
    let probes = env
        .dp
        .metric(
            "nproxy_upstream_breaker_transitions_total",
            &["to=\"probe_failed\""],
        )
        .await;
    assert!(
        faults.accepted() - before <= probes as usize + 2,
        "requests reached the upstream while the breaker was open: {} connections, {probes} probes",
        faults.accepted() - before
    );
    let log = env.dp.log_text();
    assert_eq!(
        log.matches("circuit breaker open").count(),
        1,
        "logged once per transition"
    );

    // The upstream comes back: the probe closes the breaker.
    faults.set(Fault::Pass);
    nproxy_tests::eventually(
        "the probe closes the breaker",
        Duration::from_secs(20),
        || async { (get(&env, "/fx-big").await.0 == 200).then_some(()) },
    )
    .await;
    assert_eq!(
        env.dp.metric("nproxy_upstream_breaker_open", &[]).await,
        0.0
    );
    assert!(env.dp.log_text().contains("circuit breaker closed"));
    assert!(verify_local_store(&env.local_store()) >= 1);
}

/// A tarball whose headers come promptly and whose body trickles at 1 byte/s is cut by the
/// idle deadline (1 s here), not held for the whole download; nothing is stored, and the
/// next download after the upstream recovers is whole and verified.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_tarball_is_cut_by_the_idle_deadline() {
    let env = faulty(&[("NPROXY_UPSTREAM_BREAKER_FAILURES", "0")]).await;
    let faults = env.upstream_faults.clone().expect("fault proxy");
    assert_eq!(get(&env, "/fx-a").await.0, 200);
    faults.set(Fault::TrickleBody(1));
    // 80 KB at 1 byte/s would take a day; the client gets an error or a cut body.
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        raw_http().get(env.url("/fx-a/-/fx-a-2.0.0.tgz")).send(),
    )
    .await
    .expect("answered within the bound");
    match res {
        Ok(r) if r.status().as_u16() == 200 => {
            let body = tokio::time::timeout(Duration::from_secs(30), r.bytes())
                .await
                .expect("the body ends within the bound");
            assert!(body.is_err(), "a trickled tarball was sent whole");
        }
        Ok(r) => {
            let code = r.status().as_u16();
            let text = error_text(&r.bytes().await.unwrap_or_default());
            assert!(matches!(code, 502 | 504), "{code}: {text}");
        }
        Err(_) => {}
    }
    assert!(
        env.dp
            .log_text()
            .contains("the upstream sent nothing for 1000 ms"),
        "the idle deadline cut it"
    );
    faults.set(Fault::Pass);
    let (code, body) = get(&env, "/fx-a/-/fx-a-2.0.0.tgz").await;
    assert_eq!(code, 200);
    assert!(body.len() > 80_000);
    assert_eq!(verify_local_store(&env.local_store()), 1);
}

/// Slow but within the deadlines (1 s per answer): served. Slower than the first-byte
/// deadline (4 s against 0.5 + 1.5 s): a 504 that says so, for an uncached package.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upstream_is_waited_for_up_to_the_first_byte_deadline() {
    let env = faulty(&[("NPROXY_UPSTREAM_BREAKER_FAILURES", "0")]).await;
    let faults = env.upstream_faults.clone().expect("fault proxy");
    faults.set(Fault::Delay(Duration::from_secs(1)));
    assert_eq!(get(&env, "/fx-a").await.0, 200);
    faults.set(Fault::Delay(Duration::from_secs(4)));
    let (code, body) = get(&env, "/fx-c").await;
    assert_eq!(code, 504);
    assert!(
        error_text(&body).contains("no response headers"),
        "{}",
        error_text(&body)
    );
    verify_local_store(&env.local_store());
}

/// An upstream that fails or lies: 500s, garbage JSON, a packument cut short, a tarball
/// reset mid-stream, a tarball shorter than its `Content-Length`, an endless tarball
/// without one. Uncached requests get a
/// 502 naming the problem; cached packuments are served from the copy; nothing bad is
/// stored, and everything works once the upstream is healthy.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_fails_or_lies_never_corrupts_the_copy() {
    let env = faulty(&[
        ("NPROXY_PACKUMENT_MAX_AGE_SECS", "0"),
        ("NPROXY_STALE_WHILE_REVALIDATE_SECS", "0"),
        ("NPROXY_UPSTREAM_BREAKER_FAILURES", "0"),
        ("NPROXY_UPSTREAM_MAX_TARBALL_BYTES", "1048576"),
    ])
    .await;
    let faults = env.upstream_faults.clone().expect("fault proxy");
    assert_eq!(get(&env, "/fx-a").await.0, 200);
    let cached = |code: u16, what: &str| assert_eq!(code, 200, "cached /fx-a under {what}");

    let http = |status: &str, headers: &str, body: &str| {
        Fault::Canned(
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    };
    let cases: Vec<(&str, Fault, u16, &str)> =
        vec![
        ("500s", http("500 Internal Server Error", "", "{}"), 502, "answered 500"),
        ("garbage JSON", http("200 OK", "", "<html>not json"), 502, "invalid packument"),
        (
            "a packument cut short",
            Fault::Canned(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\
                  connection: close\r\n\r\n{\"name\":\"fx-c\",\"versions\":{"
                    .to_vec(),
            ),
            502,
            "",
        ),
    ];
    for (what, fault, want, says) in cases {
        eprintln!("fault: {what}");
        faults.set(fault);
        let (code, body) = get(&env, "/fx-c").await;
        let text = error_text(&body);
        assert_eq!(code, want, "{what}: {text}");
        assert!(text.contains(says), "{what}: {text}");
        cached(get(&env, "/fx-a").await.0, what);
        verify_local_store(&env.local_store());
    }

    // Tarballs: reset after 1,000 bytes of an 80 KB answer, and a length that lies.
    faults.set(Fault::ResetAfter(1_000));
    let (code, body) = get(&env, "/fx-a/-/fx-a-2.0.0.tgz").await;
    assert!(
        code != 200 || body.len() < 80_000,
        "a reset tarball was sent whole"
    );
    faults.set(Fault::Canned(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\
          connection: close\r\n\r\nshort"
            .to_vec(),
    ));
    let (code, body) = get(&env, "/fx-a/-/fx-a-1.1.0.tgz").await;
    assert!(
        code != 200 || body.len() < 100,
        "a short tarball was sent as whole"
    );
    // A tarball without `Content-Length` is bounded while it arrives (1 MiB here).
    let mut endless = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
connection: close\r\n\r\n"
        .to_vec();
    endless.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
    faults.set(Fault::Canned(endless));
    let (code, body) = get(&env, "/fx-a/-/fx-a-1.0.0.tgz").await;
    assert!(
        code != 200 || body.len() < 1_000_000,
        "an unbounded tarball was sent"
    );
    assert!(
        env.dp
            .log_text()
            .contains("the tarball is larger than 1048576 bytes"),
        "the size bound cut it"
    );
    assert_eq!(
        verify_local_store(&env.local_store()),
        0,
        "nothing partial stored"
    );

    faults.set(Fault::Pass);
    for p in ["/fx-c", "/fx-a/-/fx-a-2.0.0.tgz", "/fx-a/-/fx-a-1.1.0.tgz"] {
        assert_eq!(get(&env, p).await.0, 200, "{p} after recovery");
    }
    assert_eq!(verify_local_store(&env.local_store()), 2);
}

/// Regression: an invalid upstream answer bigger than the whole document budget, for a
/// package stored but not in this data plane's memory (a restart, a second replica).
/// Serving the stored copy parses it under the budget, which used to wait for the permit
/// the failed refresh still held: the request hung forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_lying_upstream_with_a_tiny_document_budget_still_gets_the_copy_served() {
    let settings = [
        ("NPROXY_PACKUMENT_MAX_AGE_SECS", "0"),
        ("NPROXY_STALE_WHILE_REVALIDATE_SECS", "0"),
        ("NPROXY_UPSTREAM_BREAKER_FAILURES", "0"),
        ("NPROXY_PACKUMENT_WORK_BYTES", "1024"),
    ];
    let env = faulty(&settings).await;
    let faults = env.upstream_faults.clone().expect("fault proxy");
    assert_eq!(get(&env, "/fx-a").await.0, 200);
    // A fresh data plane on the same store: the copy is stored, nothing is in its memory.
    let dp2 = nproxy_tests::procs::DataPlane::start(
        &env.dir.path().join("dp2"),
        nproxy_tests::procs::DataPlaneOptions {
            upstream: faults.url(),
            storage: nproxy_tests::procs::Storage::Local(env.local_store()),
            env: quick()
                .into_iter()
                .chain(settings)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    )
    .await;
    let garbage = format!("<html>{}", "x".repeat(8 * 1024));
    faults.set(Fault::Canned(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{garbage}",
            garbage.len()
        )
        .into_bytes(),
    ));
    let request = raw_http().get(format!("{}/fx-a", dp2.url())).send();
    let res = tokio::time::timeout(Duration::from_secs(20), request)
        .await
        .expect("the stored copy is served, not a hang")
        .expect("send");
    assert_eq!(res.status().as_u16(), 200);
    verify_local_store(&env.local_store());
}
