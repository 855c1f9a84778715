//! Processes for control-plane tests: redis-server, the control plane binary, and the
//! nproxyctl binary as an admin would run it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{binary, free_port};

/// Waits until `port` on loopback accepts connections (panics with the log if `child`
/// exits first or 20 s pass).
pub async fn wait_tcp(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A real redis-server on a free loopback port, without persistence (as many run it).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    pub async fn start(dir: &Path) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("redis dir");
        let log = self.dir.join(format!("redis-{}.log", self.port));
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        wait_tcp(self.port, "redis-server", &mut child, &log).await;
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Every key and (string) value in the database, as raw bytes.
    pub fn dump_all(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for key in self.cli(&["KEYS", "*"]).lines().filter(|l| !l.is_empty()) {
            out.extend_from_slice(key.as_bytes());
            let v = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "--raw", "GET", key])
                .output()
                .expect("redis-cli");
            out.extend_from_slice(&v.stdout);
        }
        out
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const DATA_PLANE_TOKEN: &str = "test-data-plane-token-0123456789abcdef";
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The control plane binary with a SQLite file in `dir` (or the database `NPROXY_DATABASE`
/// in its environment names).
pub struct ControlPlane {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    redis_url: String,
    env: Vec<(String, String)>,
}

impl ControlPlane {
    pub async fn start(dir: &Path, redis_url: &str, env: &[(&str, &str)]) -> ControlPlane {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::spawn(dir, redis_url, env, free_port()).await
    }

    /// Starts it again on the same port with the same database (after a `kill`).
    pub async fn restart(&mut self) {
        self.kill();
        let again = Self::spawn(
            &self.dir.clone(),
            &self.redis_url.clone(),
            self.env.clone(),
            self.port,
        )
        .await;
        *self = again;
    }

    async fn spawn(
        dir: &Path,
        redis_url: &str,
        env: Vec<(String, String)>,
        port: u16,
    ) -> ControlPlane {
        std::fs::create_dir_all(dir).expect("dir");
        let log = dir.join(format!("control-plane-{port}.log"));
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut cmd = Command::new(binary("nproxy-control-plane"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("NPROXY_LISTEN", format!("127.0.0.1:{port}"))
            .env("NPROXY_DATABASE", dir.join("control.db"))
            .env("NPROXY_REDIS_URL", redis_url)
            .env("NPROXY_MASTER_KEY", MASTER_KEY)
            .env("NPROXY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("NPROXY_DATA_PLANE_TOKEN", DATA_PLANE_TOKEN)
            .stdout(Stdio::from(logf.try_clone().expect("log")))
            .stderr(Stdio::from(logf));
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn control plane");
        wait_tcp(port, "control plane", &mut child, &log).await;
        ControlPlane {
            child,
            port,
            dir: dir.to_path_buf(),
            log,
            redis_url: redis_url.to_string(),
            env,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM: the graceful stop (health NOT_SERVING, drain, exit).
    pub fn terminate(&self) {
        crate::procs::sigterm(&self.child);
    }

    /// Waits up to `within` for the process to exit by itself; its exit status if it did.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        crate::procs::wait_exit(&mut self.child, within).await
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug)]
pub struct CtlRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CtlRun {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "nproxyctl printed no JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `nproxyctl` against a control plane with the admin token.
pub fn ctl(endpoint: &str, args: &[&str]) -> CtlRun {
    ctl_with(endpoint, Some(ADMIN_TOKEN), args)
}

pub fn ctl_with(endpoint: &str, token: Option<&str>, args: &[&str]) -> CtlRun {
    let mut cmd = Command::new(binary("nproxyctl"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .args(["--endpoint", endpoint]);
    if let Some(t) = token {
        cmd.env("NPROXY_ADMIN_TOKEN", t);
    }
    let out = cmd.args(args).output().expect("run nproxyctl");
    CtlRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}
