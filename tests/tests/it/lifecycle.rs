//! A data plane's lifecycle behind a load balancer (issue 12): liveness and readiness
//! answered by address, and SIGTERM turning readiness off first, then finishing the
//! requests in flight, then exiting by itself.

use std::time::{Duration, Instant};

use nproxy_tests::faults::Fault;

use crate::support::{raw_http, Env};

async fn status(env: &Env, path: &str) -> u16 {
    nproxy_tests::stack::status(&env.url(path), None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_answered_by_address_before_any_org() {
    let env = Env::builder().start().await;
    for (path, want) in [
        ("/-/health/live", r#"{"status":"live"}"#),
        ("/-/health/ready", r#"{"status":"ready"}"#),
    ] {
        let res = raw_http().get(env.url(path)).send().await.expect("send");
        assert_eq!(res.status().as_u16(), 200, "{path}");
        assert_eq!(res.text().await.expect("body"), want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_readiness_first_and_finishes_requests_in_flight() {
    let mut env = Env::builder()
        .faulty_upstream()
        .set("NPROXY_DRAIN_SECS", "2")
        .set("NPROXY_SHUTDOWN_GRACE_SECS", "30")
        .start()
        .await;
    let faults = env.upstream_faults.clone().expect("fault proxy");
    assert_eq!(status(&env, "/-/health/ready").await, 200);
    // One request still waiting on the upstream when the drain ends and listeners close.
    faults.set(Fault::Delay(Duration::from_millis(3500)));
    let url = env.url("/fx-a");
    let slow = tokio::spawn(async move {
        let res = raw_http()
            .get(url)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("the request in flight is answered");
        (
            res.status().as_u16(),
            res.bytes().await.map(|b| b.len()).unwrap_or(0),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    env.dp.terminate();
    // Readiness turns false at once; everything else is still served during the drain.
    let mut ready = 200;
    while ready == 200 && sent.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ready = status(&env, "/-/health/ready").await;
    }
    assert_eq!(ready, 503, "readiness must turn false during the drain");
    let ping = raw_http()
        .get(env.url("/-/ping"))
        .send()
        .await
        .expect("still serving while draining");
    assert_eq!(ping.status().as_u16(), 200, "still serving while draining");
    assert_eq!(
        ping.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close"),
        "answers close their connection while draining, so no balancer keeps one idle"
    );
    assert_eq!(status(&env, "/-/health/live").await, 200);
    let (code, len) = slow.await.expect("join");
    assert_eq!(code, 200, "the request in flight finished");
    assert!(len > 0);
    // Then the process exits by itself, cleanly, long before the 30 s grace period.
    let exit = env.dp.wait_exit(Duration::from_secs(20)).await;
    let exit = exit.expect("the data plane exits once nothing is in flight");
    assert!(exit.success(), "exit status {exit}");
    eprintln!("exited {} ms after SIGTERM", sent.elapsed().as_millis());
}
