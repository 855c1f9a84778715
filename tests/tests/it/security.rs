//! Issue 9: no way around authorization and rules through forwarded routes, internal names
//! never leave nproxy, bounded request work, and 500s that say nothing internal. Each test
//! asserts mechanisms: the status, the bound that tripped, what the upstream received.

use std::io::Write;

use nproxy_tests::procs::{DataPlane, DataPlaneOptions, Storage};
use serde_json::{json, Value};

use crate::control_plane::Stack;
use crate::support::{raw_http, Env};

/// Org `acme`, public reads off, `@acme` internal, `fx-c@1.0.0` on the deny list.
async fn locked_stack() -> (Stack, DataPlane, String) {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(false, &["proxy"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    s.ctl(&[
        "rules", "set", "--org", "acme", "--deny", "fx-c", "--lists", "block",
    ]);
    let dp = s.data_plane("dp", &[]).await;
    (s, dp, token)
}

/// Sends a request with the path exactly as given (HTTP clients normalise `%2e%2e` and
/// `..` away before sending; an attacker does not). Returns the status.
async fn raw_status(base: &str, method: &str, path: &str, token: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut out),
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn send(method: &str, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = raw_http().request(method.parse().expect("method"), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("send");
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

/// The campaign's bypass: dot segments after a forwarded prefix reached any upstream path
/// with any method (reads with public reads off, denied tarballs, writes).
#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_after_forwarded_prefixes_reach_nothing() {
    let (s, dp, token) = locked_stack().await;
    let base = dp.url();
    // The baseline: anonymous reads are refused, the denied tarball is refused.
    assert_eq!(send("GET", &format!("{base}/fx-c"), None).await.0, 401);
    let denied = format!("{base}/fx-c/-/fx-c-1.0.0.tgz");
    assert_eq!(send("GET", &denied, Some(&token)).await.0, 403);
    let before = s.registry.requests().len();
    for prefix in [
        "/-/user/org.couchdb.user:x",
        "/-/npm/v1/security",
        "/-/v1/login",
        "/-/v1/search",
        "/-/npm/v1/keys",
        "/-/npm/v1/attestations",
    ] {
        for tail in [
            "/%2e%2e/%2e%2e/%2e%2e/fx-c",
            "/%2e%2e/%2e%2e/%2e%2e/fx-c/-/fx-c-1.0.0.tgz",
            "/../../../fx-c",
            "/%2E%2E%2f%2E%2E%2f%2E%2E%2ffx-c",
            "/..%5c..%5c..%5cfx-c",
        ] {
            for method in ["GET", "PUT", "DELETE"] {
                let path = format!("{prefix}{tail}");
                let code = raw_status(&base, method, &path, Some(&token)).await;
                assert!(matches!(code, 400 | 404 | 405), "{method} {path} → {code}");
                let code = raw_status(&base, method, &path, None).await;
                assert!(
                    matches!(code, 400 | 401 | 404 | 405),
                    "anonymous {method} {path} → {code}"
                );
            }
        }
    }
    let leaked: Vec<String> = s.registry.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(leaked.is_empty(), "the upstream received {leaked:?}");
}

/// Forwarded endpoints: an allow-list of methods, URLs rebuilt from validated parts, only
/// the headers the protocol needs, and the answer headers npm needs back.
#[tokio::test(flavor = "multi_thread")]
async fn forwarding_is_exact_and_carries_only_what_npm_needs() {
    let env = Env::start().await;
    env.registry
        .canned("/-/v1/search", 200, json!({"objects": [], "total": 0}));
    env.registry.canned_with(
        "/-/npm/v1/tokens",
        401,
        json!({"error": "otp required"}),
        &[("www-authenticate", "OTP"), ("npm-notice", "hello")],
    );
    // A method the endpoint doesn't have is refused here, not relayed.
    let (code, _) = send("DELETE", &env.url("/-/v1/search"), None).await;
    assert_eq!(code, 405);
    assert_eq!(env.registry.count("DELETE", "/-/v1/search"), 0);
    // Unknown query keys are dropped; known ones re-encoded.
    let res = raw_http()
        .get(env.url("/-/v1/search?text=fx%20a&size=5&x=%2e%2e%2fevil"))
        .header("cookie", "session=secret")
        .header("x-forwarded-for", "10.9.8.7")
        .header("npm-command", "search")
        .header("referer", "npm search fx a")
        .send()
        .await
        .expect("search");
    assert_eq!(res.status().as_u16(), 200);
    let r = env
        .registry
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/-/v1/search"))
        .expect("the search reached the upstream");
    // Search is nproxy's own (it merges internal packages): the upstream is asked for a
    // whole chunk of results for the text, never for the client's other keys.
    assert_eq!(r.path, "/-/v1/search?text=fx+a&size=100&from=0");
    assert!(r.headers.get("cookie").is_none());
    assert!(r.headers.get("x-forwarded-for").is_none());
    assert!(r.headers.get("referer").is_none());
    assert_eq!(
        r.headers.get("npm-command").and_then(|v| v.to_str().ok()),
        Some("search")
    );
    // OTP: the request's npm-otp goes up, the answer's www-authenticate comes back.
    let res = raw_http()
        .post(env.url("/-/npm/v1/tokens"))
        .bearer_auth("npm_usersOwnUpstreamToken")
        .header("npm-otp", "123456")
        .json(&json!({"password": "pw", "readonly": false}))
        .send()
        .await
        .expect("token create");
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("OTP")
    );
    assert_eq!(
        res.headers()
            .get("npm-notice")
            .and_then(|v| v.to_str().ok()),
        Some("hello")
    );
    let r = env
        .registry
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/-/npm/v1/tokens")
        .expect("token create reached the upstream");
    assert_eq!(
        r.headers.get("npm-otp").and_then(|v| v.to_str().ok()),
        Some("123456")
    );
    // Writes to public packages without an upstream credential are not relayed.
    let (code, _) = send("PUT", &env.url("/fx-a"), None).await;
    assert_eq!(code, 401);
    assert_eq!(env.registry.count("PUT", "/fx-a"), 0);
}

/// `explain` and `npm audit` never ask the upstream about an internal name.
#[tokio::test(flavor = "multi_thread")]
async fn internal_names_never_reach_the_upstream() {
    let (s, dp, token) = locked_stack().await;
    let (code, body) = send(
        "GET",
        &format!("{}/-/nproxy/v1/explain/@acme%2fsecret", dp.url()),
        Some(&token),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["internal"], true);
    let audit = json!({"@acme/secret": ["1.0.0"], "fx-a": ["1.0.0"]});
    let res = raw_http()
        .post(format!("{}/-/npm/v1/security/advisories/bulk", dp.url()))
        .bearer_auth(&token)
        .json(&audit)
        .send()
        .await
        .expect("audit");
    assert_eq!(res.status().as_u16(), 200);
    for r in s.registry.requests() {
        let text = format!("{} {:?}", r.path, r.body);
        assert!(
            !text.contains("acme"),
            "the upstream heard of an internal name: {text}"
        );
    }
    assert!(
        s.registry
            .count("POST", "/-/npm/v1/security/advisories/bulk")
            == 1,
        "the public part of the audit still went upstream"
    );
}

/// `npm audit` requests are bounded while parsed: a body with too many names is refused
/// before any advisory lookup or upstream request.
#[tokio::test(flavor = "multi_thread")]
async fn audit_requests_are_bounded() {
    let env = Env::start().await;
    let mut names = String::from("{");
    for i in 0..25_000 {
        if i > 0 {
            names.push(',');
        }
        names.push_str(&format!("\"p{i}\":[\"1.0.0\"]"));
    }
    names.push('}');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(names.as_bytes()).expect("gzip");
    let res = raw_http()
        .post(env.url("/-/npm/v1/security/advisories/bulk"))
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("audit");
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 20000 packages")),
        "{body}"
    );
    assert_eq!(
        env.registry
            .count("POST", "/-/npm/v1/security/advisories/bulk"),
        0
    );
    // A gzip bomb: small as sent, past the decoded bound.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 20 * 1024 * 1024]).expect("gzip");
    let res = raw_http()
        .post(env.url("/-/npm/v1/security/advisories/bulk"))
        .header("content-encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("audit");
    assert_eq!(res.status().as_u16(), 413);
}

/// `Expect: 100-continue` with an oversized length is answered 413 at once, and a
/// tarball path with a 5,000-character version is a 400 (it was a 500 with the OS error).
#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_overlong_requests_get_clean_errors() {
    let env = Env::start().await;
    let long = format!("/fx-a/-/fx-a-1.0.0-{}.tgz", "a".repeat(5000));
    let (code, body) = send("GET", &env.url(&long), None).await;
    assert_eq!(code, 400, "{body}");
    // A raw request: the client waits for 100 Continue before sending its body.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = env.dp.url().trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(
        b"PUT /fx-a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer npm_up\r\nContent-Type: application/json\r\nContent-Length: 900000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an answer without sending the body")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

/// A 500 names a request id, never the internal error (here: a corrupt stored document).
#[tokio::test(flavor = "multi_thread")]
async fn internal_errors_stay_in_the_log() {
    let env = Env::start().await;
    assert_eq!(send("GET", &env.url("/fx-c"), None).await.0, 200);
    let stored = env.local_store().join("public/packuments/fx-c.json");
    std::fs::write(&stored, b"{not json").expect("corrupt the stored copy");
    // A second data plane on the same store reads the stored copy (fresh for 5 minutes).
    let dp = DataPlane::start(
        &env.dir.path().join("dp2"),
        DataPlaneOptions {
            upstream: env.registry.url(),
            storage: Storage::Local(env.local_store()),
            env: Vec::new(),
        },
    )
    .await;
    let (code, body) = send("GET", &format!("{}/fx-c", dp.url()), None).await;
    assert_eq!(code, 500, "{body}");
    let text = body["error"].as_str().unwrap_or_default().to_string();
    assert!(text.contains("request id"), "{text}");
    for secret in ["corrupt", "packuments", "/tmp", "expected", "line"] {
        assert!(!text.contains(secret), "500 body leaks {secret:?}: {text}");
    }
    let id = text
        .split("request id ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .expect("an id")
        .to_string();
    assert!(
        dp.log_text().contains(&id),
        "the log carries the request id {id}"
    );
}

/// Internal documents stay small whatever a publish or a whole-document PUT carries: a
/// 78 MB readme (a small gzip body) is cut, a 20 MB deprecation message is refused, a
/// 100,000-version document stops the parse, a JSON array is a 400.
#[tokio::test(flavor = "multi_thread")]
async fn internal_documents_are_bounded() {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["proxy", "publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let dp = s.data_plane("dp", &[]).await;
    let url = format!("{}/@acme%2fbig", dp.url());
    let (body, _) = nproxy_tests::fixtures::publish_payload("@acme/big", "1.0.0", 10);
    let mut payload: Value = serde_json::from_slice(&body).expect("json");
    payload["readme"] = json!("r".repeat(78 * 1024 * 1024));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&serde_json::to_vec(&payload).expect("json"))
        .expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert!(gz.len() < 1024 * 1024, "the attack is a small body");
    let res = raw_http()
        .put(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .expect("publish");
    assert_eq!(res.status().as_u16(), 201);
    let res = raw_http()
        .get(format!("{url}?write=true"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    let text = res.text().await.expect("body");
    assert!(
        text.len() < 200 * 1024,
        "the stored document is {} bytes",
        text.len()
    );
    let mut doc: Value = serde_json::from_str(&text).expect("json");
    // A 20 MB deprecation message.
    doc["versions"]["1.0.0"]["deprecated"] = json!("d".repeat(20 * 1024 * 1024));
    let (code, body) = put_json(&url, &token, &doc).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("deprecation message")),
        "{body}"
    );
    // 100,000 versions: refused while parsing.
    let mut versions = serde_json::Map::new();
    for i in 0..100_000 {
        versions.insert(format!("1.0.{i}"), json!({}));
    }
    doc["versions"] = Value::Object(versions);
    let (code, body) = put_json(&url, &token, &doc).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than 10000 versions")),
        "{body}"
    );
    let (code, body) = put_json(&url, &token, &json!([1, 2, 3])).await;
    assert_eq!(code, 400, "{body}");
    // Nothing of that was stored.
    let res = raw_http()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    let after: Value = res.json().await.expect("json");
    assert!(after["versions"]["1.0.0"].get("deprecated").is_none());
}

async fn put_json(url: &str, token: &str, v: &Value) -> (u16, Value) {
    let res = raw_http()
        .put(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(v).expect("json"))
        .send()
        .await
        .expect("put");
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

/// An idle keep-alive connection is closed after `keepalive_idle_secs` (it stayed open past
/// 150 s before), so idle clients cannot hold descriptors forever.
#[tokio::test(flavor = "multi_thread")]
async fn idle_keepalive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::builder()
        .set("NPROXY_KEEPALIVE_IDLE_SECS", "1")
        .start()
        .await;
    let addr = env.dp.url().trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent: the server closes the connection (read returns 0).
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), conn.read(&mut buf))
        .await
        .expect("closed within a generous bound");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}

