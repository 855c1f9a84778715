//! The client for the upstream registry: conditional packument fetches, streamed tarballs,
//! and plain forwarding for the npm service endpoints nproxy does not own.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use url::Url;

use crate::config::{url_base, Settings};
use crate::metrics::Metrics;
use crate::names::PackageName;
use crate::store::ByteStream;

/// Largest packument accepted from the upstream; the biggest public ones are far below.
const MAX_PACKUMENT_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Timeout(String),
    #[error("cannot reach the upstream registry: {0}")]
    Unreachable(String),
    #[error("the upstream registry answered {0}")]
    Status(u16),
    #[error("the upstream registry sent a bad response: {0}")]
    Body(String),
}

impl UpstreamError {
    fn from_reqwest(e: reqwest::Error, what: &str) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout(format!("{what}: {e}"))
        } else if e.is_connect() || e.is_request() {
            UpstreamError::Unreachable(format!("{what}: {e}"))
        } else {
            UpstreamError::Body(format!("{what}: {e}"))
        }
    }
}

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
    base_str: String,
    timeout: Duration,
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

impl Upstream {
    pub fn new(settings: &Settings, metrics: Metrics) -> Result<Self, reqwest::Error> {
        // reqwest is built without a bundled crypto provider; ring is the one in the tree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(settings.upstream_connect_timeout)
            .user_agent(concat!("nproxy/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            base_str: url_base(&settings.upstream),
            base: settings.upstream.clone(),
            timeout: settings.upstream_timeout,
            metrics,
        })
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
            .header("accept-encoding", "gzip")
            .timeout(self.timeout);
        if let Some(v) = validators {
            if let Some(e) = &v.etag {
                req = req.header("if-none-match", e);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header("if-modified-since", lm);
            }
        }
        let started = Instant::now();
        let res = req.send().await;
        let res = self.observe("packument", started, res)?;
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
                let mut body = Vec::new();
                let mut stream = res.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| UpstreamError::from_reqwest(e, &url))?;
                    if body.len() + chunk.len() > MAX_PACKUMENT_BYTES {
                        return Err(UpstreamError::Body(format!(
                            "packument for {name} is larger than {MAX_PACKUMENT_BYTES} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(PackumentFetch::Fetched {
                    body: Bytes::from(body),
                    validators,
                })
            }
            s => Err(UpstreamError::Status(s)),
        }
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
        let started = Instant::now();
        // No total timeout: big tarballs take long. Each read has its own below.
        let res = tokio::time::timeout(self.timeout, self.client.get(url).send())
            .await
            .map_err(|_| UpstreamError::Timeout(format!("{url}: no response headers")))?;
        let res = self.observe("tarball", started, res)?;
        match res.status().as_u16() {
            200 => {}
            s => return Err(UpstreamError::Status(s)),
        }
        let len = res.content_length();
        let per_read = self.timeout;
        let url = url.to_string();
        let body = res
            .bytes_stream()
            .map_err(std::io::Error::other)
            .then(|r| async move { r })
            .boxed();
        let body = with_read_timeout(body, per_read, url);
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
        let mut req = self
            .client
            .request(method, &url)
            .timeout(self.timeout)
            .body(body);
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
                && crate::orgs::nproxy_bearer(value.to_str().ok()).is_some()
            {
                continue;
            }
            req = req.header(name, value);
        }
        if let Some(enc) = content_encoding {
            req = req.header(http::header::CONTENT_ENCODING, enc);
        }
        let started = Instant::now();
        let res = req.send().await;
        self.observe("forward", started, res)
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

fn with_read_timeout(body: ByteStream, per_read: Duration, url: String) -> ByteStream {
    futures::stream::unfold((body, url), move |(mut body, url)| async move {
        match tokio::time::timeout(per_read, body.next()).await {
            Ok(Some(item)) => Some((item, (body, url))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{url}: upstream stalled"),
                )),
                (body, url),
            )),
        }
    })
    .boxed()
}
