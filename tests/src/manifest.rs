//! The servers as `deploy/kubernetes/base` declares them. A Deployment's first container
//! gives the `args` and `env` a test starts the binary with: `value:` literals as written,
//! ConfigMap references from the kustomization's `configMapGenerator` env files, Secret
//! references from values the test supplies. So the scale test runs what the manifests
//! say, and a manifest the test could not reproduce (a shell, a mounted file, an env form
//! it does not know) fails the test instead of drifting from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_yaml::Value;

use crate::procs::{binary, workspace_root};

/// `deploy/kubernetes/base`.
pub fn base_dir() -> PathBuf {
    workspace_root().join("deploy/kubernetes/base")
}

/// What a container runs: its `args` and its environment, resolved.
#[derive(Debug, Clone)]
pub struct Container {
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// Secret values by (Secret name, key): the test's own (the base's are placeholders).
pub type Secrets<'a> = &'a [(&'a str, &'a str, &'a str)];

fn read_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// ConfigMap name → its data, from the kustomization's `configMapGenerator` (`envs` files
/// of `key=value` lines).
fn config_maps(base: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let k = read_yaml(&base.join("kustomization.yaml"));
    let mut maps = BTreeMap::new();
    for gen in k["configMapGenerator"].as_sequence().into_iter().flatten() {
        let name = gen["name"].as_str().expect("configMapGenerator name");
        let mut data = BTreeMap::new();
        for file in gen["envs"].as_sequence().into_iter().flatten() {
            let file = base.join(file.as_str().expect("envs entry"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (key, value) = line
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{}: not key=value: {line}", file.display()));
                data.insert(key.to_string(), value.to_string());
            }
        }
        assert!(
            gen.get("literals").is_none() && gen.get("files").is_none(),
            "configMapGenerator {name}: only `envs` is understood by the tests"
        );
        maps.insert(name.to_string(), data);
    }
    maps
}

/// The first container of the Deployment in `base/<file>`, resolved.
pub fn container(file: &str, secrets: Secrets<'_>) -> Container {
    let base = base_dir();
    let doc = read_yaml(&base.join(file));
    assert_eq!(doc["kind"].as_str(), Some("Deployment"), "{file}");
    let c = &doc["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c.get("command").is_none(),
        "{file}: a `command` would bypass the image entrypoint the test runs"
    );
    assert!(
        c.get("envFrom").is_none(),
        "{file}: envFrom is not reproduced by the tests"
    );
    let args = c["args"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().expect("args are strings").to_string())
        .collect();
    let maps = config_maps(&base);
    let mut env = BTreeMap::new();
    for e in c["env"].as_sequence().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name").to_string();
        if let Some(v) = e.get("value") {
            let v = match v {
                Value::String(s) => s.clone(),
                other => panic!("{file}: {name}: value must be a string, got {other:?}"),
            };
            env.insert(name, v);
            continue;
        }
        let from = &e["valueFrom"];
        let (kind, r) = if let Some(r) = from.get("configMapKeyRef") {
            ("configmap", r)
        } else if let Some(r) = from.get("secretKeyRef") {
            ("secret", r)
        } else {
            panic!("{file}: {name}: only value, configMapKeyRef and secretKeyRef are reproduced")
        };
        let source = r["name"].as_str().expect("ref name");
        let key = r["key"].as_str().expect("ref key");
        let optional = r["optional"].as_bool().unwrap_or(false);
        let value = match kind {
            "configmap" => maps
                .get(source)
                .unwrap_or_else(|| panic!("{file}: {name}: no ConfigMap {source}"))
                .get(key)
                .cloned(),
            _ => secrets
                .iter()
                .find(|(s, k, _)| *s == source && *k == key)
                .map(|(_, _, v)| v.to_string()),
        };
        match value {
            Some(v) => {
                env.insert(name, v);
            }
            None if optional => {}
            None => panic!("{file}: {name}: {kind} {source} has no key {key}"),
        }
    }
    Container { args, env }
}

impl Container {
    /// Sets (or adds) variables: the addresses and URLs only a test knows.
    pub fn with(mut self, vars: &[(&str, &str)]) -> Container {
        for (k, v) in vars {
            self.env.insert(k.to_string(), v.to_string());
        }
        self
    }

    /// Starts `binary` (a workspace binary) with exactly this container's args and
    /// environment (plus PATH and RUST_LOG), output appended to `log`.
    pub fn spawn(&self, binary_name: &str, log: &Path) -> Child {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        Command::new(binary(binary_name))
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(&self.env)
            .stdout(Stdio::from(logf.try_clone().expect("log")))
            .stderr(Stdio::from(logf))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary_name}: {e}"))
    }
}

/// A server started from a [`Container`] on a fixed loopback port, restartable in place
/// (same port, same environment) the way a rolling update replaces a pod.
pub struct Process {
    child: Child,
    pub binary: &'static str,
    pub container: Container,
    pub port: u16,
    pub log: PathBuf,
}

impl Process {
    /// Spawns it and waits until `port` accepts connections.
    pub async fn start(
        binary: &'static str,
        container: Container,
        port: u16,
        log: PathBuf,
    ) -> Process {
        let mut child = container.spawn(binary, &log);
        crate::control::wait_tcp(port, binary, &mut child, &log).await;
        Process {
            child,
            binary,
            container,
            port,
            log,
        }
    }

    /// SIGTERM, then waits for it to exit by itself (its graceful stop); the exit status, or
    /// `None` if it was still running after `within` (then it is killed).
    pub async fn stop(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        crate::procs::sigterm(&self.child);
        let status = crate::procs::wait_exit(&mut self.child, within).await;
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }

    /// Starts it again on the same port after [`Process::stop`].
    pub async fn start_again(&mut self) {
        let mut child = self.container.spawn(self.binary, &self.log);
        crate::control::wait_tcp(self.port, self.binary, &mut child, &self.log).await;
        self.child = child;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_manifests_resolve_with_the_tests_secrets() {
        let secrets: Secrets<'_> = &[
            ("nproxy-control-plane-secrets", "master-key", "mk"),
            ("nproxy-control-plane-secrets", "admin-token", "at"),
            (
                "nproxy-control-plane-secrets",
                "database-url",
                "postgres://x",
            ),
            ("nproxy-data-plane-token", "token", "dpt"),
            ("nproxy-s3-credentials", "access-key-id", "ak"),
            ("nproxy-s3-credentials", "secret-access-key", "sk"),
        ];
        let dp = container("data-plane.yaml", secrets);
        assert_eq!(dp.env["NPROXY_CONTROL_PLANE_TOKEN"], "dpt");
        assert_eq!(dp.env["NPROXY_STORAGE__KIND"], "s3");
        assert!(
            !dp.env.contains_key("NPROXY_PUBLIC_URL"),
            "optional, absent"
        );
        let cp = container("control-plane.yaml", secrets);
        assert_eq!(cp.env["NPROXY_DATABASE"], "postgres://x");
        assert_eq!(cp.env["NPROXY_DATA_PLANE_TOKEN"], "dpt");
    }
}
