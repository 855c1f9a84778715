//! Acceptance 3 and 4: the copy nproxy keeps is the point. Installs keep working when the
//! upstream is down, and versions (or whole packages) that vanish upstream stay installable.

use nproxy_tests::clients::{Client, Project};

use crate::support::{blocking, raw_http, Env};

async fn install(project: Project, client: Client) -> Project {
    let (project, run) = blocking(move || {
        let r = project.install(client);
        (project, r)
    })
    .await;
    assert!(run.ok, "install failed:\n{}", run.output);
    project
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_still_installs_from_stale_copies() {
    // Max age 0: every packument request revalidates, so the outage is really noticed.
    let env = Env::builder()
        .set("NPROXY_PACKUMENT_MAX_AGE_SECS", "0")
        .start()
        .await;
    let deps = [("fx-a", "^2.0.0"), ("fx-big", "^1.0.0")];
    let project = install(
        Project::new(&env.dir.path().join("warm"), &env.dp.url(), &deps),
        Client::Npm,
    )
    .await;

    env.registry.stop();
    let errors_before = env
        .dp
        .metric("nproxy_upstream_requests_total", &["status=\"error\""])
        .await;
    let stale_before = env
        .dp
        .metric(
            "nproxy_cache_total",
            &["kind=\"packument\"", "result=\"stale\""],
        )
        .await;

    // npm ci from a fresh cache (lockfile → tarballs only).
    project.clear_caches();
    project.remove_node_modules();
    let (project, run) = blocking(move || {
        let r = project.npm(&["ci"]);
        (project, r)
    })
    .await;
    assert!(
        run.ok,
        "npm ci with the upstream down failed:\n{}",
        run.output
    );
    assert_eq!(project.installed_version("fx-a").as_deref(), Some("2.0.0"));

    // A project without a lockfile needs the packuments: served stale.
    let fresh = install(
        Project::new(&env.dir.path().join("fresh"), &env.dp.url(), &deps),
        Client::Npm,
    )
    .await;
    assert_eq!(fresh.installed_version("@fx/b").as_deref(), Some("1.0.1"));

    let errors = env
        .dp
        .metric("nproxy_upstream_requests_total", &["status=\"error\""])
        .await
        - errors_before;
    let stale = env
        .dp
        .metric(
            "nproxy_cache_total",
            &["kind=\"packument\"", "result=\"stale\""],
        )
        .await
        - stale_before;
    assert!(
        errors >= 1.0,
        "nproxy must have tried the upstream ({errors} errors)"
    );
    assert!(
        stale >= 4.0,
        "nproxy must have served stale packuments ({stale})"
    );
    assert!(env.dp.log_text().contains("serving the cached packument"));
}

#[tokio::test(flavor = "multi_thread")]
async fn vanished_versions_and_packages_stay_installable() {
    // Strict freshness: each read revalidates before answering, so each upstream change is
    // seen by the very next read.
    let env = Env::builder()
        .set("NPROXY_PACKUMENT_MAX_AGE_SECS", "0")
        .set("NPROXY_STALE_WHILE_REVALIDATE_SECS", "0")
        .start()
        .await;
    install(
        Project::new(
            &env.dir.path().join("warm"),
            &env.dp.url(),
            &[("fx-a", "1.1.0"), ("fx-c", "1.0.0")],
        ),
        Client::Npm,
    )
    .await;

    // fx-a@1.1.0 is unpublished upstream, and fx-c disappears entirely.
    env.registry.unpublish_version(env.fixture("fx-a"), "1.1.0");
    env.registry.remove_package(env.fixture("fx-c"));

    let doc: serde_json::Value = raw_http()
        .get(env.url("/fx-a"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let versions = doc["versions"].as_object().expect("versions");
    assert!(
        versions.contains_key("1.1.0"),
        "cached version kept: {:?}",
        versions.keys()
    );
    assert!(versions.contains_key("2.0.0"));
    assert!(doc["time"].get("1.1.0").is_some());

    let doc: serde_json::Value = raw_http()
        .get(env.url("/fx-c"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(doc["versions"].get("1.0.0").is_some(), "{doc}");

    let project = install(
        Project::new(
            &env.dir.path().join("after"),
            &env.dp.url(),
            &[("fx-a", "1.1.0"), ("fx-c", "^1.0.0")],
        ),
        Client::Npm,
    )
    .await;
    assert_eq!(project.installed_version("fx-a").as_deref(), Some("1.1.0"));
    assert_eq!(project.installed_version("fx-c").as_deref(), Some("1.0.0"));

    // A version that was never cached is not kept: the upstream's word stands.
    env.registry.unpublish_version(env.fixture("fx-a"), "1.0.0");
    let doc: serde_json::Value = raw_http()
        .get(env.url("/fx-a"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(doc["versions"].get("1.0.0").is_none());
    assert!(doc["versions"].get("1.1.0").is_some());
}
