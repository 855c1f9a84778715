//! The client matrix (issue 8): every supported client, pinned (npm 10–12, pnpm 9–12, yarn 1
//! and 4, bun), installs a public and an internal package through one nproxy, cold and then
//! frozen from its own lockfile, with every lockfile URL pointing at nproxy; and the clients
//! that unpublish by themselves do it with the revision forms they really send.

use nproxy_tests::clients::{Project, Tool};
use nproxy_tests::procs::DataPlane;

use crate::control_plane::Stack;
use crate::support::blocking;

async fn internal_stack() -> (Stack, DataPlane, String) {
    let s = Stack::start(&[]).await;
    let (_, token) = s.org_and_token(true, &["proxy", "publish"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let dp = s.data_plane("dp", &[]).await;
    (s, dp, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_installs_public_and_internal_packages_cold_and_frozen() {
    let (s, dp, token) = internal_stack().await;
    let publisher = Project::new(&s.dir.path().join("publisher"), &dp.url(), &[]);
    publisher.set_token(&token);
    let registry = dp.url();
    let root = s.dir.path().to_path_buf();
    blocking(move || {
        let r = publisher.publish("@acme/matrix", "1.0.0");
        assert!(r.ok, "publish:\n{}", r.output);
        let mut failures = Vec::new();
        for tool in Tool::ALL {
            let p = Project::new(
                &root.join(format!("{tool:?}")),
                &registry,
                &[("fx-a", "^2.0.0"), ("@acme/matrix", "^1.0.0")],
            );
            p.set_token(&token);
            for frozen in [false, true] {
                if frozen {
                    p.remove_node_modules();
                    p.clear_caches();
                }
                let r = p.tool_install(tool, frozen);
                let got = (
                    p.resolved_version(None, "fx-a"),
                    p.resolved_version(None, "@acme/matrix"),
                );
                if !r.ok || got != (Some("2.0.0".into()), Some("1.0.0".into())) {
                    failures.push(format!(
                        "{tool:?} (frozen: {frozen}) resolved {got:?}:\n{}",
                        r.output
                    ));
                }
            }
            let foreign: Vec<String> = p
                .lockfile_urls()
                .into_iter()
                .filter(|u| !u.starts_with(&registry))
                .collect();
            if !foreign.is_empty() {
                failures.push(format!(
                    "{tool:?}'s lockfile names other hosts: {foreign:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    })
    .await;
}

/// npm 10–12 and pnpm 11–12 unpublish by themselves: one version, then the whole package,
/// each with the reads and revision forms it really uses (pnpm 11 reads without
/// `?write=true`). pnpm 9/10 hand these commands to npm.
#[tokio::test(flavor = "multi_thread")]
async fn clients_that_unpublish_natively_do_it_through_nproxy() {
    let (s, dp, token) = internal_stack().await;
    let registry = dp.url();
    let root = s.dir.path().to_path_buf();
    blocking(move || {
        let mut failures = Vec::new();
        for tool in [
            Tool::Npm10,
            Tool::Npm11,
            Tool::Npm12,
            Tool::Pnpm11,
            Tool::Pnpm12,
        ] {
            let name = format!("@acme/unpub-{}", format!("{tool:?}").to_lowercase());
            let p = Project::new(&root.join(format!("u-{tool:?}")), &registry, &[]);
            p.set_token(&token);
            for v in ["1.0.0", "1.0.1"] {
                let r = p.publish(&name, v);
                assert!(r.ok, "publish {name}@{v}:\n{}", r.output);
            }
            let force: &[&str] = if matches!(tool, Tool::Pnpm11 | Tool::Pnpm12) {
                &[]
            } else {
                &["--force"]
            };
            let one = format!("{name}@1.0.1");
            let mut args = vec!["unpublish", one.as_str()];
            args.extend_from_slice(force);
            let r = p.tool_in(tool, &p.dir.clone(), &args);
            if !r.ok {
                failures.push(format!("{tool:?} unpublish {one}:\n{}", r.output));
                continue;
            }
            let r = p.tool_in(tool, &p.dir.clone(), &["unpublish", &name, "--force"]);
            if !r.ok {
                failures.push(format!("{tool:?} unpublish {name} --force:\n{}", r.output));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    })
    .await;
}

/// Each client that publishes (natively, or pnpm 9/10 through npm) publishes a public
/// package through nproxy and installs it right away with the same client, although
/// nproxy had remembered the package's 404 for an hour.
#[tokio::test(flavor = "multi_thread")]
async fn every_client_publishes_a_public_package_then_installs_it() {
    let s = Stack::start(&[]).await;
    s.org_and_token(true, &["proxy"]);
    let dp = s
        .data_plane(
            "dp",
            &[
                ("NPROXY_NEGATIVE_CACHE_SECS", "3600"),
                ("NPROXY_PACKUMENT_MAX_AGE_SECS", "3600"),
            ],
        )
        .await;
    let registry = dp.url();
    let root = s.dir.path().to_path_buf();
    let upstream = s.registry.clone();
    blocking(move || {
        let mut failures = Vec::new();
        for tool in Tool::ALL {
            let name = format!("fx-pub-{}", format!("{tool:?}").to_lowercase());
            let p = Project::new(
                &root.join(format!("pub-{tool:?}")),
                &registry,
                &[(name.as_str(), "^1.0.0")],
            );
            // The user's own upstream token: nproxy passes it through to the upstream.
            p.set_token("upstream-user-token");
            let before = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("{registry}/{name}"))
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            assert_eq!(before, "404", "{name} before its publish");
            let r = p.tool_publish(tool, &name, "1.0.0");
            if !r.ok {
                failures.push(format!("{tool:?} publish {name}:\n{}", r.output));
                continue;
            }
            if upstream.count("PUT", &format!("/{name}")) != 1 {
                failures.push(format!(
                    "{tool:?}: the publish of {name} did not reach the upstream once"
                ));
            }
            let r = p.tool_install(tool, false);
            if !r.ok || p.resolved_version(None, &name).as_deref() != Some("1.0.0") {
                failures.push(format!(
                    "{tool:?} install of {name} right after its publish:\n{}",
                    r.output
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    })
    .await;
}

/// dist-tag and deprecate of an internal package, with each client that has the commands
/// itself (pnpm 9/10 hand them to npm; bun has neither; yarn 1 and 4 only tags).
#[tokio::test(flavor = "multi_thread")]
async fn clients_tag_and_deprecate_internal_packages() {
    let (s, dp, token) = internal_stack().await;
    let registry = dp.url();
    let root = s.dir.path().to_path_buf();
    blocking(move || {
        let doc = |name: &str| -> serde_json::Value {
            let out = std::process::Command::new("curl")
                .args(["-s", "-H", &format!("authorization: Bearer {token}")])
                .arg(format!("{registry}/{}", name.replacen('/', "%2f", 1)))
                .output()
                .expect("curl");
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
        };
        let mut failures = Vec::new();
        for tool in [
            Tool::Npm10,
            Tool::Npm11,
            Tool::Npm12,
            Tool::Pnpm11,
            Tool::Pnpm12,
            Tool::Yarn1,
            Tool::Yarn4,
        ] {
            let name = format!("@acme/tag-{}", format!("{tool:?}").to_lowercase());
            let p = Project::new(&root.join(format!("t-{tool:?}")), &registry, &[]);
            p.set_token(&token);
            for v in ["1.0.0", "1.0.1"] {
                let r = p.publish(&name, v);
                assert!(r.ok, "publish {name}@{v}:\n{}", r.output);
            }
            let at = format!("{name}@1.0.0");
            let dir = p.dir.clone();
            let (add, rm): (Vec<&str>, Vec<&str>) = match tool {
                Tool::Yarn1 => (
                    vec!["tag", "add", &at, "beta"],
                    vec!["tag", "remove", &name, "beta"],
                ),
                Tool::Yarn4 => (
                    vec!["npm", "tag", "add", &at, "beta"],
                    vec!["npm", "tag", "remove", &name, "beta"],
                ),
                _ => (
                    vec!["dist-tag", "add", &at, "beta"],
                    vec!["dist-tag", "rm", &name, "beta"],
                ),
            };
            let r = p.tool_in(tool, &dir, &add);
            if !r.ok || doc(&name)["dist-tags"]["beta"] != "1.0.0" {
                failures.push(format!("{tool:?} tag add:\n{}", r.output));
                continue;
            }
            let r = p.tool_in(tool, &dir, &rm);
            if !r.ok || !doc(&name)["dist-tags"]["beta"].is_null() {
                failures.push(format!("{tool:?} tag remove:\n{}", r.output));
                continue;
            }
            if matches!(tool, Tool::Yarn1 | Tool::Yarn4) {
                continue;
            }
            let r = p.tool_in(tool, &dir, &["deprecate", &at, "use 1.0.1"]);
            if !r.ok || doc(&name)["versions"]["1.0.0"]["deprecated"] != "use 1.0.1" {
                failures.push(format!("{tool:?} deprecate:\n{}", r.output));
                continue;
            }
            // pnpm 11+ refuses `deprecate ""` and has `undeprecate`; npm 11+ has both.
            let undo: Vec<&str> = if matches!(tool, Tool::Pnpm11 | Tool::Pnpm12) {
                vec!["undeprecate", &at]
            } else {
                vec!["deprecate", &at, ""]
            };
            let r = p.tool_in(tool, &dir, &undo);
            if !r.ok || !doc(&name)["versions"]["1.0.0"]["deprecated"].is_null() {
                failures.push(format!("{tool:?} un-deprecate:\n{}", r.output));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    })
    .await;
}
