//! The client for the upstream registry: conditional packument fetches, streamed tarballs,
//! and plain forwarding for the npm service endpoints nproxy does not own.
//!
//! Every exchange has deadlines per step: connect (`upstream_connect_timeout_ms`), response
//! headers (`upstream_first_byte_timeout_ms`), silence between body chunks
//! (`upstream_idle_timeout_ms`), and for packuments the whole fetch (`upstream_timeout_ms`).
//! Every outcome feeds the circuit breaker (`breaker.rs`); while it is open nothing is sent
//! and callers get `UpstreamError::Unavailable` at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use url::Url;

use crate::config::{url_base, Settings};
use crate::metrics::Metrics;
use crate::public::breaker::Breaker;
use crate::public::health::Health;
use crate::public::upstream_body::{guarded_body, upload_allowance, BodyGuard};
pub use crate::public::upstream_error::UpstreamError;
use crate::store::ByteStream;
use nproxy_core::names::PackageName;

/// Largest packument accepted from the upstream; the biggest public ones are far below.
const MAX_PACKUMENT_BYTES: usize = 256 * 1024 * 1024;

/// Validators the upstream gave with a packument, for the next conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

pub enum PackumentFetch {
    NotModified,
    NotFound,
    Fetched { body: Bytes, validators: Validators },
}

pub struct TarballDownload {
    pub len: Option<u64>,
    pub body: ByteStream,
}

pub struct Upstream {
    client: reqwest::Client,
    base: Url,
    /// False without an upstream: `base` is a placeholder and `gate` refuses every exchange.
    configured: bool,
    base_str: String,
    /// A whole packument fetch.
    timeout: Duration,
    /// Sending the request until the response headers (connect included).
    first_byte: Duration,
    /// Longest silence between body chunks.
    idle: Duration,
    max_tarball_bytes: u64,
    health: Arc<Health>,
    metrics: Metrics,
}

/// Request headers passed to the upstream on forwarded requests (lowercase). Everything
/// else (cookies, `x-forwarded-*`, `via`, `referer`, hop-by-hop headers, and
/// `accept-encoding`, which the upstream client negotiates and decodes itself) stays here.
pub const FORWARDED_HEADERS: &[&str] = &[
    "accept",
    "authorization",
    "content-type",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "npm-auth-type",
    "npm-command",
    "npm-otp",
    "npm-scope",
    "npm-session",
    "user-agent",
];

/// The base of an upstream that does not exist (`.invalid` never resolves); never used for
/// a request.
fn placeholder() -> Url {
    Url::parse("http://upstream.invalid").unwrap_or_else(|_| unreachable!("a valid URL"))
}

impl Upstream {
    pub fn new(settings: &Settings, metrics: Metrics) -> Result<Self, reqwest::Error> {
        match &settings.upstream {
            Some(u) => Self::at(settings, u, None, metrics),
            // Never contacted: `gate` refuses every exchange before anything is sent.
            None => {
                tracing::info!("no upstream configured: serving only the packages stored here");
                Ok(Self {
                    configured: false,
                    ..Self::at(settings, &placeholder(), None, metrics)?
                })
            }
        }
    }

