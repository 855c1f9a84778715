//! The upstream's search results, with the org's filter applied, paged exactly.
//!
//! The upstream is asked in fixed chunks (`CHUNK` results from a multiple of `CHUNK`), each
//! held for `HELD` (by bytes, `CACHE_BYTES` in all): what the org filters out (denied
//! packages, names in its internal scopes) is removed before positions are counted, so
//! `from`/`size` walk the filtered list without gaps or repeats. At most `MAX_DEPTH` of the
//! upstream's results are offered for one text; `total` is exact once the walk reached the
//! upstream's end and an estimate (the upstream's total minus what was filtered so far)
//! before. Chunks are shared by every client and org: only the text and npm's weights go
//! upstream, with no credential.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::public::upstream::{Upstream, UpstreamError};
use crate::singleflight::SingleFlight;
use nproxy_core::names::PackageName;
use nproxy_core::search::{object_name, Params};

pub const CHUNK: usize = 100;
pub const MAX_DEPTH: usize = 1_000;
const HELD: Duration = Duration::from_secs(60);
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The whole exchange for one chunk, body included.
const DEADLINE: Duration = Duration::from_secs(15);
/// Request headers passed on: none identifies the client.
const HEADERS: &[&str] = &["npm-command", "user-agent"];

/// (text and weights as sent, chunk number)
type ChunkKey = (String, usize);

struct Chunk {
    objects: Vec<Value>,
    /// How many results the upstream returned (before dropping invalid ones).
    returned: usize,
    total: usize,
    bytes: usize,
}

/// One page of the upstream's filtered results.
pub struct Found {
    pub objects: Vec<Value>,
    pub total: usize,
}

pub struct UpstreamSearch {
    upstream: Arc<Upstream>,
    chunks: moka::sync::Cache<ChunkKey, Arc<Chunk>>,
    flights: SingleFlight<ChunkKey, Result<Arc<Chunk>, UpstreamError>>,
}

impl UpstreamSearch {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            chunks: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, c: &Arc<Chunk>| u32::try_from(c.bytes).unwrap_or(u32::MAX))
                .time_to_live(HELD)
                .build(),
            flights: SingleFlight::default(),
        }
    }

    /// Whether there is an upstream to ask at all (not in an air-gapped registry).
    pub fn configured(&self) -> bool {
        self.upstream.configured()
    }

    /// `count` results from position `start` of the upstream's results that `listed`
    /// keeps, and the total of those.
    pub async fn page(
        &self,
        p: &Params,
        headers: &http::HeaderMap,
        start: usize,
        count: usize,
        listed: &(dyn Fn(&PackageName) -> bool + Sync),
    ) -> Result<Found, UpstreamError> {
        let max_chunks = MAX_DEPTH / CHUNK;
        let end = start.saturating_add(count);
        // The chunks the page needs if nothing is filtered out, fetched at once.
        let first = end.max(1).div_ceil(CHUNK).min(max_chunks);
        let mut batch: std::collections::VecDeque<Arc<Chunk>> = futures::stream::iter(0..first)
            .map(|k| self.chunk(p, headers, k))
            .buffered(first.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let (mut out, mut seen, mut dropped) = (Vec::new(), 0usize, 0usize);
        let (mut upstream_total, mut exhausted) = (0usize, false);
        let mut k = 0;
        while k < max_chunks {
            let chunk = match batch.pop_front() {
                Some(c) => c,
                None => self.chunk(p, headers, k).await?,
            };
            k += 1;
            upstream_total = chunk.total;
            for o in &chunk.objects {
                match object_name(o) {
                    Some(n) if listed(&n) => {
                        if seen >= start && out.len() < count {
                            out.push(o.clone());
                        }
                        seen += 1;
                    }
                    _ => dropped += 1,
                }
            }
            dropped += chunk.returned - chunk.objects.len();
            if chunk.returned < CHUNK || k * CHUNK >= upstream_total.min(MAX_DEPTH) {
                exhausted = true;
                break;
            }
            if seen >= end {
                break;
            }
        }
        let total = if exhausted || k >= max_chunks {
            seen
        } else {
            upstream_total
                .min(MAX_DEPTH)
                .saturating_sub(dropped)
                .max(seen)
        };
        Ok(Found {
            objects: out,
            total,
        })
    }

    async fn chunk(
        &self,
        p: &Params,
        headers: &http::HeaderMap,
        k: usize,
    ) -> Result<Arc<Chunk>, UpstreamError> {
        let key: ChunkKey = (sent_query(p), k);
        if let Some(c) = self.chunks.get(&key) {
            return Ok(c);
        }
        let path = format!("/-/v1/search?{}&size={CHUNK}&from={}", key.0, k * CHUNK);
        let mut sent = http::HeaderMap::new();
        for name in HEADERS {
            if let Some(v) = headers.get(*name) {
                sent.insert(*name, v.clone());
            }
        }
        let upstream = self.upstream.clone();
        let fetched = self
            .flights
            .run(
                key.clone(),
                move || async move { fetch(&upstream, &path, &sent).await.map(Arc::new) },
                || Err(UpstreamError::Body("the search task failed".into())),
            )
            .await?;
        self.chunks.insert(key, fetched.clone());
        Ok(fetched)
    }
}

/// The text and npm's weights, as sent upstream (the chunk's position is added).
fn sent_query(p: &Params) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("text", &p.text);
    for (key, w) in &p.weights {
        query.append_pair(key, w);
    }
    query.finish()
}

async fn fetch(
    upstream: &Upstream,
    path: &str,
    headers: &http::HeaderMap,
) -> Result<Chunk, UpstreamError> {
    let exchange = async {
        let res = upstream
            .forward(
                http::Method::GET,
                path,
                headers,
                reqwest::Body::from(Vec::new()),
                None,
                None,
            )
            .await?;
        if res.status() != http::StatusCode::OK {
            return Err(UpstreamError::Status(res.status().as_u16()));
        }
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| UpstreamError::Body(format!("search: {e}")))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(UpstreamError::Body(format!(
                    "the search answer is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let body = tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| UpstreamError::Timeout(format!("search: no answer within {DEADLINE:?}")))??;
    let bytes = body.len();
    tokio::task::spawn_blocking(move || parse(&body, bytes))
        .await
        .map_err(|e| UpstreamError::Body(format!("search: {e}")))?
}

fn parse(body: &[u8], bytes: usize) -> Result<Chunk, UpstreamError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Body(format!("search: not JSON: {e}")))?;
    let Some(Value::Array(all)) = v.get("objects") else {
        return Err(UpstreamError::Body("search: no objects".into()));
    };
    let returned = all.len().min(CHUNK);
    let objects: Vec<Value> = all
        .iter()
        .take(CHUNK)
        .filter(|o| object_name(o).is_some())
        .cloned()
        .collect();
    let total = v
        .get("total")
        .and_then(Value::as_u64)
        .and_then(|t| usize::try_from(t).ok())
        .unwrap_or(returned);
    Ok(Chunk {
        objects,
        returned,
        total,
        // Parsed JSON takes a few times its text.
        bytes: 3 * bytes + 256,
    })
}
