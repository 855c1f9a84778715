//! A data plane's life behind a load balancer: liveness and readiness, and a shutdown that
//! loses no request.
//!
//! On SIGTERM readiness turns false first (`GET /-/health/ready` answers 503) while
//! everything else is still served, for `drain_secs`, so the balancer's health checks take
//! the process out of rotation before it stops listening. Then pingora closes the listeners
//! and lets open connections finish their current request; the process exits as soon as
//! none is left, or after `shutdown_grace_secs` at the latest. SIGINT stops at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};

/// Shared by the connection guard (open connections), the HTTP app (readiness) and the
/// shutdown signal watcher.
#[derive(Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    open_connections: AtomicUsize,
}

impl Lifecycle {
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }
}

/// The answer to `/-/health/live` or `/-/health/ready`, if `path` is one of them: (status,
/// JSON body). Answered before any org is resolved, so a balancer can ask by IP address.
pub fn health_answer(path: &str, lifecycle: &Lifecycle) -> Option<(u16, &'static str)> {
    match path {
        "/-/health/live" => Some((200, r#"{"status":"live"}"#)),
        "/-/health/ready" if lifecycle.ready() => Some((200, r#"{"status":"ready"}"#)),
        "/-/health/ready" => Some((
            503,
            r#"{"error":"draining: this data plane is shutting down"}"#,
        )),
        _ => None,
    }
}

/// pingora's shutdown signal with the drain in front of it.
pub struct DrainingShutdown {
    pub lifecycle: Arc<Lifecycle>,
    pub drain: Duration,
    pub grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainingShutdown {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for SIGTERM/SIGINT; stopping now");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = term.recv() => {}
        }
        self.lifecycle.start_draining();
        tracing::info!(
            drain_secs = self.drain.as_secs(),
            "SIGTERM: readiness is now false; still serving while the balancer notices"
        );
        tokio::select! {
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = tokio::time::sleep(self.drain) => {}
        }
        // pingora now closes the listeners and sleeps its whole grace period; exit as soon
        // as the last connection has finished instead.
        let lifecycle = self.lifecycle.clone();
        let deadline = Instant::now() + self.grace;
        std::thread::spawn(move || {
            // Give pingora a moment to stop accepting before counting.
            std::thread::sleep(Duration::from_millis(200));
            while lifecycle.open_connections() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            tracing::info!(
                open = lifecycle.open_connections(),
                "shutdown: in-flight requests finished (or the grace period ended); exiting"
            );
            std::process::exit(0);
        });
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "drain over: closing listeners, letting open requests finish"
        );
        ShutdownSignal::GracefulTerminate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_turns_false_when_draining_and_liveness_stays() {
        let l = Lifecycle::default();
        assert_eq!(health_answer("/-/health/ready", &l).map(|a| a.0), Some(200));
        l.start_draining();
        assert_eq!(health_answer("/-/health/ready", &l).map(|a| a.0), Some(503));
        assert_eq!(health_answer("/-/health/live", &l).map(|a| a.0), Some(200));
        assert_eq!(health_answer("/-/ping", &l), None);
        assert_eq!(health_answer("/acme/-/health/ready", &l), None);
    }
}
