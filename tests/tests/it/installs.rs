//! Acceptance 2: npm (install, then ci from a cold cache), pnpm, yarn 1 and yarn 4 install a
//! fixture project through the data plane; every tarball comes from nproxy.

use nproxy_tests::clients::{Client, Project};

use crate::support::{blocking, Env};

const DEPS: &[(&str, &str)] = &[("fx-a", "^2.0.0"), ("fx-big", "^1.0.0")];
/// fx-a, its dependencies @fx/b and fx-c, and fx-big.
const TARBALLS: f64 = 4.0;

async fn served_tarballs(env: &Env) -> f64 {
    env.dp
        .metric(
            "nproxy_requests_total",
            &["route=\"tarball\"", "status=\"200\""],
        )
        .await
}

fn assert_installed(p: &Project) {
    assert_eq!(p.resolved_version(None, "fx-a").as_deref(), Some("2.0.0"));
    assert_eq!(
        p.resolved_version(None, "fx-big").as_deref(),
        Some("1.0.399")
    );
    assert_eq!(
        p.resolved_version(Some("fx-a"), "@fx/b").as_deref(),
        Some("1.0.1")
    );
    assert_eq!(
        p.resolved_version(Some("fx-a"), "fx-c").as_deref(),
        Some("1.0.0")
    );
}

async fn install(client: Client) -> (Env, Project) {
    let env = Env::start().await;
    let project = Project::new(&env.dir.path().join("p"), &env.dp.url(), DEPS);
    let before = served_tarballs(&env).await;
    let (project, run) = blocking(move || {
        let r = project.install(client);
        (project, r)
    })
    .await;
    assert!(run.ok, "{client:?} install failed:\n{}", run.output);
    assert_installed(&project);
    let served = served_tarballs(&env).await - before;
    assert!(
        served >= TARBALLS,
        "{client:?}: nproxy served {served} tarballs, expected {TARBALLS}"
    );
    assert_eq!(
        env.registry.tarball_requests(),
        TARBALLS as usize,
        "{client:?}: each tarball is fetched upstream exactly once"
    );
    (env, project)
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_install_then_ci_with_a_cold_cache() {
    let (env, project) = install(Client::Npm).await;
    let resolved = project.npm_lock_resolved();
    assert_eq!(resolved.len(), TARBALLS as usize, "{resolved:?}");
    for url in &resolved {
        assert!(
            url.starts_with(&format!("{}/", env.dp.url())),
            "lockfile points past nproxy: {url}"
        );
    }

    project.clear_caches();
    project.remove_node_modules();
    let before = served_tarballs(&env).await;
    let (project, run) = blocking(move || {
        let r = project.npm(&["ci"]);
        (project, r)
    })
    .await;
    assert!(run.ok, "npm ci failed:\n{}", run.output);
    assert_installed(&project);
    assert_eq!(served_tarballs(&env).await - before, TARBALLS);
    assert_eq!(
        env.registry.tarball_requests(),
        TARBALLS as usize,
        "npm ci is served from nproxy's copy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pnpm_install() {
    install(Client::Pnpm).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn yarn1_install() {
    let (env, project) = install(Client::Yarn1).await;
    let lock = std::fs::read_to_string(project.dir.join("yarn.lock")).expect("yarn.lock");
    let resolved: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.trim().strip_prefix("resolved "))
        .collect();
    assert_eq!(resolved.len(), TARBALLS as usize, "{lock}");
    for r in resolved {
        assert!(
            r.contains(&env.dp.url()),
            "yarn.lock points past nproxy: {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn yarn4_install() {
    install(Client::Yarn4).await;
}
