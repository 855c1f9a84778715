//! Forwarding to the upstream: the npm endpoints nproxy does not own (login, search,
//! tokens, public writes, …), reached only through the allow-list in
//! `nproxy_core::upstream_route`. Only the headers npm's protocol needs go up and come
//! back; request bodies stream, bounded in size and in how many are in flight; a write the
//! upstream accepted makes every data plane revalidate that package.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use pingora::proxy::Session;

use crate::error::NpmError;
use crate::http::respond::{
    declared_body, header, insert, response, send_body, send_header, Failure, Handled,
};
use nproxy_core::names::PackageName;

/// Largest request body forwarded upstream: a public publish can be as big as ours.
const MAX_FORWARD_BODY: usize = nproxy_core::publish::MAX_PUBLISH_BODY;
/// Forwarded request bodies streamed upstream at once, per data plane; more get a 503.
pub const MAX_FORWARD_UPLOADS: usize = 16;
/// What npm reads from a forwarded answer: OTP prompts (`www-authenticate`), login polling
/// (`retry-after`), notices, caching and framing.
const ANSWER_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "npm-notice",
    "www-authenticate",
    "retry-after",
    "content-length",
];
pub struct Forwarder {
    pub upstream: Arc<crate::public::upstream::Upstream>,
    pub packuments: Arc<crate::public::packuments::Packuments>,
    pub orgs: Arc<crate::org::OrgConfigs>,
    /// Bounds concurrent forwarded uploads (`MAX_FORWARD_UPLOADS`).
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl Forwarder {
    pub(crate) async fn forward(
        &self,
        session: &mut Session,
        method: http::Method,
        path_and_query: &str,
    ) -> Handled {
        self.forward_inner(session, method, path_and_query, None, None)
            .await
    }

    /// `forward` for npm's account endpoints: a web login's or web OTP challenge's
    /// `doneUrl` is pointed at nproxy (`public_base`), where `/-/v1/done` is forwarded.
    pub(crate) async fn forward_account(
        &self,
        session: &mut Session,
        method: http::Method,
        path_and_query: &str,
        public_base: &str,
    ) -> Handled {
        self.forward_inner(session, method, path_and_query, None, Some(public_base))
            .await
    }

    /// Forwards a write to a public package. Once the upstream accepted it (2xx), and
    /// before the client hears so, every data plane is told to ask the upstream on the next
    /// read: publish-then-install through nproxy behaves as it does against the upstream.
    pub(crate) async fn forward_write(
        &self,
        session: &mut Session,
        method: http::Method,
        path_and_query: &str,
        name: &PackageName,
    ) -> Handled {
        self.forward_inner(session, method, path_and_query, Some(name), None)
            .await
    }

    async fn after_public_write(&self, name: &PackageName) {
        tracing::info!(package = %name, "public package written upstream; revalidating it everywhere");
        self.packuments.written_upstream(name);
        self.packuments.mark_stale_in_store(name).await;
        self.orgs.announce_package_write(name.as_str()).await;
    }

    async fn forward_inner(
        &self,
        session: &mut Session,
        method: http::Method,
        path_and_query: &str,
        written: Option<&PackageName>,
        done_base: Option<&str>,
    ) -> Handled {
        let declared = declared_body(session, MAX_FORWARD_BODY).await?;
        let has_body = declared.is_some_and(|l| l > 0)
            || session
                .req_header()
                .headers
                .contains_key("transfer-encoding");
        // A body is streamed to the upstream as it arrives: nothing is buffered whole, and
        // only so many uploads run at once.
        let _permit = if has_body {
            Some(self.uploads.clone().try_acquire_owned().map_err(|_| {
                NpmError::Unavailable("too many uploads to the upstream in flight; retry".into())
            })?)
        } else {
            None
        };
        let headers = session.req_header().headers.clone();
        let encoding = header(session, "content-encoding").map(str::to_string);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let upstream = self.upstream.clone();
        let path = path_and_query.to_string();
        let send = tokio::spawn(async move {
            let body = if has_body {
                reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            } else {
                reqwest::Body::from(Bytes::new())
            };
            upstream
                .forward(method, &path, &headers, body, encoding.as_deref(), declared)
                .await
        });
        if has_body {
            let mut seen = 0usize;
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        seen += chunk.len();
                        if seen > MAX_FORWARD_BODY {
                            send.abort();
                            return Err(NpmError::PayloadTooLarge(format!(
                                "the request body is over {MAX_FORWARD_BODY} bytes"
                            ))
                            .into());
                        }
                        if tx.send(Ok(chunk)).await.is_err() {
                            break; // the upstream answered (or failed) before the end
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        send.abort();
                        return Err(NpmError::BadRequest(format!(
                            "cannot read the request body: {e}"
                        ))
                        .into());
                    }
                }
            }
        }
        drop(tx);
        let res = send
            .await
            .map_err(|_| NpmError::Internal("the upstream request task failed".into()))?
            .map_err(NpmError::from)?;
        if let Some(name) = written.filter(|_| res.status().is_success()) {
            self.after_public_write(name).await;
        }
        let status = res.status().as_u16();
        // A login answer or an OTP challenge may name a doneUrl to poll: small JSON, read
        // whole (bounded) so its doneUrl can point at nproxy.
        let small_json = res.content_length().is_some_and(|l| l <= 64 * 1024)
            && res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.contains("json"));
        if let (Some(base), true, true) = (done_base, matches!(status, 200 | 401), small_json) {
            let headers = res.headers().clone();
            let body = res.bytes().await.map_err(|e| {
                NpmError::BadGateway(format!("the upstream's answer broke off: {e}"))
            })?;
            let body =
                nproxy_core::upstream_route::rewrite_done_url(&body, self.upstream.base(), base)
                    .map(Bytes::from)
                    .unwrap_or(body);
            let mut resp = response(status)?;
            for name in ANSWER_HEADERS.iter().filter(|h| **h != "content-length") {
                if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
                    insert(&mut resp, name, v)?;
                }
            }
            insert(&mut resp, "content-length", body.len())?;
            send_header(session, resp).await?;
            return send_body(session, body, true).await;
        }
        let mut resp = response(status)?;
        for name in ANSWER_HEADERS {
            if let Some(v) = res.headers().get(*name).and_then(|v| v.to_str().ok()) {
                let v = v.to_string();
                resp.insert_header(*name, v)
                    .map_err(|e| Failure::Npm(NpmError::Internal(e.to_string())))?;
            }
        }
        if !res.headers().contains_key("content-length") {
            insert(&mut resp, "transfer-encoding", "chunked")?;
        }
        send_header(session, resp).await?;
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Failure::Abort(format!("upstream body: {e}")))?;
            send_body(session, chunk, false).await?;
        }
        send_body(session, Bytes::new(), true).await
    }
}