/// Reads until the server closes the connection (EOF or reset), for at most `limit`.
/// Returns what was received, or `None` if the connection was still open at the limit.
async fn read_until_closed(
    conn: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, conn.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A header trickled one byte at a time is cut off by the whole-header deadline (before,
/// every byte restarted a per-read timeout and the connection stayed open past 100 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_header_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let env = Env::builder()
        .set("NPROXY_HEADER_TIMEOUT_SECS", "1")
        .start()
        .await;
    let addr = env.dp.url().trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // One header byte every 100 ms, for up to 200 bytes (20 s): each read is quick, the
    // header as a whole is not.
    let mut sent = 0;
    let cut = loop {
        if conn.write_all(b"x").await.is_err() {
            break true;
        }
        sent += 1;
        if sent == 200 {
            break false;
        }
        let mut probe = [0u8; 64];
        if let Ok(r) = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tokio::io::AsyncReadExt::read(&mut conn, &mut probe),
        )
        .await
        {
            // EOF or reset: the server gave up on the header.
            assert!(matches!(r, Ok(0) | Err(_)), "unexpected answer {r:?}");
            break true;
        }
    };
    assert!(
        cut,
        "the header was still being accepted after {sent} bytes"
    );
    assert!(sent < 200);
}

/// A connection that never sends a byte is closed after the header deadline, and so is a
/// request whose body stops arriving (body deadline), instead of holding a descriptor.
#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_and_stalled_bodies_are_closed() {
    use tokio::io::AsyncWriteExt;
    let env = Env::builder()
        .set("NPROXY_HEADER_TIMEOUT_SECS", "1")
        .set("NPROXY_BODY_TIMEOUT_SECS", "2")
        .set("NPROXY_KEEPALIVE_IDLE_SECS", "600")
        .start()
        .await;
    let addr = env.dp.url().trim_start_matches("http://").to_string();
    let limit = std::time::Duration::from_secs(20);

    let mut silent = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let got = read_until_closed(&mut silent, limit).await;
    assert!(got.is_some(), "a silent connection stayed open");

    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stalled
        .write_all(
            b"PUT /-/npm/v1/security/advisories/bulk HTTP/1.1\r\nHost: x\r\n\
Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\"",
        )
        .await
        .expect("write");
    let got = read_until_closed(&mut stalled, limit).await;
    assert!(got.is_some(), "a stalled body held the connection open");
}

