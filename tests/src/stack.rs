//! `Stack`: the whole system as tests start it: a real redis-server, a control plane
//! process, the fixture upstream, and data plane processes started per test.

use std::sync::Arc;

use crate::control::{ctl, ControlPlane, Redis};
use crate::fixtures::{self, FixturePackage};
use crate::procs::{DataPlane, DataPlaneOptions, Storage};
use crate::registry::Registry;

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub redis: Redis,
    pub cp: ControlPlane,
    pub registry: Arc<Registry>,
}

impl Stack {
    /// Redis, a control plane (with `cp_env`) and the fixture upstream with the standard
    /// packages; data planes are started per test with `data_plane`.
    pub async fn start(cp_env: &[(&str, &str)]) -> Stack {
        Self::start_with(cp_env, Vec::new()).await
    }

    /// `start`, with more fixture packages on the upstream.
    pub async fn start_with(cp_env: &[(&str, &str)], extra: Vec<FixturePackage>) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start(&dir.path().join("redis")).await;
        let cp = ControlPlane::start(&dir.path().join("cp"), &redis.url(), cp_env).await;
        let mut packages = fixtures::standard();
        packages.extend(extra);
        let registry = Registry::start(&packages).await;
        Stack {
            dir,
            redis,
            cp,
            registry,
        }
    }

    pub async fn data_plane(&self, name: &str, env: &[(&str, &str)]) -> DataPlane {
        self.data_plane_on(name, env, Storage::Local(self.dir.path().join("store")))
            .await
    }

    pub async fn data_plane_on(
        &self,
        name: &str,
        env: &[(&str, &str)],
        storage: Storage,
    ) -> DataPlane {
        self.data_plane_wrapped(name, env, storage, &[]).await
    }

    /// `data_plane_on`, run by a wrapper program (see `DataPlane::start_wrapped`).
    pub async fn data_plane_wrapped(
        &self,
        name: &str,
        env: &[(&str, &str)],
        storage: Storage,
        wrapper: &[&str],
    ) -> DataPlane {
        let mut all: Vec<(String, String)> = vec![
            ("NPROXY_REDIS_URL".into(), self.redis.url()),
            ("NPROXY_DEFAULT_ORG".into(), "acme".into()),
            ("NPROXY_CONTROL_PLANE_URL".into(), self.cp.endpoint()),
            (
                "NPROXY_CONTROL_PLANE_TOKEN".into(),
                crate::control::DATA_PLANE_TOKEN.into(),
            ),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        DataPlane::start_wrapped(
            &self.dir.path().join(name),
            DataPlaneOptions {
                upstream: self.registry.url(),
                storage,
                env: all,
            },
            wrapper,
        )
        .await
    }

    pub fn ctl(&self, args: &[&str]) -> crate::control::CtlRun {
        let run = ctl(&self.cp.endpoint(), args);
        assert!(
            run.ok,
            "nproxyctl {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Creates org `acme` and a token; returns (token id, secret).
    pub fn org_and_token(&self, public_reads: bool, scopes: &[&str]) -> (String, String) {
        self.ctl(&["org", "create", "acme", "--display-name", "Acme Corp"]);
        self.ctl(&[
            "org",
            "settings",
            "acme",
            "--public-reads",
            if public_reads { "true" } else { "false" },
        ]);
        let mut args = vec![
            "-o", "json", "token", "create", "--org", "acme", "--name", "ci",
        ];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        let t = self.ctl(&args).json();
        let id = t["id"].as_str().expect("id").to_string();
        let secret = t["secret"].as_str().expect("secret").to_string();
        (id, secret)
    }
}

/// The status of a GET (0 if none came within 10 s).
pub async fn status(url: &str, token: Option<&str>) -> u16 {
    let client = crate::http_builder()
        .no_gzip()
        .build()
        .expect("http client");
    let mut req = client.get(url).timeout(std::time::Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}
