//! Acceptance 5: bytes that don't match the packument's integrity never reach a client as a
//! complete response, are never stored, and don't poison later requests.

use nproxy_tests::fixtures::FixturePackage;

use crate::support::{raw_http, Env};

fn stored_files(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(s) = p.to_str() {
                out.push(s.to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn small_corrupt_tarball_gets_a_clean_502_and_is_refetched() {
    let env = Env::start().await;
    let fx = env.fixture("fx-a").clone();
    let path = fx.tarball_path("2.0.0");
    env.registry.corrupt(&path);

    let res = raw_http().get(env.url(&path)).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 502);
    let body: serde_json::Value = res.json().await.expect("npm-style JSON error");
    assert!(
        body["error"].as_str().unwrap_or("").contains("integrity"),
        "{body}"
    );
    assert!(
        !stored_files(&env.local_store())
            .iter()
            .any(|f| f.ends_with("fx-a-2.0.0.tgz")),
        "a corrupt tarball was stored"
    );

    // The next request tries again, and once the upstream is fixed, succeeds.
    let res = raw_http().get(env.url(&path)).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 502);
    assert_eq!(env.registry.count("GET", &path), 2, "refetched, not cached");
    env.registry.uncorrupt(&path);
    let res = raw_http().get(env.url(&path)).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 200);
    let bytes = res.bytes().await.expect("body");
    assert_eq!(bytes, fx.versions["2.0.0"].tarball.bytes);
    assert_eq!(env.registry.count("GET", &path), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn large_corrupt_tarball_is_cut_off_before_its_end() {
    // 3 MB: above the verify-before-send threshold, so it streams while being verified.
    let big = FixturePackage::new("fx-large").version("1.0.0", &[], 3 * 1024 * 1024);
    let env = Env::builder().package(big.clone()).start().await;
    let path = big.tarball_path("1.0.0");
    env.registry.corrupt(&path);
    let good = &big.versions["1.0.0"].tarball.bytes;

    let res = raw_http().get(env.url(&path)).send().await.expect("send");
    let status = res.status().as_u16();
    let body = res.bytes().await;
    // A body error means the connection was cut: the client knows the response is broken.
    if let Ok(b) = body {
        assert!(
            status != 200 || b.len() < good.len(),
            "a complete 200 response of corrupt bytes reached the client ({} bytes)",
            b.len()
        );
    }
    assert!(
        !stored_files(&env.local_store())
            .iter()
            .any(|f| f.ends_with("fx-large-1.0.0.tgz")),
        "a corrupt tarball was stored"
    );
    let again = raw_http().get(env.url(&path)).send().await.expect("send");
    let _ = again.bytes().await;
    assert_eq!(env.registry.count("GET", &path), 2, "refetched, not cached");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_good_tarball_streams_and_is_stored_once() {
    let big = FixturePackage::new("fx-large").version("1.0.0", &[], 3 * 1024 * 1024);
    let env = Env::builder().package(big.clone()).start().await;
    let path = big.tarball_path("1.0.0");
    for round in 0..2 {
        let res = raw_http().get(env.url(&path)).send().await.expect("send");
        assert_eq!(res.status().as_u16(), 200);
        let cache = res
            .headers()
            .get("x-nproxy-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(cache, if round == 0 { "miss" } else { "hit" });
        let bytes = res.bytes().await.expect("body");
        assert_eq!(bytes, big.versions["1.0.0"].tarball.bytes);
    }
    assert_eq!(env.registry.count("GET", &path), 1);
}
