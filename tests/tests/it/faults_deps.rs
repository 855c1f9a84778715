//! Issue 10's fault matrix beyond the upstream: the control plane and Redis reached through
//! a `FaultProxy`, made to hang or vanish mid-traffic. Asserts what clients see and that
//! nothing is half-stored or lost.

use std::time::Duration;

use nproxy_tests::faults::{Fault, FaultProxy};
use nproxy_tests::fixtures::publish_payload;
use nproxy_tests::procs::DataPlane;
use serde_json::Value;

use crate::control_plane::Stack;
use crate::support::{raw_http, sri_sha512};

const PKG: &str = "@acme/faulty";

async fn put(dp: &DataPlane, token: &str, body: Vec<u8>) -> (u16, String) {
    let res = raw_http()
        .put(format!("{}/{}", dp.url(), PKG.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(60))
        .body(body)
        .send()
        .await
        .expect("put");
    let code = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    (code, v["error"].as_str().unwrap_or_default().to_string())
}

async fn versions(dp: &DataPlane, token: &str) -> (u16, Vec<String>) {
    let res = raw_http()
        .get(format!("{}/{}", dp.url(), PKG.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let code = res.status().as_u16();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    let vs = v["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    (code, vs)
}

/// The control plane hangs (black-holed) or is gone during an internal publish: the
/// publish fails cleanly (503, an error that names the control plane) and nothing is
/// stored; once it answers again the same publish succeeds, exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_fails_cleanly_while_the_control_plane_is_down_or_hung() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let cp = FaultProxy::start(s.cp.endpoint().trim_start_matches("http://")).await;
    let dp = s
        .data_plane("dp", &[("NPROXY_CONTROL_PLANE_URL", &cp.url())])
        .await;

    for fault in [Fault::BlackHole, Fault::Refuse] {
        cp.set(fault.clone());
        let (body, _) = publish_payload(PKG, "1.0.0", 100);
        let started = std::time::Instant::now();
        let (code, error) = put(&dp, &token, body).await;
        eprintln!(
            "control plane {fault:?}: publish {code} in {} ms: {error}",
            started.elapsed().as_millis()
        );
        assert_eq!(code, 503, "{fault:?}: {error}");
        assert!(error.contains("control plane"), "{fault:?}: {error}");
        let (code, vs) = versions(&dp, &token).await;
        assert!(
            code == 404 && vs.is_empty(),
            "{fault:?}: nothing stored ({code} {vs:?})"
        );
    }

    cp.set(Fault::Pass);
    let (body, _) = publish_payload(PKG, "1.0.0", 100);
    let (code, error) = put(&dp, &token, body).await;
    assert_eq!(code, 201, "{error}");
    assert_eq!(versions(&dp, &token).await.1, vec!["1.0.0".to_string()]);
}

/// Redis hangs mid-traffic: an org already held keeps answering from memory; when Redis is
/// back, a revocation made meanwhile reaches the data plane (by the invalidation after
/// resubscribing, or at the latest by the periodic re-read), so a revoked token is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_redis_keeps_held_orgs_serving_and_revocations_arrive_after() {
    let s = Stack::start(&[]).await;
    let (id, token) = s.org_and_token(false, &["proxy"]);
    let redis = FaultProxy::start(s.redis.url().trim_start_matches("redis://")).await;
    let dp = s
        .data_plane(
            "dp",
            &[
                ("NPROXY_REDIS_URL", &format!("redis://{}", redis.addr())),
                ("NPROXY_ORG_CONFIG_REFRESH_SECS", "2"),
            ],
        )
        .await;
    let get = |tok: String| {
        let url = format!("{}/fx-a", dp.url());
        async move {
            raw_http()
                .get(url)
                .bearer_auth(tok)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(get(token.clone()).await, 200);

    redis.set(Fault::BlackHole);
    for _ in 0..3 {
        assert_eq!(get(token.clone()).await, 200, "held org while Redis hangs");
    }
    s.ctl(&["token", "revoke", "--org", "acme", &id]);

    redis.set(Fault::Pass);
    let (_, took) = nproxy_tests::eventually(
        "the revocation reaches the data plane after Redis returns",
        Duration::from_secs(30),
        || {
            let t = token.clone();
            let g = &get;
            async move { (g(t).await == 401).then_some(()) }
        },
    )
    .await;
    eprintln!("revocation seen {took:?} after Redis answered again");
}

/// S3 (SeaweedFS) through a fault proxy: answering `503 SlowDown`, hung, or resetting every
/// connection (an upload cut off mid-body). A package already in memory keeps being served;
/// anything that needs S3 fails with a 500 that carries only a request id, within the S3
/// deadlines (1 s here, three attempts); nothing partial is stored; once S3 is healthy the
/// same requests succeed and every tarball served matches its integrity.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_hung_s3_fails_requests_cleanly_and_loses_nothing() {
    use crate::support::Env;
    use nproxy_tests::procs::{SeaweedFs, Storage};
    let weed = SeaweedFs::start().await;
    weed.bucket("registry").await;
    let s3 = FaultProxy::start(weed.endpoint.trim_start_matches("http://")).await;
    let env = Env::builder()
        .storage(Storage::S3 {
            endpoint: s3.url(),
            bucket: "registry".into(),
        })
        .set("NPROXY_STORAGE__S3__CONNECT_TIMEOUT_MS", "1000")
        .set("NPROXY_STORAGE__S3__FIRST_BYTE_TIMEOUT_MS", "1000")
        .start()
        .await;
    let get = |path: &str| {
        let url = env.url(path);
        let path = path.to_string();
        async move {
            let started = std::time::Instant::now();
            let r = raw_http()
                .get(url)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .expect("get");
            let code = r.status().as_u16();
            let body = r.bytes().await.unwrap_or_default().to_vec();
            eprintln!("GET {path}: {code} in {} ms", started.elapsed().as_millis());
            (code, body)
        }
    };
    assert_eq!(get("/fx-a").await.0, 200);
    assert_eq!(get("/@fx%2fb").await.0, 200);
    let slow_down = b"HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: 86\r\n\
connection: close\r\n\r\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        .to_vec();
    let cold = [
        "/fx-a/-/fx-a-1.0.0.tgz",
        "/fx-a/-/fx-a-1.1.0.tgz",
        "/fx-a/-/fx-a-2.0.0.tgz",
        "/@fx/b/-/b-1.0.0.tgz",
    ];
    for (i, fault) in [
        Fault::Canned(slow_down),
        Fault::BlackHole,
        Fault::ResetAfter(0),
        Fault::Refuse,
    ]
    .into_iter()
    .enumerate()
    {
        eprintln!(
            "S3 fault: {}",
            format!("{fault:?}").chars().take(40).collect::<String>()
        );
        s3.set(fault.clone());
        assert_eq!(get("/fx-a").await.0, 200, "{fault:?}: fx-a from memory");
        let (code, body) = get(cold[i]).await;
        let text = String::from_utf8_lossy(&body).to_string();
        assert_eq!(code, 500, "{fault:?}: {text}");
        assert!(
            text.contains("request id") && !text.contains("SlowDown") && !text.contains("dispatch"),
            "{fault:?}: internal detail in {text}"
        );
    }

    // Slow but within the deadlines: served.
    s3.set(Fault::Delay(Duration::from_millis(300)));
    assert_eq!(
        get("/@fx/b/-/b-1.0.1.tgz").await.0,
        200,
        "a slow S3 still serves"
    );

    s3.set(Fault::Pass);
    let a: Value = serde_json::from_slice(&get("/fx-a").await.1).expect("fx-a json");
    let b: Value = serde_json::from_slice(&get("/@fx%2fb").await.1).expect("@fx/b json");
    for (i, path) in cold.iter().enumerate() {
        let (code, body) = get(path).await;
        assert_eq!(code, 200, "{path} after S3 recovered");
        let (doc, version) = [(&a, "1.0.0"), (&a, "1.1.0"), (&a, "2.0.0"), (&b, "1.0.0")][i];
        let want = doc["versions"][version]["dist"]["integrity"]
            .as_str()
            .expect("integrity");
        let got = sri_sha512(&body);
        assert_eq!(got, want, "{path}");
    }
}

/// Redis is down when a data plane starts: it starts anyway (a rolling restart during a
/// Redis outage must not take the fleet down), answers 503 for orgs it cannot know yet,
/// and serves them once Redis is reachable (before, it exited at start).
#[tokio::test(flavor = "multi_thread")]
async fn a_data_plane_starts_while_redis_is_down_and_serves_once_it_returns() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(false, &["proxy"]);
    let redis = FaultProxy::start(s.redis.url().trim_start_matches("redis://")).await;
    redis.set(Fault::Refuse);
    let dp = s
        .data_plane(
            "dp",
            &[("NPROXY_REDIS_URL", &format!("redis://{}", redis.addr()))],
        )
        .await;
    let get = |tok: Option<String>| {
        let url = format!("{}/fx-a", dp.url());
        async move {
            let mut r = raw_http().get(url).timeout(Duration::from_secs(30));
            if let Some(t) = tok {
                r = r.bearer_auth(t);
            }
            let res = r.send().await.expect("get");
            let code = res.status().as_u16();
            let v: Value = res.json().await.unwrap_or(Value::Null);
            (code, v["error"].as_str().unwrap_or_default().to_string())
        }
    };
    let (code, error) = get(Some(token.clone())).await;
    assert_eq!(code, 503, "{error}");
    assert!(error.contains("org"), "{error}");
    assert!(dp.log_text().contains("cannot reach Redis"));

    redis.set(Fault::Pass);
    nproxy_tests::eventually("serves once Redis answers", Duration::from_secs(30), || {
        let g = &get;
        let t = token.clone();
        async move { (g(Some(t)).await.0 == 200).then_some(()) }
    })
    .await;
    assert_eq!(
        get(None).await.0,
        401,
        "public reads are off: the config is real"
    );
}
