//! The accept-side guard in front of pingora's HTTP handling: a cap on open client
//! connections, and deadlines pingora does not have.
//!
//! pingora times each *read* (so a request header trickled one byte per second never times
//! out) and accepts connections until the process runs out of file descriptors (then the
//! blob store, Redis and the outbox fail with "too many open files"). This module wraps
//! every accepted stream before pingora sees it:
//!
//! - **Connection cap.** At most `max_connections` client connections are served at once;
//!   one more gets a `503` npm-style error and is closed, so descriptors stay free for the
//!   store and the upstream.
//! - **First byte.** A new connection must start its request within the header deadline.
//! - **Whole header.** Once a request's first byte arrives, its header (up to the blank
//!   line) must be complete within the header deadline, however the bytes are paced.
//! - **Whole body.** After the header, reading the request body must finish within the
//!   body deadline (a generous one: publishes are large).
//!
//! The deadlines only fire while nproxy is *waiting* for client bytes; time spent answering
//! does not count. The phase resets when the answer starts (pipelining is off, so the next
//! bytes read belong to the next request); an informational `100 Continue` does not reset
//! it. Keep-alive idle time between requests is pingora's (`keepalive_idle_secs`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::http::lifecycle::Lifecycle;
use crate::metrics::Metrics;

/// Limits applied to every client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

/// A pingora app (nproxy's HTTP proxy) behind the connection cap and deadlines.
pub struct Guarded<A> {
    inner: Arc<A>,
    permits: Arc<Semaphore>,
    limits: ConnLimits,
    metrics: Metrics,
    /// Counts open connections, so a shutdown exits once the last one is done.
    lifecycle: Arc<Lifecycle>,
}

impl<A> Guarded<A> {
    pub fn new(
        inner: A,
        limits: ConnLimits,
        metrics: Metrics,
        lifecycle: Arc<Lifecycle>,
    ) -> Guarded<A> {
        Guarded {
            inner: Arc::new(inner),
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            metrics,
            lifecycle,
        }
    }
}

/// What a connection over the cap is told before it is closed.
const BUSY_BODY: &str = r#"{"error":"too many open connections; try again shortly"}"#;

fn busy_answer() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    )
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.connection_refused();
            // Best effort and bounded: a client that does not read its 503 is just closed.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                stream.write_all(busy_answer().as_bytes()),
            )
            .await;
            return None;
        };
        self.metrics.connection_opened();
        self.lifecycle.connection_opened();
        let guarded: Stream = Box::new(Deadlines::new(stream, self.limits, self.metrics.clone()));
        // pingora serves every keep-alive request of an HTTP/1 connection inside this call.
        let reused = self.inner.process_new(guarded, shutdown).await;
        self.metrics.connection_closed();
        self.lifecycle.connection_closed();
        drop(reused);
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A new connection: its first byte is due by the deadline.
    Fresh,
    /// Between requests on a kept-alive connection: pingora's idle timeout applies.
    Idle,
    /// Inside a request header; `matched` counts the bytes of `\r\n\r\n` seen so far.
    Header { matched: u8 },
    /// The header is complete; the body (if any) is due by the deadline.
    Body,
}

/// A client stream that enforces the header and body deadlines on reads.
pub struct Deadlines {
    inner: Stream,
    limits: ConnLimits,
    phase: Phase,
    deadline: Option<Pin<Box<Sleep>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Deadlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlines")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Deadlines {
    pub fn new(inner: Stream, limits: ConnLimits, metrics: Metrics) -> Deadlines {
        let mut d = Deadlines {
            inner,
            limits,
            phase: Phase::Fresh,
            deadline: None,
            metrics,
        };
        d.arm(limits.header_timeout);
        d
    }

    fn arm(&mut self, after: Duration) {
        let at = Instant::now() + after;
        match &mut self.deadline {
            Some(s) => s.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Moves through the phases for bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if matches!(self.phase, Phase::Fresh | Phase::Idle) {
            self.phase = Phase::Header { matched: 0 };
            self.arm(self.limits.header_timeout);
        }
        if let Phase::Header { mut matched } = self.phase {
            let end = header_end(&mut matched, bytes);
            self.phase = if end {
                self.arm(self.limits.body_timeout);
                Phase::Body
            } else {
                Phase::Header { matched }
            };
        }
    }

    fn deadline_applies(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }
}

/// Feeds bytes to a `\r\n\r\n` matcher (state `matched`, 0–3); true when it completes.
/// A bare `\n\n` also ends a header for lenient parsers, but pingora's parser (httparse)
/// needs CRLFs, and a header that never ends is exactly what the deadline is for.
fn header_end(matched: &mut u8, bytes: &[u8]) -> bool {
    const END: &[u8; 4] = b"\r\n\r\n";
    for &b in bytes {
        if b == END[*matched as usize] {
            *matched += 1;
            if *matched == 4 {
                return true;
            }
        } else {
            *matched = u8::from(b == b'\r');
        }
    }
    false
}

impl AsyncRead for Deadlines {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // Body bytes are not scanned: only the header's end matters.
                if !matches!(this.phase, Phase::Body) {
                    this.saw(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.deadline_applies() {
                    if let Some(sleep) = &mut this.deadline {
                        if sleep.as_mut().poll(cx).is_ready() {
                            let (late, what) = match this.phase {
                                Phase::Fresh => ("first_byte", "no request on a new connection"),
                                Phase::Body => ("body", "request body not received in time"),
                                _ => ("header", "request header not received in time"),
                            };
                            this.metrics.connection_cut(late);
                            tracing::debug!(late, "client connection cut by a deadline");
                            return Poll::Ready(Err(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                what,
                            )));
                        }
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Deadlines {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // The answer is starting: what is read next belongs to the next request. An
        // informational answer (`100 Continue`) comes before the body and changes nothing.
        if !buf.is_empty()
            && !matches!(self.phase, Phase::Idle)
            && !buf.starts_with(b"HTTP/1.1 1")
            && !buf.starts_with(b"HTTP/1.0 1")
        {
            self.phase = Phase::Idle;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if bufs.iter().any(|b| !b.is_empty()) {
            let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]);
            if !first.is_some_and(|b| b.starts_with(b"HTTP/1.1 1") || b.starts_with(b"HTTP/1.0 1"))
            {
                self.phase = Phase::Idle;
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Deadlines {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await
    }
}

impl UniqueID for Deadlines {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Deadlines {}

impl GetTimingDigest for Deadlines {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Deadlines {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Deadlines {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, d: SocketDigest) {
        self.inner.set_socket_digest(d)
    }
}

#[async_trait]
impl Peek for Deadlines {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_answer_is_well_formed() {
        let a = busy_answer();
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{a}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }

    #[test]
    fn the_header_ends_at_the_first_blank_line_across_chunks() {
        let mut m = 0;
        assert!(!header_end(&mut m, b"GET / HTTP/1.1\r\nHost: a\r"));
        assert!(!header_end(&mut m, b"\n"));
        assert!(header_end(&mut m, b"\r\nbody"));
        let mut m = 0;
        assert!(
            !header_end(&mut m, b"a\r\n\r\r\n"),
            "\\r\\n\\r\\r\\n is not a blank line"
        );
        assert!(header_end(&mut m, b"\r\n"));
        let mut m = 0;
        assert!(!header_end(&mut m, b"\n\n\n"));
    }
}