    /// A client for the registry at `base` (the data plane's upstream, or an org's upstream
    /// route), with the deadlines and breaker settings of `settings`. A `credential` is sent
    /// as `Authorization: Bearer …` on every request this client makes, which only ever go
    /// to `base`'s origin (tarball URLs elsewhere are rebuilt on it; reqwest drops the
    /// header on a redirect to another host).
    pub fn at(
        settings: &Settings,
        base: &Url,
        credential: Option<&str>,
        metrics: Metrics,
    ) -> Result<Self, reqwest::Error> {
        // reqwest is built without a bundled crypto provider; ring is the one in the tree.
        nproxy_common::tls::install_crypto_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(c) = credential {
            // A credential a header can't carry was refused by the control plane already.
            if let Ok(mut v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {c}")) {
                v.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, v);
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(settings.upstream_connect_timeout)
            .user_agent(concat!("nproxy/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()?;
        let base_str = url_base(base);
        // The breaker's label: the origin only (a base URL may carry credentials or a path).
        let label = base.origin().ascii_serialization();
        let first_byte = settings.upstream_connect_timeout + settings.upstream_first_byte_timeout;
        let health = Arc::new(Health {
            breaker: Breaker::new(
                label,
                settings.upstream_breaker_failures,
                settings.upstream_breaker_probe,
                metrics.clone(),
            ),
            client: client.clone(),
            probe_url: format!("{base_str}/"),
            probe_deadline: first_byte,
        });
        Ok(Self {
            client,
            base_str,
            base: base.clone(),
            configured: true,
            timeout: settings.upstream_timeout,
            first_byte,
            idle: settings.upstream_idle_timeout,
            max_tarball_bytes: settings.upstream_max_tarball_bytes,
            health,
            metrics,
        })
    }

    /// False while the breaker is open (the upstream is assumed down), and always without
    /// an upstream.
    pub fn available(&self) -> bool {
        self.configured && self.health.breaker.allows()
    }

    /// False for an air-gapped registry: only stored copies are served, nothing is fetched.
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// Refuses at once without an upstream, or while the breaker is open.
    fn gate(&self) -> Result<(), UpstreamError> {
        if !self.configured {
            return Err(UpstreamError::NotConfigured(
                "this registry has no upstream configured: it serves only the packages \
                 stored in it"
                    .into(),
            ));
        }
        let b = &self.health.breaker;
        if b.allows() {
            return Ok(());
        }
        self.health.ensure_probe();
        Err(UpstreamError::Unavailable(format!(
            "the upstream registry is unreachable (no answer for {} s); nproxy serves what it \
             has cached and tries the upstream again every {} s",
            b.open_for().as_secs(),
            b.probe_interval().as_secs()
        )))
    }

    /// Feeds one exchange's outcome to the breaker.
    fn record(&self, outcome: &Result<u16, &UpstreamError>) {
        match outcome {
            Ok(status) if *status < 500 => self.health.success(),
            Ok(status) => self.health.failure(&format!("answered {status}")),
            Err(UpstreamError::Status(s)) if *s < 500 => self.health.success(),
            Err(UpstreamError::Unavailable(_) | UpstreamError::NotConfigured(_)) => {}
            Err(e) => self.health.failure(&e.to_string()),
        }
    }

    /// Sends with the first-byte deadline and records failures to send.
    async fn send(
        &self,
        kind: &'static str,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.send_within(kind, req, what, self.first_byte).await
    }

    /// `send` with a deadline for the response headers that also covers sending a body.
    async fn send_within(
        &self,
        kind: &'static str,
        req: reqwest::RequestBuilder,
        what: &str,
        deadline: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.gate()?;
        let started = Instant::now();
        let res = match tokio::time::timeout(deadline, req.send()).await {
            Ok(r) => self.observe(kind, started, r),
            Err(_) => {
                self.metrics.upstream(kind, "timeout", started.elapsed());
                Err(UpstreamError::Timeout(format!(
                    "{what}: no response headers within {} ms",
                    deadline.as_millis()
                )))
            }
        };
        self.record(&res.as_ref().map(|r| r.status().as_u16()));
        res
    }

    pub async fn packument(
        &self,
        name: &PackageName,
        validators: Option<&Validators>,
    ) -> Result<PackumentFetch, UpstreamError> {
        let url = format!("{}/{}", self.base_str, name.url_encoded());
        // Always the full document: later rules need `time`, `_npmUser` and `scripts`.
        let mut req = self
            .client
            .get(&url)
            .header("accept", "application/json")
            .header("accept-encoding", "gzip");
        if let Some(v) = validators {
            if let Some(e) = &v.etag {
                req = req.header("if-none-match", e);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header("if-modified-since", lm);
            }
        }
        let started = Instant::now();
        let res = self.send("packument", req, &url).await?;
        match res.status().as_u16() {
            304 => Ok(PackumentFetch::NotModified),
            404 => Ok(PackumentFetch::NotFound),
            200 => {
                let header = |h: &str| {
                    res.headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let validators = Validators {
                    etag: header("etag"),
                    last_modified: header("last-modified"),
                };
                let body = self.read_packument(res, name, &url, started).await;
                if let Err(e) = &body {
                    self.record(&Err(e));
                }
                Ok(PackumentFetch::Fetched {
                    body: body?,
                    validators,
                })
            }
            s => Err(UpstreamError::Status(s)),
        }
    }

    /// Reads a packument body: each chunk within the idle deadline, the whole fetch within
    /// `upstream_timeout_ms` of `started`, at most `MAX_PACKUMENT_BYTES`.
    async fn read_packument(
        &self,
        res: reqwest::Response,
        name: &PackageName,
        url: &str,
        started: Instant,
    ) -> Result<Bytes, UpstreamError> {
        self.read_bounded(res, url, started, MAX_PACKUMENT_BYTES)
            .await
            .map_err(|e| match e {
                UpstreamError::Body(m) if m.starts_with("larger") => UpstreamError::Body(format!(
                    "packument for {name} is larger than {MAX_PACKUMENT_BYTES} bytes"
                )),
                other => other,
            })
    }

    /// GETs a small JSON document nproxy keeps (registry keys, attestations): `None` on a
    /// 404, the body on a 200 (at most `max` bytes, within the packument deadlines).
    pub async fn small_document(
        &self,
        kind: &'static str,
        path: &str,
        max: usize,
    ) -> Result<Option<Bytes>, UpstreamError> {
        let url = format!("{}{}", self.base_str, path);
        let req = self
            .client
            .get(&url)
            .header("accept", "application/json")
            .header("accept-encoding", "gzip");
        let started = Instant::now();
        let res = self.send(kind, req, &url).await?;
        match res.status().as_u16() {
            404 => Ok(None),
            200 => {
                let body = self.read_bounded(res, &url, started, max).await;
                if let Err(e) = &body {
                    self.record(&Err(e));
                }
                body.map(Some)
            }
            s => Err(UpstreamError::Status(s)),
        }
    }

    /// Reads a body: each chunk within the idle deadline, the whole within
    /// `upstream_timeout_ms` of `started`, at most `max` bytes.
    async fn read_bounded(
        &self,
        res: reqwest::Response,
        url: &str,
        started: Instant,
        max: usize,
    ) -> Result<Bytes, UpstreamError> {
        let whole = tokio::time::Instant::from_std(started) + self.timeout;
        // Sized once from the declared length, trusted only up to 32 MiB (a lying header
        // must not reserve the whole limit): growing by doubling would briefly hold up to
        // twice a big document.
        let declared = res.content_length().unwrap_or(0);
        let mut body = Vec::with_capacity(
            usize::try_from(declared)
                .unwrap_or(0)
                .min(32 * 1024 * 1024)
                .min(max),
        );
        let mut stream = res.bytes_stream();
        loop {
            let next = tokio::time::Instant::now() + self.idle;
            let chunk = match tokio::time::timeout_at(next.min(whole), stream.next()).await {
                Ok(Some(c)) => c.map_err(|e| UpstreamError::from_reqwest(e, url))?,
                Ok(None) => break,
                Err(_) => {
                    return Err(UpstreamError::Timeout(format!(
                        "{url}: the body stalled (idle {} ms, whole fetch {} ms)",
                        self.idle.as_millis(),
                        self.timeout.as_millis()
                    )))
                }
            };
            if body.len() + chunk.len() > max {
                return Err(UpstreamError::Body(format!(
                    "larger than {max} bytes: {url}"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// Picks where to download a tarball: the upstream's own `dist.tarball` when it is on the
    /// upstream's origin, else the conventional path. A packument can't send nproxy elsewhere.
    pub fn tarball_url(&self, name: &PackageName, file: &str, listed: Option<&str>) -> String {
        if let Some(listed) = listed.and_then(|l| Url::parse(l).ok()) {
            if listed.origin() == self.base.origin() && listed.query().is_none() {
                return listed.to_string();
            }
        }
        format!("{}/{}/-/{}", self.base_str, name.as_str(), file)
    }

    pub async fn tarball(&self, url: &str) -> Result<TarballDownload, UpstreamError> {
        // No total timeout: big tarballs take long. The idle deadline cuts a trickle.
        let res = self.send("tarball", self.client.get(url), url).await?;
        match res.status().as_u16() {
            200 => {}
            s => return Err(UpstreamError::Status(s)),
        }
        let len = res.content_length();
        if len.is_some_and(|l| l > self.max_tarball_bytes) {
            return Err(UpstreamError::Body(format!(
                "{url}: the tarball is larger than {} bytes",
                self.max_tarball_bytes
            )));
        }
        let body = res
            .bytes_stream()
            .map_err(std::io::Error::other)
            .then(|r| async move { r })
            .boxed();
        let body = guarded_body(
            body,
            BodyGuard {
                idle: self.idle,
                max_bytes: self.max_tarball_bytes,
                url: url.to_string(),
                health: self.health.clone(),
            },
        );
        Ok(TarballDownload { len, body })
    }

    /// The upstream's base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base_str
    }

    /// Forwards a request for an endpoint nproxy does not own. `path_and_query` is relative to
    /// the registry root and was rebuilt by nproxy from validated parts. Only the request
    /// headers the npm protocol needs go along (`FORWARDED_HEADERS`); the client's cookies,
    /// addresses and hop-by-hop headers never do, nor an nproxy token. `content_encoding`
    /// describes `body` (the client's, or the one nproxy built).
    pub async fn forward(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &http::HeaderMap,
        body: reqwest::Body,
        content_encoding: Option<&str>,
        content_length: Option<usize>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{}", self.base_str, path_and_query);
        // The upstream answers only after the whole body arrived: a forwarded upload gets
        // the first-byte deadline *after* the time its body may take to stream.
        let deadline = self.first_byte + upload_allowance(&method, content_length);
        let mut req = self.client.request(method, &url).body(body);
        // A streamed body keeps its declared length (some registries refuse chunked PUTs).
        if let Some(len) = content_length {
            req = req.header(http::header::CONTENT_LENGTH, len);
        }
        for (name, value) in headers {
            if !FORWARDED_HEADERS.contains(&name.as_str()) {
                continue;
            }
            // nproxy's own tokens never leave for the upstream.
            if name == http::header::AUTHORIZATION
                && nproxy_proto::tokens::nproxy_bearer(value.to_str().ok()).is_some()
            {
                continue;
            }
            req = req.header(name, value);
        }
        if let Some(enc) = content_encoding {
            req = req.header(http::header::CONTENT_ENCODING, enc);
        }
        self.send_within("forward", req, &url, deadline).await
    }

    fn observe(
        &self,
        kind: &'static str,
        started: Instant,
        res: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let elapsed = started.elapsed();
        match res {
            Ok(r) => {
                self.metrics
                    .upstream(kind, &r.status().as_u16().to_string(), elapsed);
                Ok(r)
            }
            Err(e) => {
                self.metrics.upstream(kind, "error", elapsed);
                Err(UpstreamError::from_reqwest(e, kind))
            }
        }
    }
}
