//! The upstream's circuit breaker: after `threshold` consecutive failures (connect errors,
//! timeouts, 5xx answers) nproxy stops asking the upstream. While it is open, cached
//! packuments are served from the copy without a try, and requests for anything uncached
//! fail at once with a 503 saying the upstream is unreachable. A background probe asks the
//! upstream every `probe_interval` and closes the breaker at its first answer.
//!
//! Lock-free (atomics): `allows()` sits on every upstream request path. Transitions are
//! decided by a compare-and-swap, so each is logged and counted exactly once, however many
//! requests race into it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::Metrics;

pub struct Breaker {
    /// The label in logs and metrics (the upstream's origin, no credentials).
    label: String,
    threshold: u32,
    probe_interval: Duration,
    failures: AtomicU32,
    open: AtomicBool,
    /// When it opened, ms since the epoch (for the error text and the log).
    opened_at_ms: AtomicU64,
    /// A probe task is running (at most one).
    probing: AtomicBool,
    metrics: Metrics,
}

/// What a failed or successful upstream exchange did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

fn now_ms() -> u64 {
    u64::try_from(nproxy_common::time::now_ms()).unwrap_or(0)
}

impl Breaker {
    /// `threshold` 0 disables the breaker (every request tries the upstream).
    pub fn new(label: String, threshold: u32, probe_interval: Duration, metrics: Metrics) -> Self {
        metrics.breaker_state(&label, false);
        Breaker {
            label,
            threshold,
            probe_interval,
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            opened_at_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            metrics,
        }
    }

    /// True when requests may go to the upstream.
    pub fn allows(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    /// How long it has been open, for the client's error text.
    pub fn open_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.opened_at_ms.load(Ordering::Relaxed)))
    }

    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// The upstream answered (any status below 500).
    pub fn success(&self) -> Transition {
        self.failures.store(0, Ordering::Relaxed);
        if self.open.load(Ordering::Acquire)
            && self
                .open
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::warn!(upstream = %self.label, down_for_ms = self.open_for().as_millis() as u64,
                "upstream answers again: circuit breaker closed");
            self.metrics.breaker(&self.label, "closed");
            return Transition::Closed;
        }
        Transition::None
    }

    /// The upstream failed (unreachable, timed out, or a 5xx).
    pub fn failure(&self, why: &str) -> Transition {
        if self.threshold == 0 {
            return Transition::None;
        }
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= self.threshold
            && self
                .open
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.opened_at_ms.store(now_ms(), Ordering::Relaxed);
            tracing::warn!(upstream = %self.label, consecutive_failures = n, last_error = why,
                "upstream unreachable: circuit breaker open; serving cached copies, probing every {:?}",
                self.probe_interval);
            self.metrics.breaker(&self.label, "open");
            return Transition::Opened;
        }
        Transition::None
    }

    /// Claims the right to run the probe; false if one is already running.
    pub fn start_probing(&self) -> bool {
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn stop_probing(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// A probe failed: counted for the metrics, no state change.
    pub fn probe_failed(&self) {
        self.metrics.breaker_probe_failed(&self.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(
            "http://up".into(),
            threshold,
            Duration::from_secs(1),
            Metrics::new(),
        )
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3);
        assert_eq!(b.failure("x"), Transition::None);
        assert_eq!(b.failure("x"), Transition::None);
        assert_eq!(b.success(), Transition::None);
        assert!(b.allows());
        assert_eq!(b.failure("x"), Transition::None);
        assert_eq!(b.failure("x"), Transition::None);
        assert_eq!(b.failure("x"), Transition::Opened);
        assert!(!b.allows());
        // Further failures while open are not new transitions (logged once).
        assert_eq!(b.failure("x"), Transition::None);
        assert_eq!(b.success(), Transition::Closed);
        assert!(b.allows());
        assert_eq!(b.success(), Transition::None);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let b = breaker(0);
        for _ in 0..100 {
            assert_eq!(b.failure("x"), Transition::None);
        }
        assert!(b.allows());
    }

    #[test]
    fn one_prober_at_a_time() {
        let b = breaker(1);
        assert!(b.start_probing());
        assert!(!b.start_probing());
        b.stop_probing();
        assert!(b.start_probing());
    }

    #[test]
    fn state_is_in_the_metrics() {
        let m = Metrics::new();
        let b = Breaker::new("u".into(), 1, Duration::from_secs(1), m.clone());
        b.failure("x");
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"nproxy_upstream_breaker_open{upstream="u"} 1"#),
            "{text}"
        );
        b.success();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"nproxy_upstream_breaker_open{upstream="u"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nproxy_upstream_breaker_transitions_total{to="open",upstream="u"} 1"#),
            "{text}"
        );
    }
}
