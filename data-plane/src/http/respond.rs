//! The HTTP edge's helpers: how an answer is written (status, headers, small JSON bodies,
//! stored objects), how a request body is read within bounds, content negotiation (ETag,
//! gzip), and the one place an `NpmError` becomes an npm-style HTTP error.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::NpmError;
use crate::metrics::Metrics;
use crate::store::Object;
use nproxy_core::packument::Form;

/// Why a request ended without a complete answer.
pub(crate) enum Failure {
    /// Nothing sent yet: answer with an npm-style error.
    Npm(NpmError),
    /// Headers already sent: the only honest thing left is to cut the connection, so the
    /// client sees a broken response rather than a complete one.
    Abort(String),
}

impl From<NpmError> for Failure {
    fn from(e: NpmError) -> Self {
        Failure::Npm(e)
    }
}

impl From<crate::org::error::AuthError> for Failure {
    fn from(e: crate::org::error::AuthError) -> Self {
        Failure::Npm(e.into())
    }
}

impl From<crate::internal::error::InternalStoreError> for Failure {
    fn from(e: crate::internal::error::InternalStoreError) -> Self {
        Failure::Npm(e.into())
    }
}

impl From<crate::org::error::OrgError> for Failure {
    fn from(e: crate::org::error::OrgError) -> Self {
        Failure::Npm(e.into())
    }
}

pub(crate) type Handled = Result<(), Failure>;

/// A request header's value, borrowed (most are read once and dropped; callers that keep
/// one across a write to the session copy it themselves).
pub(crate) fn header<'s>(session: &'s Session, name: &str) -> Option<&'s str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// Whether the client takes gzip: an explicit `gzip` entry decides by its q-value (also
/// over a `*`), otherwise a `*` does; `q=0` (any spelling) means "not this".
pub(crate) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(ae) = accept_encoding else {
        return false;
    };
    let (mut gzip, mut star) = (None, None);
    for part in ae.split(',') {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| v.trim().parse::<f32>().unwrap_or(0.0))
            })
            .next_back()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    gzip.or(star).is_some_and(|q| q > 0.0)
}

/// True when `If-None-Match` names `etag` (weak comparison, `*` matches anything).
pub(crate) fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let core = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .trim_end_matches("-gz")
            .to_string()
    };
    let want = core(etag);
    if_none_match.is_some_and(|inm| inm.split(',').any(|t| t.trim() == "*" || core(t) == want))
}

pub(crate) fn response(status: u16) -> Result<Box<ResponseHeader>, Failure> {
    ResponseHeader::build(status, Some(8))
        .map(Box::new)
        .map_err(|e| Failure::Npm(NpmError::Internal(e.to_string())))
}

pub(crate) fn insert(
    resp: &mut ResponseHeader,
    name: &'static str,
    value: impl ToString,
) -> Result<(), Failure> {
    resp.insert_header(name, value.to_string())
        .map_err(|e| Failure::Npm(NpmError::Internal(e.to_string())))
}

pub(crate) async fn send_header(session: &mut Session, resp: Box<ResponseHeader>) -> Handled {
    session
        .write_response_header(resp, false)
        .await
        .map_err(|e| Failure::Abort(format!("write header: {e}")))
}

pub(crate) async fn send_body(session: &mut Session, data: Bytes, end: bool) -> Handled {
    session
        .write_response_body(Some(data), end)
        .await
        .map_err(|e| Failure::Abort(format!("write body: {e}")))
}

