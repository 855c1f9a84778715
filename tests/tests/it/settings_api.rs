//! Issue 14, part 4: the control plane's JSON/HTTP admin API (`http_listen`), driven with a
//! real HTTP client against the real control plane binary, Redis and data planes: the
//! documented `curl` changes an org's internal scopes and the change reaches data planes by
//! the same invalidation as nproxyctl's; the API refuses what gRPC refuses; schemathesis
//! (from PyPI, installed by scripts/install-test-tools.sh) finds no server error in it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nproxy_tests::control::{ADMIN_TOKEN, DATA_PLANE_TOKEN};
use nproxy_tests::procs::{free_port, tools_dir};
use nproxy_tests::stack::{status, Stack};
use nproxy_tests::{eventually, http};
use serde_json::{json, Value};

/// A stack whose control plane serves the HTTP API; its base URL (`…/api/v1`).
async fn stack() -> (Stack, String) {
    stack_on(None).await
}

/// `stack`, with the control plane on `database` (a postgres:// URL) instead of SQLite.
async fn stack_on(database: Option<&str>) -> (Stack, String) {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    // An hour between reconciles: only the invalidation message can carry a change.
    let mut env = vec![
        ("NPROXY_HTTP_LISTEN", listen.as_str()),
        ("NPROXY_RECONCILE_INTERVAL_SECS", "3600"),
    ];
    env.extend(database.map(|d| ("NPROXY_DATABASE", d)));
    let s = Stack::start(&env).await;
    (s, format!("http://{listen}/api/v1"))
}

/// One request: status and JSON body (`Null` when there is none).
async fn call(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http().request(method, url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.expect("admin API reachable");
    let code = r.status().as_u16();
    let bytes = r.bytes().await.expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{url}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        })
    };
    (code, v)
}

async fn admin(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    call(method, url, Some(ADMIN_TOKEN), body).await
}

/// How nproxyctl's revocation test waits (`control_plane::revocation_reaches_two_data_planes_through_redis`):
/// polled, at most 5 s, only the invalidation path (reconcile and refresh an hour apart).
async fn wait_for_status(url: &str, want: u16) -> Duration {
    let what = format!("{url} answers {want}");
    let ((), took) = eventually(&what, Duration::from_secs(5), || async {
        (status(url, None).await == want).then_some(())
    })
    .await;
    took
}

