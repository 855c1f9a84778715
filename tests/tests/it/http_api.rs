//! The HTTP surface as clients see it: errors, forms, validators, compression, forwarding,
//! tenancy and public URLs.

use crate::support::{raw_http, Env};

async fn json(res: reqwest::Response) -> serde_json::Value {
    res.json().await.expect("JSON body")
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_npm_style_errors() {
    let env = Env::start().await;
    let c = raw_http();
    for (path, status) in [
        ("/Fx-A", 404), // a legacy name: valid, and not upstream
        ("/a%20b", 400),
        ("/..%2f..%2fetc%2fpasswd", 400),
        ("/@scope", 400),
        ("/fx-a/-/other-1.0.0.tgz", 400),
        ("/fx-a/-/fx-a-1.0.tgz", 400),
        ("/fx-a/latest/extra", 404),
        ("/-/nothing", 404),
        ("/fx-missing", 404),
        ("/fx-a/-/fx-a-9.9.9.tgz", 404),
    ] {
        let res = c.get(env.url(path)).send().await.expect("send");
        assert_eq!(res.status().as_u16(), status, "{path}");
        let body = json(res).await;
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let res = c
        .post(env.url("/fx-a"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 405);
    assert!(json(res).await["error"].is_string());
    // A write to a public package belongs to the upstream.
    let _ = c
        .put(env.url("/fx-a"))
        .bearer_auth("npm_usersOwnUpstreamToken")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(env.registry.count("PUT", "/fx-a"), 1);
    // Nothing for invalid names ever reached the upstream.
    assert!(env
        .registry
        .requests()
        .iter()
        .all(|r| !r.path.contains("passwd") && !r.path.contains("a%20b")));
    // A 404 is remembered briefly: the upstream is asked once.
    let _ = c.get(env.url("/fx-missing")).send().await.expect("send");
    assert_eq!(env.registry.count("GET", "/fx-missing"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_with_nothing_cached_is_a_502() {
    let env = Env::start().await;
    env.registry.stop();
    let res = raw_http().get(env.url("/fx-a")).send().await.expect("send");
    assert_eq!(res.status().as_u16(), 502);
    assert!(json(res).await["error"]
        .as_str()
        .unwrap_or("")
        .contains("upstream"));
}

#[tokio::test(flavor = "multi_thread")]
async fn packument_forms_etags_and_gzip() {
    let env = Env::start().await;
    let c = raw_http();
    let full = c.get(env.url("/@fx%2fb")).send().await.expect("send");
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(full.headers()["content-type"], "application/json");
    let etag = full.headers()["etag"].to_str().expect("etag").to_string();
    let doc = json(full).await;
    assert_eq!(doc["readme"], "A fixture.");
    assert_eq!(
        doc["versions"]["1.0.1"]["dist"]["tarball"],
        env.url("/@fx/b/-/b-1.0.1.tgz")
    );
    assert!(doc["versions"]["1.0.1"]["_npmUser"].is_object());

    // Both spellings of a scoped name are one package.
    let same = c.get(env.url("/@fx/b")).send().await.expect("send");
    assert_eq!(same.headers()["etag"].to_str().expect("etag"), etag);

    let abbr = c
        .get(env.url("/@fx%2fb"))
        .header(
            "accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(
        abbr.headers()["content-type"],
        "application/vnd.npm.install-v1+json"
    );
    assert_ne!(abbr.headers()["etag"].to_str().expect("etag"), etag);
    let a = json(abbr).await;
    assert!(a.get("readme").is_none());
    assert!(a["versions"]["1.0.1"].get("_npmUser").is_none());
    assert_eq!(
        a["time"]["1.0.1"], doc["time"]["1.0.1"],
        "time kept for pnpm"
    );
    assert_eq!(
        a["versions"]["1.0.1"]["dist"]["tarball"],
        env.url("/@fx/b/-/b-1.0.1.tgz")
    );

    let again = c
        .get(env.url("/@fx%2fb"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(again.status().as_u16(), 304);

    let gz = c
        .get(env.url("/fx-big"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let compressed = gz.bytes().await.expect("body");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut plain,
    )
    .expect("valid gzip");
    let big: serde_json::Value = serde_json::from_slice(&plain).expect("json");
    assert_eq!(big["versions"].as_object().map(|v| v.len()), Some(400));
    assert!(plain.len() > 3_000_000, "the big fixture is several MB");
    assert!(compressed.len() * 5 < plain.len());

    let head = c
        .head(env.url("/fx-a/-/fx-a-1.0.0.tgz"))
        .send()
        .await
        .expect("send");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok()),
        Some(env.fixture("fx-a").versions["1.0.0"].tarball.bytes.len() as u64)
    );
    let t = c
        .get(env.url("/fx-a/-/fx-a-1.0.0.tgz"))
        .send()
        .await
        .expect("send");
    let tag = t.headers()["etag"].to_str().expect("etag").to_string();
    let t304 = c
        .get(env.url("/fx-a/-/fx-a-1.0.0.tgz"))
        .header("if-none-match", tag)
        .send()
        .await
        .expect("send");
    assert_eq!(t304.status().as_u16(), 304);
    // One upstream fetch of the packument for all of the above.
    assert_eq!(env.registry.count("GET", "/@fx%2fb"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_urls_follow_trusted_proxies_only() {
    let env = Env::builder()
        .set("NPROXY_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .start()
        .await;
    let c = raw_http();
    let doc = json(
        c.get(env.url("/fx-c"))
            .header("x-forwarded-host", "npm.corp.test")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        "https://npm.corp.test/fx-c/-/fx-c-1.0.0.tgz"
    );
    // Another client's view is not poisoned by the first one's headers.
    let doc = json(c.get(env.url("/fx-c")).send().await.expect("send")).await;
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        env.url("/fx-c/-/fx-c-1.0.0.tgz")
    );

    // Untrusted: the same headers are ignored.
    let untrusted = Env::start().await;
    let doc = json(
        c.get(untrusted.url("/fx-c"))
            .header("x-forwarded-host", "evil.test")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        untrusted.url("/fx-c/-/fx-c-1.0.0.tgz")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn path_prefix_org_mode() {
    let env = Env::builder().set("NPROXY_ORG_MODE", "path").start().await;
    let c = raw_http();
    let doc = json(c.get(env.url("/acme/@fx%2fb")).send().await.expect("send")).await;
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        env.url("/acme/@fx/b/-/b-1.0.0.tgz")
    );
    let t = c
        .get(env.url("/acme/@fx/b/-/b-1.0.0.tgz"))
        .send()
        .await
        .expect("send");
    assert_eq!(t.status().as_u16(), 200);
    let bad = c
        .get(env.url("/Not_An_Org/fx-a"))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn service_endpoints_are_forwarded_and_ping_is_local() {
    let env = Env::start().await;
    env.registry.canned(
        "/-/v1/search",
        200,
        serde_json::json!({"objects": [], "total": 0, "time": "now"}),
    );
    env.registry.canned(
        "/-/npm/v1/security/advisories/bulk",
        200,
        serde_json::json!({"fx-a": []}),
    );
    let c = raw_http();
    let ping = c.get(env.url("/-/ping")).send().await.expect("send");
    assert_eq!(ping.status().as_u16(), 200);
    assert!(env.registry.requests().iter().all(|r| r.path != "/-/ping"));

    let s = json(
        c.get(env.url("/-/v1/search?text=fx"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(s["total"], 0);
    let a = c
        .post(env.url("/-/npm/v1/security/advisories/bulk"))
        .header("content-type", "application/json")
        .body(r#"{"fx-a":["1.0.0"]}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(a.status().as_u16(), 200);
    assert!(json(a).await["fx-a"].is_array());
    assert_eq!(
        env.registry
            .count("POST", "/-/npm/v1/security/advisories/bulk"),
        1
    );
    // The upstream's signing keys are served (with the org's own, when it has any).
    let keys = c.get(env.url("/-/npm/v1/keys")).send().await.expect("send");
    assert_eq!(keys.status().as_u16(), 200);
    let keys = json(keys).await;
    let upstream = env.registry.keys_document()["keys"][0].clone();
    assert!(
        keys["keys"]
            .as_array()
            .is_some_and(|ks| ks.contains(&upstream)),
        "{keys}"
    );
}
