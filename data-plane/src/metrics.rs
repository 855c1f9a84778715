//! Prometheus metrics, served on their own listener (`metrics_listen`) at `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
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
        Self(Arc::new(Inner {
            registry,
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

    pub fn render(&self) -> Vec<u8> {
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
