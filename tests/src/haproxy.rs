//! HAProxy (Debian's package) in front of data planes, as a platform team would run it:
//! round robin, active health checks on `/-/health/ready`, and one log line per request
//! (status, timings, which server, how it ended), so a test counts failures from the
//! balancer's own record, not from what a client chose to report. Connections closed
//! without a request (a client dropping an idle keep-alive connection) are not logged.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::procs::free_port;

pub struct Haproxy {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// One request as the balancer logged it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// When HAProxy accepted the request, ms since the Unix epoch.
    pub accepted_ms: u64,
    /// HTTP status sent to the client; -1 when none was (connection failed or aborted).
    pub status: i32,
    /// Total time the request took, ms (%Ta).
    pub total_ms: u64,
    pub method: String,
    pub path: String,
    /// `backend/server` that answered.
    pub server: String,
    /// HAProxy's termination state (`--` for a normal end).
    pub termination: String,
    /// How many times HAProxy retried a connection to a server for it (%rc).
    pub retries: String,
}

impl Logged {
    /// A request the client did not get a proper answer to: a 5xx, no status at all, or
    /// ended abnormally on either side.
    pub fn failed(&self) -> bool {
        self.status >= 500 || self.status < 100 || !self.termination.starts_with('-')
    }
}

fn which(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

impl Haproxy {
    /// HAProxy on a free loopback port balancing over `servers` (ports on 127.0.0.1),
    /// checking each with `GET /-/health/ready` every `check_ms` (down after 2 failures, up
    /// after 2 successes). Stricter than a production balancer on purpose: `retries 0`, so a
    /// refused connection to a server that stopped listening too early is a failed request
    /// in the log, not a retry that hides it.
    pub async fn start(dir: &Path, servers: &[u16], check_ms: u64) -> Haproxy {
        let bin = which("haproxy").expect("haproxy is missing: run scripts/install-test-tools.sh");
        std::fs::create_dir_all(dir).expect("dir");
        let port = free_port();
        let log = dir.join("haproxy.log");
        let cfg = dir.join("haproxy.cfg");
        let mut text = format!(
            "global\n\
             \x20 log stdout format raw local0 info\n\
             \x20 maxconn 1024\n\
             defaults\n\
             \x20 mode http\n\
             \x20 log global\n\
             \x20 option dontlognull\n\
             \x20 retries 0\n\
             \x20 log-format \"%Ts%ms %ST %Ta %rc %HM %HP %b/%s %ts\"\n\
             \x20 timeout connect 2s\n\
             \x20 timeout client 60s\n\
             \x20 timeout server 60s\n\
             \x20 timeout http-keep-alive 10s\n\
             frontend npm\n\
             \x20 bind 127.0.0.1:{port}\n\
             \x20 default_backend data_planes\n\
             backend data_planes\n\
             \x20 balance roundrobin\n\
             \x20 option httpchk\n\
             \x20 http-check send meth GET uri /-/health/ready\n\
             \x20 http-check expect status 200\n\
             \x20 default-server inter {check_ms}ms fall 2 rise 2\n"
        );
        for (i, p) in servers.iter().enumerate() {
            text.push_str(&format!("  server dp{i} 127.0.0.1:{p} check\n"));
        }
        std::fs::write(&cfg, text).expect("haproxy.cfg");
        let check = Command::new(&bin)
            .args(["-c", "-q", "-f"])
            .arg(&cfg)
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let logf = std::fs::File::create(&log).expect("log");
        let mut child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::from(logf.try_clone().expect("log")))
            .stderr(Stdio::from(logf))
            .spawn()
            .expect("spawn haproxy");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(s)) = child.try_wait() {
                panic!(
                    "haproxy exited ({s}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "haproxy did not listen"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Haproxy { child, port, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request logged so far (other lines, e.g. health-check state changes, skipped).
    pub fn requests(&self) -> Vec<Logged> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(parse_line).collect()
    }

    /// The log's lines that are not requests: server state changes and warnings.
    pub fn events(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| parse_line(l).is_none())
            .map(str::to_string)
            .collect()
    }
}

/// `%Ts%ms %ST %Ta %rc %HM %HP %b/%s %ts`.
fn parse_line(line: &str) -> Option<Logged> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 8 || !f[6].contains('/') {
        return None;
    }
    Some(Logged {
        accepted_ms: f[0].parse().ok()?,
        status: f[1].parse().ok()?,
        total_ms: f[2].parse().unwrap_or(u64::MAX),
        retries: f[3].to_string(),
        method: f[4].to_string(),
        path: f[5].to_string(),
        server: f[6].to_string(),
        termination: f[7].to_string(),
    })
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_parse_and_failures_are_recognised() {
        let ok =
            parse_line("1764547200123 200 12 0 GET /fx-a data_planes/dp1 --").expect("request");
        assert!(!ok.failed());
        assert_eq!(ok.server, "data_planes/dp1");
        assert_eq!(ok.accepted_ms, 1_764_547_200_123);
        let refused =
            parse_line("1764547200123 503 0 3 GET /fx-a data_planes/<NOSRV> SC").expect("request");
        assert!(refused.failed());
        let cut =
            parse_line("1764547200123 200 40 0 GET /fx-a/-/fx-a-1.0.0.tgz data_planes/dp0 SD")
                .expect("x");
        assert!(cut.failed(), "a 200 whose body was cut is a failure");
        let aborted = parse_line("1764547200123 -1 5 0 GET /x data_planes/dp0 CD").expect("x");
        assert!(aborted.failed());
        assert!(
            parse_line("Server data_planes/dp0 is DOWN, reason: Layer7 wrong status").is_none()
        );
    }
}