/// Reads and drops the rest of a request body nproxy refused without reading (a publish
/// without credentials). Answering first and closing would reset the connection while
/// the client is still sending, and npm would report `ECONNRESET` instead of the 401.
/// Bounded: at most `DISCARD_MAX_BYTES` within `DISCARD_MAX_TIME`; past either, the
/// answer goes out and the connection is closed. A client that sent `Expect:
/// 100-continue` has sent no body yet and is answered at once.
pub(crate) async fn discard_unread_body(session: &mut Session) {
    const DISCARD_MAX_BYTES: usize = 64 * 1024 * 1024;
    const DISCARD_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);
    let expects = header(session, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects || session.is_body_done() || session.is_body_empty() {
        return;
    }
    let _ = tokio::time::timeout(DISCARD_MAX_TIME, async {
        let mut seen = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            seen += chunk.len();
            if seen > DISCARD_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

pub(crate) async fn send_npm_error(
    session: &mut Session,
    e: &NpmError,
    request_id: &str,
) -> pingora::Result<()> {
    let body = Bytes::from(e.body(request_id));
    let mut resp = ResponseHeader::build(e.status(), Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// A small JSON document with validators (internal packuments).
pub(crate) async fn send_json_doc(
    session: &mut Session,
    form: Form,
    body: Bytes,
    etag: &str,
    cache_control: &'static str,
) -> Handled {
    let not_modified = etag_matches(header(session, "if-none-match"), etag);
    let mut resp = response(if not_modified { 304 } else { 200 })?;
    insert(&mut resp, "etag", etag)?;
    insert(&mut resp, "vary", "Accept, Accept-Encoding, Authorization")?;
    insert(&mut resp, "cache-control", cache_control)?;
    if not_modified {
        send_header(session, resp).await?;
        return send_body(session, Bytes::new(), true).await;
    }
    insert(&mut resp, "content-type", form.content_type())?;
    insert(&mut resp, "content-length", body.len())?;
    let head = session.req_header().method == http::Method::HEAD;
    send_header(session, resp).await?;
    send_body(session, if head { Bytes::new() } else { body }, true).await
}

pub(crate) async fn send_json(
    session: &mut Session,
    status: u16,
    body: &serde_json::Value,
) -> Handled {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    send_small(session, status, "application/json", bytes).await
}

pub(crate) async fn send_small(
    session: &mut Session,
    status: u16,
    content_type: &'static str,
    body: Bytes,
) -> Handled {
    let mut resp = response(status)?;
    insert(&mut resp, "content-type", content_type)?;
    insert(&mut resp, "content-length", body.len())?;
    let head = session.req_header().method == http::Method::HEAD;
    send_header(session, resp).await?;
    if !head {
        send_body(session, body, true).await?;
    }
    Ok(())
}

pub(crate) fn tarball_header(
    status: u16,
    etag: Option<&str>,
    cache: &'static str,
) -> Result<Box<ResponseHeader>, Failure> {
    let mut resp = response(status)?;
    insert(&mut resp, "content-type", "application/octet-stream")?;
    // Versions are immutable: clients and shared caches may keep the bytes forever.
    insert(
        &mut resp,
        "cache-control",
        "public, max-age=31536000, immutable",
    )?;
    insert(&mut resp, "x-nproxy-cache", cache)?;
    if let Some(e) = etag {
        insert(&mut resp, "etag", format!("\"{e}\""))?;
    }
    Ok(resp)
}

pub(crate) async fn send_stored(
    session: &mut Session,
    obj: Object,
    cache: &'static str,
    metrics: &Metrics,
) -> Handled {
    let not_modified = etag_matches(header(session, "if-none-match"), &obj.meta.etag);
    let head = session.req_header().method == http::Method::HEAD;
    let mut resp = tarball_header(
        if not_modified { 304 } else { 200 },
        Some(&obj.meta.etag),
        cache,
    )?;
    if not_modified {
        send_header(session, resp).await?;
        return send_body(session, Bytes::new(), true).await;
    }
    insert(&mut resp, "content-length", obj.meta.size)?;
    send_header(session, resp).await?;
    if head {
        return send_body(session, Bytes::new(), true).await;
    }
    let mut body = obj.body;
    let mut sent = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Failure::Abort(format!("store read: {e}")))?;
        sent += chunk.len() as u64;
        send_body(session, chunk, false).await?;
    }
    if sent != obj.meta.size {
        return Err(Failure::Abort(format!(
            "store returned {sent} of {} bytes",
            obj.meta.size
        )));
    }
    metrics.tarball_bytes(sent);
    send_body(session, Bytes::new(), true).await
}

/// Most of an oversized body read (and discarded) so its sender gets the 413 instead of a
/// reset connection; past this the connection is simply closed.
const DISCARD_LIMIT: usize = 256 * 1024 * 1024;

/// The body's declared length, checked before any of it is read: beyond `limit`, 413 at
/// once (also to a client waiting on `Expect: 100-continue`, which is then never told to
/// send); otherwise the client that expects it gets its `100 Continue`.
pub(crate) async fn declared_body(
    session: &mut Session,
    limit: usize,
) -> Result<Option<usize>, Failure> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let expects = session.req_header().headers.contains_key("expect");
    if let Some(len) = declared.filter(|l| *l > limit) {
        if !expects {
            discard_rest(session, 0).await;
        }
        return Err(NpmError::PayloadTooLarge(format!(
            "the request body is {len} bytes; the limit is {limit}"
        ))
        .into());
    }
    if expects {
        session
            .write_continue_response()
            .await
            .map_err(|e| Failure::Abort(e.to_string()))?;
    }
    Ok(declared)
}

/// Reads a request body up to `limit` bytes; beyond it, 413 (nothing is kept in memory).
pub(crate) async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, Failure> {
    declared_body(session, limit).await?;
    let too_large = |n: usize| {
        NpmError::PayloadTooLarge(format!(
            "the request body is {n} bytes or more; the limit is {limit}"
        ))
    };
    let mut body = BytesMut::new();
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| NpmError::BadRequest(format!("cannot read the request body: {e}")))?
    {
        if body.len() + chunk.len() > limit {
            let seen = body.len() + chunk.len();
            drop(body);
            discard_rest(session, seen).await;
            return Err(too_large(seen).into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads and drops what is left of a request body, up to `DISCARD_LIMIT` in total.
async fn discard_rest(session: &mut Session, mut seen: usize) {
    while seen < DISCARD_LIMIT {
        match session.read_request_body().await {
            Ok(Some(chunk)) => seen += chunk.len(),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        // Found by the attack campaign: case, and an explicit refusal beside a `*`.
        assert!(!accepts_gzip(Some("GZIP;Q=0")));
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(Some("*;q=0")));
        assert!(accepts_gzip(Some("*")));
        assert!(accepts_gzip(Some("gzip;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0.000")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn etags() {
        assert!(etag_matches(Some("\"abc\""), "\"abc\""));
        assert!(etag_matches(Some("W/\"abc\""), "\"abc\""));
        assert!(etag_matches(Some("\"x\", \"abc-gz\""), "\"abc\""));
        assert!(etag_matches(Some("\"abc\""), "\"abc-gz\""));
        assert!(etag_matches(Some("*"), "\"abc\""));
        assert!(!etag_matches(Some("\"abd\""), "\"abc\""));
        assert!(!etag_matches(None, "\"abc\""));
    }
}
