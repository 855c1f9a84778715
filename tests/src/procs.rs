//! Real processes the tests start: the data plane binary and SeaweedFS (S3). Each is killed
//! when its handle drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace's `target/<profile>` folder, found from the running test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/it-xxxx → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Where the test setup installed pnpm, yarn and SeaweedFS (`NPROXY_TOOLS_DIR` overrides).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("NPROXY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"))
}

/// A port for a server a test starts. Chosen below the kernel's ephemeral range: ports
/// from there (what binding to port 0 gives) are also handed out as source ports of
/// outgoing connections, so under load one could be taken before the server binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    let mut x = seed | 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// A binary of the workspace, refused if it is missing or older than any of its sources:
/// a stale binary would test yesterday's code and pass or fail for the wrong reason.
pub fn binary(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build it first (`cargo build --workspace --bins`)",
                p.display()
            )
        });
    // The crates each binary is built from (a binary is not rebuilt for crates it lacks).
    let crates: &[&str] = match name {
        "nproxy-control-plane" => &["common", "proto", "control-plane"],
        "nproxy-data-plane" => &["common", "core", "proto", "data-plane"],
        _ => &[
            "common",
            "core",
            "proto",
            "control-plane",
            "data-plane",
            "cli",
        ],
    };
    if let Some((newest, path)) = newest_source(crates) {
        assert!(
            newest <= built,
            "{} is older than {}: rebuild it (`cargo build --workspace --bins`)",
            p.display(),
            path.display()
        );
    }
    p
}

/// The most recently modified source file of `crates`.
fn newest_source(crates: &[&str]) -> Option<(std::time::SystemTime, PathBuf)> {
    let root = workspace_root();
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = Vec::new();
    for krate in crates {
        for part in ["src", "proto", "migrations", "build.rs", "Cargo.toml"] {
            stack.push(root.join(krate).join(part));
        }
    }
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
            continue;
        }
        let source = path
            .extension()
            .is_some_and(|e| e == "rs" || e == "proto" || e == "sql" || e == "toml");
        if let (true, Ok(m)) = (source, meta.modified()) {
            if newest.as_ref().is_none_or(|(t, _)| m > *t) {
                newest = Some((m, path));
            }
        }
    }
    newest
}

async fn wait_http(url: &str, child: &mut Child, log: &Path) {
    let client = crate::http();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().as_u16() < 500 {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("process exited ({status}) before {url} answered:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not come up in 20 s; log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running data plane process.
pub struct DataPlane {
    child: Child,
    pub port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
    pub dir: PathBuf,
}

/// Storage for a data plane under test.
#[derive(Clone)]
pub enum Storage {
    Local(PathBuf),
    S3 { endpoint: String, bucket: String },
}

pub struct DataPlaneOptions {
    pub upstream: String,
    pub storage: Storage,
    pub env: Vec<(String, String)>,
}

impl DataPlane {
    pub async fn start(dir: &Path, opts: DataPlaneOptions) -> DataPlane {
        Self::start_wrapped(dir, opts, &[]).await
    }

    /// `start`, with the binary run by `wrapper` (a program and its arguments, the data
    /// plane's path appended), e.g. `unshare -m sh -c '…; exec "$@"' sh`.
    pub async fn start_wrapped(dir: &Path, opts: DataPlaneOptions, wrapper: &[&str]) -> DataPlane {
        std::fs::create_dir_all(dir).expect("dir");
        let port = free_port();
        let metrics_port = free_port();
        let log = dir.join(format!("data-plane-{port}.log"));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary("nproxy-data-plane"));
                c
            }
            None => Command::new(binary("nproxy-data-plane")),
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,nproxy_data_plane=debug")
            .env("NPROXY_UPSTREAM", &opts.upstream)
            .env("NPROXY_LISTEN", format!("127.0.0.1:{port}"))
            .env("NPROXY_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("NPROXY_UPSTREAM_TIMEOUT_MS", "5000")
            .env("NPROXY_UPSTREAM_CONNECT_TIMEOUT_MS", "1000")
            .env("NPROXY_THREADS", "2")
            .env("TMPDIR", dir)
            .stdout(Stdio::from(logf.try_clone().expect("log")))
            .stderr(Stdio::from(logf));
        match &opts.storage {
            Storage::Local(p) => {
                cmd.env("NPROXY_STORAGE__KIND", "local")
                    .env("NPROXY_STORAGE__PATH", p);
            }
            Storage::S3 { endpoint, bucket } => {
                cmd.env("NPROXY_STORAGE__KIND", "s3")
                    .env("NPROXY_STORAGE__S3__ENDPOINT", endpoint)
                    .env("NPROXY_STORAGE__S3__BUCKET", bucket)
                    .env("NPROXY_STORAGE__S3__PATH_STYLE", "true")
                    .env("NPROXY_STORAGE__S3__ACCESS_KEY_ID", "test")
                    .env("NPROXY_STORAGE__S3__SECRET_ACCESS_KEY", "test");
            }
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn data plane");
        wait_http(&format!("http://127.0.0.1:{port}/-/ping"), &mut child, &log).await;
        DataPlane {
            child,
            port,
            metrics_port,
            log,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id (of the wrapper, if one was used: it `exec`s the data plane).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: the graceful shutdown (drain, then finish open requests, then exit).
    pub fn terminate(&self) {
        sigterm(&self.child);
    }

    /// Waits up to `within` for the process to exit by itself; its exit status if it did.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        wait_exit(&mut self.child, within).await
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn metrics(&self) -> String {
        crate::http()
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Sum of every sample of `metric` whose labels contain all of `labels` (`k="v"`).
    pub async fn metric(&self, metric: &str, labels: &[&str]) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.split(['{', ' ']).next() == Some(metric) && labels.iter().all(|x| l.contains(x))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SeaweedFS in `weed mini` mode: a real S3-compatible server on loopback.
pub struct SeaweedFs {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl SeaweedFs {
    pub async fn start() -> SeaweedFs {
        let weed = std::env::var_os("NPROXY_WEED")
            .map(PathBuf::from)
            .unwrap_or_else(|| tools_dir().join("venv/bin/weed"));
        assert!(
            weed.exists(),
            "{} is missing: run scripts/install-test-tools.sh",
            weed.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p: Vec<u16> = (0..14).map(|_| free_port()).collect();
        let log = dir.path().join("weed.log");
        let logf = std::fs::File::create(&log).expect("log");
        let mut child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", dir.path().display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .arg(format!("-debug.port={}", p[10]))
            .arg(format!("-metricsPort={}", p[11]))
            .arg(format!("-s3.port.iceberg={}", p[12]))
            .arg(format!("-s3.port.lance={}", p[13]))
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
            ])
            .stdout(Stdio::from(logf.try_clone().expect("log")))
            .stderr(Stdio::from(logf))
            .spawn()
            .expect("spawn weed");
        let endpoint = format!("http://127.0.0.1:{}", p[6]);
        wait_http(&format!("{endpoint}/"), &mut child, &log).await;
        SeaweedFs {
            child,
            endpoint,
            _dir: dir,
        }
    }

    /// Creates a bucket (idempotent).
    pub async fn bucket(&self, name: &str) {
        let r = crate::http()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(
            r.status().is_success() || r.status().as_u16() == 409,
            "create bucket {name}: {}",
            r.status()
        );
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to a child process (the graceful stop of both servers).
pub fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

/// Waits up to `within` for a child to exit by itself; its exit status if it did.
pub async fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
