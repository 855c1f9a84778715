//! Issue 14, part 3: `GET /-/v1/search` answered by nproxy: the org's internal packages for
//! the tokens that may read them, merged with the upstream's results with the org's rules
//! applied, paged without gaps or repeats, kept current on every data plane, and never
//! telling the upstream an internal name or scope.

use std::collections::BTreeSet;
use std::time::Duration;

use nproxy_tests::clients::{Project, Run};
use nproxy_tests::eventually;
use nproxy_tests::fixtures::publish_payload;
use nproxy_tests::procs::DataPlane;
use nproxy_tests::search_fixture::object;
use serde_json::{json, Value};

use crate::control_plane::Stack;
use crate::support::{blocking, raw_http};

/// Org `acme` (internal scope `@acme`, public reads on) with a publish token, org `beta`
/// with its own, and `denied-widget` on acme's deny list.
async fn search_stack() -> (Stack, String, String) {
    let s = Stack::start(&[]).await;
    let (_, acme) = s.org_and_token(true, &["publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    s.ctl(&["org", "create", "beta"]);
    let beta = s.ctl(&[
        "-o", "json", "token", "create", "--org", "beta", "--name", "b", "--scope", "publish",
    ]);
    let beta = beta.json()["secret"].as_str().expect("secret").to_string();
    s.ctl(&[
        "rules",
        "set",
        "--org",
        "acme",
        "--lists",
        "block",
        "--deny",
        "denied-widget",
    ]);
    (s, acme, beta)
}

/// Publishes `name@version` with a JSON PUT, with this description and keywords.
async fn publish(base: &str, token: &str, name: &str, version: &str, desc: &str, kw: &[&str]) {
    let (body, _) = publish_payload(name, version, 10);
    let mut doc: Value = serde_json::from_slice(&body).expect("json");
    doc["description"] = json!(desc);
    doc["versions"][version]["keywords"] = json!(kw);
    let res = raw_http()
        .put(format!("{base}/{}", name.replacen('/', "%2f", 1)))
        .bearer_auth(token)
        .json(&doc)
        .send()
        .await
        .expect("publish");
    assert_eq!(res.status().as_u16(), 201, "publish {name}@{version}");
}

/// `GET <base>/-/v1/search?<query>`: (status, body, npm-notice).
async fn search(base: &str, token: Option<&str>, query: &str) -> (u16, Value, Option<String>) {
    let mut req = raw_http().get(format!("{base}/-/v1/search?{query}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("search");
    let code = res.status().as_u16();
    let notice = res
        .headers()
        .get("npm-notice")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (code, res.json().await.unwrap_or(Value::Null), notice)
}

fn names(answer: &Value) -> Vec<String> {
    answer["objects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["package"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The search texts the upstream received, decoded.
fn upstream_searches(s: &Stack) -> Vec<String> {
    s.registry
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/-/v1/search"))
        .map(|r| {
            percent_encoding::percent_decode_str(&r.path.replace('+', " "))
                .decode_utf8_lossy()
                .to_lowercase()
        })
        .collect()
}

fn stdout(r: &Run) -> &str {
    let out = r.output.split("--- stdout\n").nth(1).unwrap_or("");
    out.split("\n--- stderr").next().unwrap_or("")
}

async fn npm(p: &std::sync::Arc<Project>, args: &[&str]) -> Run {
    let (p, args) = (
        p.clone(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    blocking(move || p.npm(&args.iter().map(String::as_str).collect::<Vec<_>>())).await
}

async fn npm_search_json(p: &std::sync::Arc<Project>, words: &[&str]) -> Vec<Value> {
    let mut args = vec!["search", "--json"];
    args.extend_from_slice(words);
    let r = npm(p, &args).await;
    assert!(r.ok, "npm search {words:?}:\n{}", r.output);
    serde_json::from_str::<Vec<Value>>(stdout(&r).trim()).unwrap_or_else(|e| {
        panic!(
            "npm search --json printed no JSON array ({e}):\n{}",
            r.output
        )
    })
}

fn listed(found: &[Value], name: &str) -> bool {
    found.iter().any(|p| p["name"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_search_finds_internal_packages_for_their_org_only() {
    let (s, acme, beta) = search_stack().await;
    s.registry.search_results(vec![
        object("fx-widget", "1.0.0", "A public widget", &["ui"]),
        object("denied-widget", "1.0.0", "A widget acme denies", &["ui"]),
        object(
            "@acme/squatted",
            "1.0.0",
            "A public widget in acme's scope",
            &[],
        ),
        object("zeppelin-public", "2.0.0", "Public zeppelin tools", &[]),
    ]);
    let dp = s.data_plane("dp", &[("NPROXY_ORG_MODE", "path")]).await;
    let (acme_base, beta_base) = (format!("{}/acme", dp.url()), format!("{}/beta", dp.url()));
    // The real npm publishes the internal package, keywords and all.
    let publisher = Project::new(&s.dir.path().join("publisher"), &acme_base, &[]);
    publisher.set_token(&acme);
    let pkg_dir = publisher.package_dir("@acme/search-widget", "1.0.0");
    let manifest = json!({
        "name": "@acme/search-widget", "version": "1.0.0", "main": "index.js", "license": "MIT",
        "description": "Zeppelin gauges for dashboards", "keywords": ["telemetry", "widget"],
    });
    std::fs::write(pkg_dir.join("package.json"), manifest.to_string()).expect("package.json");
    let r = blocking(move || publisher.npm_in(&pkg_dir, &["publish"])).await;
    assert!(r.ok, "npm publish:\n{}", r.output);
    publish(
        &acme_base,
        &acme,
        "@acme/other-thing",
        "1.0.0",
        "Unrelated",
        &[],
    )
    .await;

    let user = std::sync::Arc::new(Project::new(&s.dir.path().join("user"), &acme_base, &[]));
    user.set_token(&acme);
    // By name, by a description word, by keyword (as a word and as a qualifier).
    for words in [
        &["@acme/search-widget"][..],
        &["zeppelin"],
        &["telemetry"],
        &["keywords:telemetry"],
    ] {
        let found = npm_search_json(&user, words).await;
        let hit = found.iter().find(|p| p["name"] == "@acme/search-widget");
        let hit = hit.unwrap_or_else(|| panic!("npm search {words:?} misses it: {found:?}"));
        assert_eq!(hit["version"], "1.0.0");
        assert_eq!(hit["description"], "Zeppelin gauges for dashboards");
        assert_eq!(hit["keywords"], json!(["telemetry", "widget"]));
        assert!(!listed(&found, "@acme/other-thing"), "{words:?}: {found:?}");
    }
    // The plain output too.
    let plain = npm(&user, &["search", "zeppelin"]).await;
    assert!(plain.ok, "{}", plain.output);
    let text = stdout(&plain);
    assert!(
        text.contains("@acme/search-widget") && text.contains("zeppelin-public"),
        "{text}"
    );
    // Internal first, then the upstream's, without what the org denies or its own scope.
    let found = npm_search_json(&user, &["widget"]).await;
    let got: Vec<&str> = found.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(got, vec!["@acme/search-widget", "fx-widget"], "{found:?}");

    // Anonymous: public results only.
    let anon = std::sync::Arc::new(Project::new(&s.dir.path().join("anon"), &acme_base, &[]));
    let found = npm_search_json(&anon, &["zeppelin"]).await;
    assert!(listed(&found, "zeppelin-public") && !listed(&found, "@acme/search-widget"));
    // Another org's token is nothing to acme (401), and its own registry has no @acme.
    let other = std::sync::Arc::new(Project::new(&s.dir.path().join("o"), &acme_base, &[]));
    other.set_token(&beta);
    let r = npm(&other, &["search", "--json", "zeppelin"]).await;
    assert!(!r.ok && r.output.contains("401"), "{}", r.output);
    let beta_user = std::sync::Arc::new(Project::new(&s.dir.path().join("b"), &beta_base, &[]));
    beta_user.set_token(&beta);
    let found = npm_search_json(&beta_user, &["zeppelin"]).await;
    assert!(listed(&found, "zeppelin-public") && !listed(&found, "@acme/search-widget"));

    // A search about the internal scope stays here entirely.
    let before = upstream_searches(&s).len();
    let (code, a, _) = search(&acme_base, Some(&acme), "text=scope:acme").await;
    assert_eq!(code, 200);
    assert_eq!(names(&a), vec!["@acme/other-thing", "@acme/search-widget"]);
    let (_, a, _) = search(&acme_base, Some(&acme), "text=%40acme%2Fsearch").await;
    assert_eq!(names(&a), vec!["@acme/search-widget"]);
    assert_eq!(
        upstream_searches(&s).len(),
        before,
        "nothing asked upstream"
    );
    // The upstream never heard an internal name or the internal scope (acme's searches).
    let sent = upstream_searches(&s);
    assert!(!sent.is_empty());
    for q in &sent {
        assert!(
            !q.contains("acme") && !q.contains("search-widget") && !q.contains("other-thing"),
            "{q}"
        );
    }
    // npm's error shape for bad parameters; a size past 250 is clamped.
    let (code, a, _) = search(&acme_base, Some(&acme), "text=x&from=-1").await;
    assert_eq!((code, a["error"].is_string()), (400, true), "{a}");
    let long = format!("text={}", "a".repeat(600));
    assert_eq!(search(&acme_base, Some(&acme), &long).await.0, 400);
    assert_eq!(search(&acme_base, Some(&acme), "size=3").await.0, 400);
    let (code, a, _) = search(&acme_base, Some(&acme), "text=widget&size=9999").await;
    assert_eq!((code, a["total"].as_u64()), (200, Some(2)), "{a}");
    // The upstream down: internal results still come, with a notice npm prints.
    s.registry.stop();
    // (a text not asked before: the upstream's answers are held for a minute)
    let (code, a, notice) = search(&acme_base, Some(&acme), "text=gauges").await;
    assert_eq!(code, 200);
    assert_eq!(names(&a), vec!["@acme/search-widget"]);
    assert!(notice.is_some_and(|n| n.contains("unavailable")));
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_walk_every_result_exactly_once() {
    let (s, acme, _) = search_stack().await;
    // 130 public results (more than one upstream chunk), one denied, one in acme's scope.
    let mut public: Vec<Value> = (0..130)
        .map(|i| object(&format!("pager-pub-{i:03}"), "1.0.0", "a pager", &[]))
        .collect();
    public.insert(
        5,
        object("denied-widget", "1.0.0", "a pager acme denies", &[]),
    );
    public.insert(50, object("@acme/pager-squat", "1.0.0", "a pager", &[]));
    s.registry.search_results(public);
    let dp = s.data_plane("dp", &[]).await;
    let base = dp.url();
    for i in 0..25 {
        let name = format!("@acme/pager-{i:02}");
        publish(
            &base,
            &acme,
            &name,
            "1.0.0",
            "an internal pager",
            &["paging"],
        )
        .await;
    }
    let started = std::time::Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut totals = BTreeSet::new();
    let mut from = 0;
    loop {
        let q = format!("text=pager&size=7&from={from}");
        let (code, page, _) = search(&base, Some(&acme), &q).await;
        assert_eq!(code, 200, "{page}");
        totals.insert(page["total"].as_u64().expect("total"));
        let got = names(&page);
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 7);
        seen.extend(got);
        from += 7;
        assert!(from < 1000, "the walk never ends");
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a result came twice: {seen:?}");
    assert_eq!(
        totals,
        BTreeSet::from([155]),
        "25 internal + 130 public, on every page"
    );
    assert_eq!(seen.len(), 155);
    let internal: Vec<String> = (0..25).map(|i| format!("@acme/pager-{i:02}")).collect();
    assert_eq!(
        seen[..25],
        internal[..],
        "internal first, ranked by name on a tie"
    );
    assert!(!seen
        .iter()
        .any(|n| n == "denied-widget" || n == "@acme/pager-squat"));
    println!("walked 23 pages in {:?}", started.elapsed());
    // Upstream chunks: whole hundreds, asked once each for the whole walk (held a minute).
    let sent = upstream_searches(&s);
    assert!(sent.iter().all(|q| q.contains("size=100")), "{sent:?}");
    assert_eq!(sent.len(), 2, "{sent:?}");
    // An anonymous walk sees only the public part.
    let (_, page, _) = search(&base, None, "text=pager&size=5").await;
    assert_eq!(page["total"], 130);
    assert!(names(&page).iter().all(|n| n.starts_with("pager-pub-")));
}

async fn live(dp: &DataPlane, token: &str, query: &str) -> Option<Value> {
    let (code, a, _) = search(&dp.url(), Some(token), query).await;
    assert_eq!(code, 200, "{a}");
    a["objects"].as_array().and_then(|o| {
        o.iter()
            .find(|o| o["package"]["name"] == "@acme/live")
            .cloned()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_every_data_planes_search() {
    let (s, acme, _) = search_stack().await;
    s.registry.search_results(Vec::new());
    let dp1 = s.data_plane("dp1", &[]).await;
    let dp2 = s.data_plane("dp2", &[]).await;
    let q = "text=livewire";
    // dp2 holds the org's index before anything changes: what follows must reach it.
    assert!(live(&dp2, &acme, q).await.is_none());
    let within = Duration::from_secs(10);
    let mut waits = Vec::new();
    let wait_for = |what: &'static str, check: fn(Option<Value>) -> bool| {
        let (dp1, dp2, acme) = (&dp1, &dp2, &acme);
        async move {
            // The writer's own data plane answers at once.
            let here = live(dp1, acme, q).await;
            assert!(check(here.clone()), "dp1 right after {what}: {here:?}");
            let ((), took) = eventually(what, within, || async {
                check(live(dp2, acme, q).await).then_some(())
            })
            .await;
            (what, took)
        }
    };
    publish(&dp1.url(), &acme, "@acme/live", "1.0.0", "livewire", &[]).await;
    waits.push(
        wait_for("publish", |o| {
            o.is_some_and(|o| o["package"]["version"] == "1.0.0")
        })
        .await,
    );
    publish(&dp1.url(), &acme, "@acme/live", "1.1.0", "livewire", &[]).await;
    waits.push(
        wait_for("a new version", |o| {
            o.is_some_and(|o| o["package"]["version"] == "1.1.0")
        })
        .await,
    );
    // The real npm for dist-tags, deprecate and unpublish.
    let p = std::sync::Arc::new(Project::new(&s.dir.path().join("p"), &dp1.url(), &[]));
    p.set_token(&acme);
    let r = npm(&p, &["dist-tag", "add", "@acme/live@1.0.0", "latest"]).await;
    assert!(r.ok, "{}", r.output);
    waits.push(
        wait_for("dist-tag", |o| {
            o.is_some_and(|o| o["package"]["version"] == "1.0.0")
        })
        .await,
    );
    let r = npm(&p, &["deprecate", "@acme/live", "use @acme/other"]).await;
    assert!(r.ok, "{}", r.output);
    waits.push(
        wait_for("deprecate", |o| {
            o.is_some_and(|o| o["flags"]["deprecated"] == "use @acme/other")
        })
        .await,
    );
    assert!(live(&dp2, &acme, "text=livewire%20not:deprecated")
        .await
        .is_none());
    let r = npm(&p, &["unpublish", "@acme/live", "--force"]).await;
    assert!(r.ok, "{}", r.output);
    waits.push(wait_for("unpublish", |o| o.is_none()).await);
    println!("second data plane caught up after: {waits:?}");
}
