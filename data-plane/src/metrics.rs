//! Prometheus metrics, served on their own listener (`metrics_listen`) at `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    cache: IntCounterVec,
    upstream: IntCounterVec,
    upstream_seconds: HistogramVec,
    tarball_bytes: IntCounter,
    connections_open: IntGauge,
    connections_refused: IntCounter,
    connections_cut: IntCounterVec,
    breaker_open: IntGaugeVec,
    breaker_transitions: IntCounterVec,
    background_refreshes: IntCounterVec,
    memory_cache_bytes: IntGaugeVec,
    memory_cache_entries: IntGaugeVec,
    heap_bytes: IntGaugeVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: T) -> T {
    registry
        .register(Box::new(m.clone()))
        .unwrap_or_else(|e| panic!("metric registered twice: {e}"));
    m
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("nproxy".into()), None)
            .unwrap_or_else(|e| panic!("metrics registry: {e}"));
        let requests = counter_vec(
            &registry,
            "requests_total",
            "HTTP requests answered, by route and status",
            &["route", "status"],
        );
        let cache = counter_vec(
            &registry,
            "cache_total",
            "Cache lookups by kind (packument, tarball) and result (hit, miss, stale, revalidated)",
            &["kind", "result"],
        );
        let upstream = counter_vec(
            &registry,
            "upstream_requests_total",
            "Requests sent to the upstream registry, by kind and status (or error)",
            &["kind", "status"],
        );
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "upstream_duration_seconds",
                "Time to the upstream's response headers",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["kind"],
        )
        .unwrap_or_else(|e| panic!("histogram: {e}"));
        registry
            .register(Box::new(upstream_seconds.clone()))
            .unwrap_or_else(|e| panic!("histogram: {e}"));
        let tarball_bytes = IntCounter::new("tarball_bytes_total", "Tarball bytes sent to clients")
            .unwrap_or_else(|e| panic!("counter: {e}"));
        registry
            .register(Box::new(tarball_bytes.clone()))
            .unwrap_or_else(|e| panic!("counter: {e}"));
        let connections_open = register(
            &registry,
            IntGauge::new("connections_open", "Client connections being served")
                .unwrap_or_else(|e| panic!("gauge: {e}")),
        );
        let connections_refused = register(
            &registry,
            IntCounter::new(
                "connections_refused_total",
                "Client connections refused because max_connections were open",
            )
            .unwrap_or_else(|e| panic!("counter: {e}")),
        );
        let connections_cut = counter_vec(
            &registry,
            "connections_cut_total",
            "Client connections closed by a deadline, by what was late (first_byte, header, body)",
            &["late"],
        );
        let breaker_open = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "upstream_breaker_open",
                    "1 while the upstream's circuit breaker is open (upstream assumed down)",
                ),
                &["upstream"],
            )
            .unwrap_or_else(|e| panic!("gauge: {e}")),
        );
        let breaker_transitions = counter_vec(
            &registry,
            "upstream_breaker_transitions_total",
            "Circuit breaker state changes, by the state entered (open, closed), and failed probes (probe_failed)",
            &["upstream", "to"],
        );
        let background_refreshes = counter_vec(
            &registry,
            "background_refreshes_total",
            "Stale packuments refreshed in the background, by result",
            &["result"],
        );
        let gauge_vec = |name: &str, help: &str, label: &str| {
            register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), &[label])
                    .unwrap_or_else(|e| panic!("gauge {name}: {e}")),
            )
        };
        let memory_cache_bytes = gauge_vec(
            "memory_cache_bytes",
            "Bytes held by an in-memory cache (packuments: gzip'd served forms, plus plain ones some client needed; tarballs: small tarballs; tarball_indexes: per-package tarball hashes for cold downloads), as of its last insert",
            "cache",
        );
        let memory_cache_entries = gauge_vec(
            "memory_cache_entries",
            "Entries in an in-memory cache, as of its last insert",
            "cache",
        );
        let heap_bytes = gauge_vec(
            "heap_bytes",
            "The allocator at scrape time: allocated (live objects), active (their pages), resident (also freed pages not yet returned to the OS), retained (address space kept, not resident)",
            "state",
        );
        Self(Arc::new(Inner {
            registry,
            memory_cache_bytes,
            memory_cache_entries,
            heap_bytes,
            connections_open,
            connections_refused,
            connections_cut,
            breaker_open,
            breaker_transitions,
            background_refreshes,
            requests,
            cache,
            upstream,
            upstream_seconds,
            tarball_bytes,
        }))
    }

    pub fn request(&self, route: &str, status: u16) {
        self.0
            .requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    pub fn cache(&self, kind: &str, result: &str) {
        self.0.cache.with_label_values(&[kind, result]).inc();
    }

    pub fn upstream(&self, kind: &str, status: &str, elapsed: Duration) {
        self.0.upstream.with_label_values(&[kind, status]).inc();
        self.0
            .upstream_seconds
            .with_label_values(&[kind])
            .observe(elapsed.as_secs_f64());
    }

    pub fn tarball_bytes(&self, n: u64) {
        self.0.tarball_bytes.inc_by(n);
    }

    pub fn connection_opened(&self) {
        self.0.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.0.connections_open.dec();
    }

    pub fn connection_refused(&self) {
        self.0.connections_refused.inc();
    }

    pub fn connection_cut(&self, late: &str) {
        self.0.connections_cut.with_label_values(&[late]).inc();
    }

    /// Sets the breaker's state gauge without counting a transition (at start).
    pub fn breaker_state(&self, upstream: &str, open: bool) {
        self.0
            .breaker_open
            .with_label_values(&[upstream])
            .set(i64::from(open));
    }

    /// Records a breaker transition into `to` (`open` or `closed`).
    pub fn breaker(&self, upstream: &str, to: &str) {
        self.breaker_state(upstream, to == "open");
        self.0
            .breaker_transitions
            .with_label_values(&[upstream, to])
            .inc();
    }

    pub fn breaker_probe_failed(&self, upstream: &str) {
        self.0
            .breaker_transitions
            .with_label_values(&[upstream, "probe_failed"])
            .inc();
    }

    pub fn background_refresh(&self, result: &str) {
        self.0
            .background_refreshes
            .with_label_values(&[result])
            .inc();
    }

    /// Records a cache's size after an insert (`byte_cache::insert_bounded`).
    pub fn memory_cache(&self, cache: &str, entries: u64, bytes: u64) {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.0
            .memory_cache_bytes
            .with_label_values(&[cache])
            .set(clamp(bytes));
        self.0
            .memory_cache_entries
            .with_label_values(&[cache])
            .set(clamp(entries));
    }

    /// Reads jemalloc's statistics into `heap_bytes` (the binary's allocator; a process
    /// using another one, e.g. a unit test, reads an idle jemalloc's near-zero numbers).
    fn read_heap(&self) {
        use tikv_jemalloc_ctl::{epoch, stats};
        if epoch::advance().is_err() {
            return;
        }
        for (state, value) in [
            ("allocated", stats::allocated::read()),
            ("active", stats::active::read()),
            ("resident", stats::resident::read()),
            ("retained", stats::retained::read()),
        ] {
            if let Ok(v) = value {
                self.0
                    .heap_bytes
                    .with_label_values(&[state])
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        }
    }

    pub fn render(&self) -> Vec<u8> {
        self.read_heap();
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.0.registry.gather(), &mut buf);
        buf
    }
}

/// The `/metrics` HTTP app for pingora's plain HTTP server.
pub struct MetricsApp(pub Metrics);

#[async_trait::async_trait]
impl pingora::apps::http_app::ServeHttp for MetricsApp {
    async fn response(
        &self,
        session: &mut pingora::protocols::http::ServerSession,
    ) -> http::Response<Vec<u8>> {
        let (status, body) = if session.req_header().uri.path() == "/metrics" {
            (200, self.0.render())
        } else {
            (404, b"not found\n".to_vec())
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "text/plain; version=0.0.4")
            .header("content-length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}
