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