/// At most `max_connections` client connections are served; one more is told 503 in an
/// npm-style error and closed (about 20,000 idle connections exhausted the descriptors
/// before). When a connection closes, its slot is free again.
#[tokio::test(flavor = "multi_thread")]
async fn connections_are_capped() {
    use tokio::io::AsyncWriteExt;
    let env = Env::builder()
        .set("NPROXY_MAX_CONNECTIONS", "4")
        .set("NPROXY_HEADER_TIMEOUT_SECS", "60")
        .start()
        .await;
    let addr = env.dp.url().trim_start_matches("http://").to_string();
    // The harness may hold a pooled connection of its own; open ours one at a time until
    // one is refused. It must happen by the fifth of ours.
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..5 {
        let mut c = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        // Half a header: the connection is being served, and stays so.
        let _ = c.write_all(b"GET /-/ping HTTP/1.1\r\n").await;
        if let Some(got) = read_until_closed(&mut c, std::time::Duration::from_millis(500)).await {
            refused = Some(String::from_utf8_lossy(&got).to_string());
            break;
        }
        held.push(c);
    }
    let refused = refused.expect("a connection over the cap of 4 was refused");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains(r#"{"error":"too many open connections; try again shortly"}"#),
        "{refused}"
    );
    assert!(
        env.dp
            .metrics()
            .await
            .lines()
            .any(|l| l.starts_with("nproxy_connections_refused_total ") && !l.ends_with(" 0")),
        "the refusal is counted"
    );
    drop(held.pop());
    let (code, _) = nproxy_tests::eventually(
        "a freed slot serves again",
        std::time::Duration::from_secs(10),
        || {
            let url = format!("{}/-/ping", env.dp.url());
            async move {
                let code = raw_http().get(url).send().await.ok()?.status().as_u16();
                (code == 200).then_some(code)
            }
        },
    )
    .await;
    assert_eq!(code, 200);
}

