//! A real PostgreSQL server for tests, from Debian's `postgresql` package.
//!
//! nextest runs every test in its own process, and `initdb` plus a start costs seconds, so
//! one server is shared by all test processes of a checkout: the first to need it starts it
//! under an exclusive file lock, the others find it running (its port in a file beside
//! the lock). Each test gets a database of its own (`database_url`), so tests never see each
//! other's rows. `scripts/test.sh` stops the server when the suite ends (`stop`); a server
//! not running when a test needs it is started on a fresh cluster, so no run inherits
//! another's databases.
//!
//! `initdb` refuses to run as root: as root, the server runs as the dedicated system user
//! `nproxy-pg` (created if missing), with its files under the system temp folder, which
//! that user can reach wherever the checkout is.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The system user the server runs as when the tests run as root.
const PG_USER: &str = "nproxy-pg";

/// Where this checkout's server lives: one per target folder, so two checkouts never share.
fn home() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let target = target.canonicalize().unwrap_or(target);
    // FNV-1a of the path: stable across processes and Rust versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.to_string_lossy().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!("nproxy-test-pg-{h:016x}"))
}

/// Debian's server binaries: `/usr/lib/postgresql/<newest>/bin`.
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) if dir.join(name).exists() => dir.join(name),
        _ => panic!(
            "PostgreSQL's `{name}` is not installed: run scripts/install-test-tools.sh \
             (it installs Debian's `postgresql` package)"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the server's user.
fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) -> Output {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ensure_user() {
    if !is_root() {
        return;
    }
    let exists = Command::new("id")
        .arg(PG_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let mut c = Command::new("useradd");
        c.args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            PG_USER,
        ]);
        let out = c.output().expect("useradd");
        // Another test process may have created it meanwhile: only "still missing" fails.
        let now = Command::new("id").arg(PG_USER).output().expect("id");
        assert!(
            now.status.success(),
            "cannot create the user {PG_USER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn chown_to_pg(path: &Path) {
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", &format!("{PG_USER}:{PG_USER}")]).arg(path);
                c
            },
            "chown",
        );
    }
}

fn ready(port: u16) -> bool {
    Command::new(bin("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The shared server's port, starting it if no server of this checkout is running.
pub fn server_port() -> u16 {
    let home = home();
    std::fs::create_dir_all(&home).expect("postgres test folder");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.join("lock"))
        .expect("lock file");
    lock.lock().expect("lock the postgres test folder");
    let port = running_port(&home).unwrap_or_else(|| start(&home));
    drop(lock);
    port
}

fn running_port(home: &Path) -> Option<u16> {
    let port: u16 = std::fs::read_to_string(home.join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    ready(port).then_some(port)
}

fn start(home: &Path) -> u16 {
    ensure_user();
    let data = home.join("data");
    // A fresh cluster each time one is started: no run inherits another's databases.
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data folder");
    let sock = home.join("sock");
    std::fs::create_dir_all(&sock).expect("socket folder");
    chown_to_pg(home);
    run(
        {
            let mut c = as_pg(&bin("initdb"));
            c.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
            c
        },
        "initdb",
    );
    let port = free_port();
    let log = home.join("server.log");
    let _ = File::create(&log);
    chown_to_pg(&log);
    // Durability is not under test here: fsync off keeps a database per test cheap.
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300",
        sock.display()
    );
    run(
        {
            let mut c = as_pg(&bin("pg_ctl"));
            c.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &opts, "-w", "-t", "60", "start"]);
            c
        },
        "pg_ctl start",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(port) {
        assert!(
            Instant::now() < deadline,
            "postgres did not get ready:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut f = File::create(home.join("port")).expect("port file");
    let _ = writeln!(f, "{port}");
    port
}

/// A new, empty database on the shared server; its `postgres://` URL.
pub fn database_url() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let port = server_port();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    );
    run(
        {
            let mut c = Command::new(bin("createdb"));
            c.args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                &name,
            ]);
            c
        },
        "createdb",
    );
    format!("postgres://postgres@127.0.0.1:{port}/{name}")
}

/// Stops this checkout's server, if one runs (the end of a test run).
pub fn stop() {
    let home = home();
    let data = home.join("data");
    if data.join("postmaster.pid").exists() {
        let mut c = as_pg(&bin("pg_ctl"));
        c.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
        let _ = c.stdin(Stdio::null()).output();
    }
    let _ = std::fs::remove_file(home.join("port"));
}
