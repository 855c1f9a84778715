//! Acceptance 6: concurrent requests for one uncached tarball cause one upstream fetch, and
//! every client gets the right bytes.

use std::time::Duration;

use nproxy_tests::fixtures::FixturePackage;

use crate::support::{raw_http, Env};

async fn fifty_at_once(env: &Env, pkg: &FixturePackage, version: &str) {
    let path = pkg.tarball_path(version);
    let want = pkg.versions[version].tarball.bytes.clone();
    // Warm the packument so only the tarball is cold.
    let r = raw_http()
        .get(env.url(&format!("/{}", pkg.name)))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);

    env.registry.hold_tarballs(true);
    let client = raw_http();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            let url = env.url(&path);
            tokio::spawn(async move {
                let r = client.get(url).send().await.expect("send");
                (r.status().as_u16(), r.bytes().await.expect("body"))
            })
        })
        .collect();
    // The upstream has the one request and holds it while the other 49 arrive.
    for _ in 0..200 {
        if env.registry.count("GET", &path) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.registry.hold_tarballs(false);
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, 200);
        assert!(
            body == want,
            "a client got wrong bytes ({} bytes)",
            body.len()
        );
    }
    assert_eq!(
        env.registry.count("GET", &path),
        1,
        "50 overlapping requests must cause exactly one upstream fetch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_requests_one_upstream_fetch() {
    let big = FixturePackage::new("fx-large").version("1.0.0", &[], 3 * 1024 * 1024);
    let env = Env::builder().package(big.clone()).start().await;
    // Small (verified before sending) and large (streamed to all while downloading).
    fifty_at_once(&env, env.fixture("fx-a"), "2.0.0").await;
    fifty_at_once(&env, &big, "1.0.0").await;
}