/// The exact request of the product documentation, once with the org's id and once with
/// its slug, reaching two data planes through Redis.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_curl_changes_internal_scopes_on_every_data_plane() {
    let (s, api) = stack().await;
    s.org_and_token(true, &["proxy"]);
    let org_id = s.ctl(&["-o", "json", "org", "get", "acme"]).json()[0]["id"]
        .as_str()
        .expect("org id")
        .to_string();
    let refresh = [("NPROXY_ORG_CONFIG_REFRESH_SECS", "3600")];
    let (a, b) = (
        s.data_plane("dp-a", &refresh).await,
        s.data_plane("dp-b", &refresh).await,
    );
    let internal = [
        format!("{}/@acme/tool", a.url()),
        format!("{}/@acme/tool", b.url()),
    ];
    for (dp, url) in [&a, &b].iter().zip(&internal) {
        // Both hold the org's config; `@acme` is not internal yet, so the upstream says 404.
        assert_eq!(status(&format!("{}/fx-c", dp.url()), None).await, 200);
        assert_eq!(status(url, None).await, 404);
    }

    for (round, org) in [org_id.as_str(), "acme"].into_iter().enumerate() {
        let started = Instant::now();
        // curl -X PUT …/api/v1/orgs/{orgId}/settings -H "Authorization: Bearer <token>"
        //   -H "Content-Type: application/json" -d '{"internalScopes": ["@acme"]}'
        let r = http()
            .put(format!("{api}/orgs/{org}/settings"))
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("Content-Type", "application/json")
            .body(r#"{"internalScopes": ["@acme"]}"#)
            .send()
            .await
            .expect("PUT settings");
        let answered = started.elapsed();
        assert_eq!(r.status().as_u16(), 200, "PUT with {org}");
        let v: Value = r.json().await.expect("JSON");
        assert_eq!(
            v,
            json!({"orgId": org_id, "internalScopes": ["@acme"], "publicReads": true})
        );
        // An internal package needs a token: 401 for anonymous reads on both data planes.
        let (ta, tb) = tokio::join!(
            wait_for_status(&internal[0], 401),
            wait_for_status(&internal[1], 401)
        );
        println!(
            "round {round} ({org}): the API answered after {answered:?}; A refused anonymous reads \
             of @acme/tool after {:?}, B after {:?} (from the start of the request)",
            ta + answered,
            tb + answered
        );
        let (code, got) = admin("GET", &format!("{api}/orgs/{org}/settings"), None).await;
        assert_eq!((code, &got["internalScopes"]), (200, &json!(["@acme"])));
        if round == 0 {
            // Back to no internal scope (by slug), and the data planes follow again.
            let (code, _) = admin(
                "PUT",
                &format!("{api}/orgs/acme/settings"),
                Some(r#"{"internalScopes": []}"#),
            )
            .await;
            assert_eq!(code, 200);
            wait_for_status(&internal[0], 404).await;
            wait_for_status(&internal[1], 404).await;
        }
    }
    // Audited as nproxyctl's change is: by the admin credential, in the org's chain.
    let (code, events) = admin(
        "GET",
        &format!("{api}/orgs/acme/audit/events?type=org.settings_changed"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{events}");
    let list = events["events"].as_array().expect("events");
    assert_eq!(
        list.len(),
        4,
        "public reads, then three scope changes: {events}"
    );
    assert_eq!(list[3]["actor"], "admin:configured");
    assert_eq!(
        list[3]["details"]["internal_scopes"]["to"],
        json!(["@acme"])
    );
    let (code, v) = admin("GET", &format!("{api}/orgs/acme/audit/verify"), None).await;
    assert_eq!((code, &v["ok"]), (200, &json!(true)), "{v}");
}

/// Credentials, validation and routing answer as gRPC does, in `{"error": …}` bodies.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_what_grpc_refuses() {
    let (s, api) = stack().await;
    s.ctl(&["org", "create", "acme"]);
    let settings = format!("{api}/orgs/acme/settings");
    let acme = r#"{"internalScopes": ["@acme"]}"#;
    let body = Some(acme);
    let error = |v: &Value| v["error"].as_str().unwrap_or_default().to_string();

    for token in [None, Some("nproxy_not-a-credential")] {
        for (method, body) in [("GET", None), ("PUT", body)] {
            let (code, v) = call(method, &settings, token, body).await;
            assert_eq!(code, 401, "{method} with {token:?}: {v}");
            assert!(!error(&v).is_empty(), "{v}");
        }
    }
    for (method, body) in [("GET", None), ("PUT", body)] {
        let (code, v) = call(method, &settings, Some(DATA_PLANE_TOKEN), body).await;
        assert_eq!(code, 403, "{method} with the data plane's credential: {v}");
        assert!(error(&v).contains("data plane credential"), "{v}");
    }
    // As over gRPC, the data plane may read public keys.
    let (code, v) = call(
        "GET",
        &format!("{api}/orgs/acme/keys"),
        Some(DATA_PLANE_TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200, "{v}");

    // Scopes are what nproxyctl and gRPC accept: with their `@`.
    let (code, v) = admin("PUT", &settings, Some(r#"{"internalScopes": ["acme"]}"#)).await;
    assert_eq!(code, 400, "{v}");
    assert!(error(&v).starts_with("internalScopes:"), "{v}");
    let (code, v) = admin("PUT", &settings, Some(r#"{"publicReads": "no"}"#)).await;
    assert_eq!(code, 400);
    assert!(error(&v).starts_with("publicReads:"), "{v}");
    let (code, v) = admin("PUT", &settings, Some(r#"{"internalScope": ["@acme"]}"#)).await;
    assert_eq!(code, 400);
    assert!(error(&v).starts_with("internalScope: unknown field"), "{v}");
    let (code, v) = admin("PUT", &settings, Some("{")).await;
    assert_eq!(code, 400, "{v}");
    let (code, v) = admin("PUT", &format!("{api}/orgs/nope/settings"), body).await;
    assert_eq!(code, 404, "{v}");
    assert!(error(&v).contains("not found"), "{v}");

    // Routing: unknown routes, wrong methods, bodies.
    let (code, v) = admin("GET", &format!("{api}/nope"), None).await;
    assert_eq!((code, error(&v).as_str()), (404, "no such route"));
    let r = http()
        .post(&settings)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "GET, PUT");
    let r = http()
        .put(&settings)
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Type", "text/plain")
        .body(acme)
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status().as_u16(), 415);
    let big = format!(r#"{{"internalScopes": ["@{}"]}}"#, "a".repeat(70_000));
    let (code, v) = admin("PUT", &settings, Some(&big)).await;
    assert_eq!(code, 413, "{v}");

    // The OpenAPI document, without a credential.
    let (code, doc) = call("GET", &format!("{api}/openapi.json"), None, None).await;
    assert_eq!(code, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    assert!(doc["paths"]["/orgs/{orgId}/settings"]["put"].is_object());
}

/// Every route once, through to its gRPC service and back.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_maps_to_its_grpc_call() {
    let (_s, api) = stack().await;
    let (code, org) = admin("POST", &format!("{api}/orgs"), Some(r#"{"slug": "beta"}"#)).await;
    assert_eq!(code, 201, "{org}");
    assert_eq!(org["displayName"], "beta");
    let (code, _) = admin("POST", &format!("{api}/orgs"), Some(r#"{"slug": "beta"}"#)).await;
    assert_eq!(code, 409);
    let (code, list) = admin("GET", &format!("{api}/orgs?pageSize=10"), None).await;
    assert_eq!((code, &list["orgs"][0]["slug"]), (200, &json!("beta")));
    let o = format!("{api}/orgs/{}", org["id"].as_str().expect("id"));
    assert_eq!(admin("GET", &o, None).await.1, org);
    admin(
        "PUT",
        &format!("{o}/settings"),
        Some(r#"{"internalScopes": ["@beta"]}"#),
    )
    .await;

    let (code, t) = admin(
        "POST",
        &format!("{o}/tokens"),
        Some(r#"{"name": "ci", "scopes": ["proxy", "publish"]}"#),
    )
    .await;
    assert_eq!(code, 201, "{t}");
    assert!(
        t["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("nproxy_")),
        "{t}"
    );
    let id = t["token"]["id"].as_str().expect("token id");
    let (_, tokens) = admin("GET", &format!("{o}/tokens"), None).await;
    assert!(
        tokens["tokens"][0].get("secret").is_none(),
        "listed without its secret"
    );
    let (code, revoked) = admin("POST", &format!("{o}/tokens/{id}/revoke"), None).await;
    assert!(code == 200 && revoked["revokedAtMs"].is_i64(), "{revoked}");
    let (_, tokens) = admin("GET", &format!("{o}/tokens?includeRevoked=true"), None).await;
    assert_eq!(tokens["tokens"].as_array().map(Vec::len), Some(1));

    let (code, key) = admin("POST", &format!("{o}/keys/rotate"), None).await;
    assert_eq!((code, &key["status"]), (200, &json!("active")), "{key}");
    let (_, keys) = admin("GET", &format!("{o}/keys"), None).await;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(4), "{keys}");

    let rules = r#"{"cooldown": "block", "cooldownHours": 72, "deny": [{"name": "@x/*"}]}"#;
    let (code, r) = admin("PUT", &format!("{o}/rules"), Some(rules)).await;
    assert_eq!(
        (code, &r["cooldown"], &r["lists"]),
        (200, &json!("block"), &json!("off"))
    );
    assert_eq!(admin("GET", &format!("{o}/rules"), None).await.1, r);
    let (code, v) = admin(
        "PUT",
        &format!("{o}/rules"),
        Some(r#"{"cooldownHours": 9999}"#),
    )
    .await;
    assert!(
        code == 400
            && v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("cooldownHours:")),
        "{v}"
    );

    let ex = r#"{"package": "lodash", "version": "4.17.21", "reason": "reviewed"}"#;
    let (code, e) = admin("POST", &format!("{o}/exceptions"), Some(ex)).await;
    assert_eq!(code, 201, "{e}");
    let (_, list) = admin("GET", &format!("{o}/exceptions"), None).await;
    assert_eq!(list["exceptions"][0]["id"], e["id"]);
    let eid = e["id"].as_str().expect("id");
    assert_eq!(
        admin("DELETE", &format!("{o}/exceptions/{eid}"), None)
            .await
            .0,
        204
    );

    let tp = r#"{"issuer": "https://ci.example", "package": "@beta/*", "claims": {"repository": "beta/app"}}"#;
    let (code, p) = admin("POST", &format!("{o}/trusted-publishers"), Some(tp)).await;
    assert_eq!(code, 201, "{p}");
    let (_, list) = admin("GET", &format!("{o}/trusted-publishers"), None).await;
    assert_eq!(
        list["publishers"][0]["claims"],
        json!({"repository": "beta/app"})
    );
    let pid = p["id"].as_str().expect("id");
    let gone = format!("{o}/trusted-publishers/{pid}");
    assert_eq!(
        admin("DELETE", &gone, None).await.1,
        json!({"removed": true})
    );
    assert_eq!(
        admin("DELETE", &gone, None).await.1,
        json!({"removed": false})
    );

    // Upstream routes: the credential goes in and never comes back out.
    let secret = "vendor-credential-5c1e9a";
    let body = format!(
        r#"{{"pattern": "@vendor", "url": "https://npm.vendor.example/", "credential": "{secret}"}}"#
    );
    let (code, r) = admin("POST", &format!("{o}/upstreams"), Some(&body)).await;
    assert_eq!(code, 201, "{r}");
    assert_eq!(
        (&r["pattern"], &r["hasCredential"]),
        (&json!("@vendor"), &json!(true))
    );
    assert_eq!(r["url"], "https://npm.vendor.example", "{r}");
    let (code, again) = admin("POST", &format!("{o}/upstreams"), Some(&body)).await;
    assert_eq!(code, 409, "{again}");
    let (code, list) = admin("GET", &format!("{o}/upstreams"), None).await;
    assert_eq!((code, &list["routes"][0]["id"]), (200, &r["id"]));
    assert!(!list.to_string().contains(secret) && !r.to_string().contains(secret));
    let one = format!("{o}/upstreams/{}", r["id"].as_str().expect("id"));
    let (code, up) = admin("PUT", &one, Some(r#"{"credential": ""}"#)).await;
    assert_eq!(code, 200, "{up}");
    assert_eq!(up["hasCredential"], false, "{up}");
    assert!(up["version"].as_i64() > r["version"].as_i64(), "{up}");
    assert_eq!(
        admin("DELETE", &one, None).await.1,
        json!({"removed": true})
    );

    let (_, events) = admin("GET", &format!("{o}/audit/events?pageSize=2"), None).await;
    assert_eq!(events["events"][0]["type"], "org.created");
    let next = events["nextPageToken"].as_str().expect("a next page");
    let (code, page) = admin("GET", &format!("{o}/audit/events?pageToken={next}"), None).await;
    assert!(code == 200 && page["events"][0]["seq"] == 3, "{page}");
    let (_, v) = admin("GET", &format!("{o}/audit/verify"), None).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(admin("DELETE", &o, None).await.0, 204);
    assert_eq!(admin("GET", &o, None).await.0, 404);
}

/// SIGTERM drains as gRPC does: the API keeps answering for `drain_secs`, then the process
/// exits cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_the_api_like_grpc() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut s = Stack::start(&[
        ("NPROXY_HTTP_LISTEN", listen.as_str()),
        ("NPROXY_DRAIN_SECS", "2"),
    ])
    .await;
    let orgs = format!("http://{listen}/api/v1/orgs");
    assert_eq!(admin("GET", &orgs, None).await.0, 200);
    let stopped = Instant::now();
    s.cp.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        admin("GET", &orgs, None).await.0,
        200,
        "answered while draining"
    );
    let status = s.cp.wait_exit(Duration::from_secs(15)).await;
    assert!(status.is_some_and(|st| st.success()), "{status:?}");
    assert!(
        stopped.elapsed() >= Duration::from_secs(2),
        "{:?}",
        stopped.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the listener is closed"
    );
}

/// schemathesis, property-based, against the OpenAPI document the server serves: no request
/// it generates gets a server error, on either store.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_on_sqlite() {
    schemathesis(None).await;
}

/// PostgreSQL refuses more than SQLite does (a NUL in a text value, say).
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_on_postgres() {
    schemathesis(Some(nproxy_test_postgres::database_url())).await;
}

async fn schemathesis(database: Option<String>) {
    let st = tools_dir().join("schemathesis/bin/schemathesis");
    assert!(
        st.exists(),
        "{} is missing: run scripts/install-test-tools.sh (it installs the pinned schemathesis)",
        st.display()
    );
    let (s, api) = stack_on(database.as_deref()).await;
    // Something to find: an org with internal scopes, tokens, rules.
    let (_, _) = s.org_and_token(true, &["proxy"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let work = s.dir.path().join("schemathesis");
    std::fs::create_dir_all(&work).expect("dir");
    let log = work.join("output.txt");
    let started = Instant::now();
    let mut child = Command::new(&st)
        .current_dir(&work)
        .args(["run", &format!("{api}/openapi.json")])
        .args(["--checks", "not_a_server_error"])
        // Capped: about 1,700 generated requests over the 21 operations and their links (20 to
        // 40 s). One worker: schemathesis 4.32's generators are not reliably thread-safe.
        .args(["--max-examples", "40", "--seed", "14", "--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::from(
            std::fs::File::create(work.join("stderr.txt")).expect("log"),
        ))
        .spawn()
        .expect("run schemathesis");
    let status = nproxy_tests::procs::wait_exit(&mut child, Duration::from_secs(200)).await;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let printed = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(work.join("stderr.txt")).unwrap_or_default()
    );
    println!("schemathesis ran {:?}:\n{printed}", started.elapsed());
    let status =
        status.unwrap_or_else(|| panic!("schemathesis did not finish in 200 s:\n{printed}"));
    assert!(
        status.success(),
        "schemathesis found a problem ({status}):\n{printed}\ncontrol plane log:\n{}",
        s.cp.log_text()
    );
}