/// A large anonymous publish to a public name is refused with a readable 401: the body is
/// read and dropped first, so the client is not reset mid-upload (npm would print
/// `ECONNRESET` instead of the reason), and nothing is relayed upstream.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upload_gets_its_401_not_a_reset() {
    use tokio::io::AsyncWriteExt;
    let env = Env::start().await;
    let addr = env.dp.url().trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let size = 8 * 1024 * 1024;
    let head = format!(
        "PUT /fx-a HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("header");
    let chunk = vec![b' '; 64 * 1024];
    for i in 0..size / chunk.len() {
        if let Err(e) = conn.write_all(&chunk).await {
            panic!("the upload was reset after {i} chunks: {e}");
        }
    }
    let got = read_until_closed(&mut conn, std::time::Duration::from_secs(20))
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("need your token there"), "{text}");
    assert_eq!(env.registry.count("PUT", "/fx-a"), 0);
}

/// Web login through nproxy: the upstream's `doneUrl` is pointed at nproxy, and polling it
/// there reaches the upstream, with `retry-after` passed back (npm sleeps on it).
#[tokio::test(flavor = "multi_thread")]
async fn web_login_polls_through_nproxy() {
    let env = Env::start().await;
    let up = env.registry.url();
    env.registry.canned(
        "/-/v1/login",
        200,
        json!({"loginUrl": "https://web.example/login/abc", "doneUrl": format!("{up}/-/v1/done?sessionId=abc-123")}),
    );
    env.registry
        .canned_with("/-/v1/done", 202, json!({}), &[("retry-after", "5")]);
    let res = raw_http()
        .post(env.url("/-/v1/login"))
        .header("npm-auth-type", "web")
        .json(&json!({}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["doneUrl"], env.url("/-/v1/done?sessionId=abc-123"));
    assert_eq!(body["loginUrl"], "https://web.example/login/abc");
    let poll = raw_http()
        .get(env.url("/-/v1/done?sessionId=abc-123"))
        .send()
        .await
        .expect("poll");
    assert_eq!(poll.status().as_u16(), 202);
    assert_eq!(
        poll.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert!(env
        .registry
        .requests()
        .iter()
        .any(|r| r.path == "/-/v1/done?sessionId=abc-123"));
}
