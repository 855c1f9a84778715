//! Bodies on their way to or from the upstream: how long a forwarded upload may take before
//! the first-byte deadline counts, and a downloaded tarball's body with the idle deadline
//! between chunks and the size bound (a stall counts against the breaker).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::public::health::Health;
use crate::store::ByteStream;

/// Slowest upload rate a forwarded body is given time for (a 50 MB publish: 13 minutes).
pub(crate) const MIN_UPLOAD_BYTES_PER_SEC: u64 = 64 * 1024;
/// Time given to a body of unknown length (chunked), the same as a client's whole-body
/// deadline (`body_timeout_secs`' default).
pub(crate) const UNKNOWN_UPLOAD_ALLOWANCE: Duration = Duration::from_secs(600);

/// How long a forwarded request's body may take to stream upstream before the first-byte
/// deadline starts to count.
pub(crate) fn upload_allowance(method: &http::Method, content_length: Option<usize>) -> Duration {
    let has_body = !matches!(*method, http::Method::GET | http::Method::HEAD);
    match content_length {
        _ if !has_body => Duration::ZERO,
        Some(len) => Duration::from_secs(len as u64 / MIN_UPLOAD_BYTES_PER_SEC),
        None => UNKNOWN_UPLOAD_ALLOWANCE,
    }
}

pub(crate) struct BodyGuard {
    pub idle: Duration,
    pub max_bytes: u64,
    pub url: String,
    pub health: Arc<Health>,
}

/// A tarball body with the idle deadline between chunks and the size bound (for bodies
/// without `Content-Length` too); a stall counts against the breaker.
pub(crate) fn guarded_body(body: ByteStream, guard: BodyGuard) -> ByteStream {
    futures::stream::unfold(
        (body, guard, 0u64, false),
        move |(mut body, guard, seen, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(guard.idle, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let seen = seen + chunk.len() as u64;
                    if seen > guard.max_bytes {
                        let e = std::io::Error::other(format!(
                            "{}: the tarball is larger than {} bytes",
                            guard.url, guard.max_bytes
                        ));
                        return Some((Err(e), (body, guard, seen, true)));
                    }
                    Some((Ok(chunk), (body, guard, seen, false)))
                }
                Ok(Some(Err(e))) => Some((Err(e), (body, guard, seen, true))),
                Ok(None) => None,
                Err(_) => {
                    guard.health.failure("a tarball body stalled");
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "{}: the upstream sent nothing for {} ms",
                            guard.url,
                            guard.idle.as_millis()
                        ),
                    );
                    Some((Err(e), (body, guard, seen, true)))
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_get_time_for_their_body_before_the_first_byte_deadline() {
        // Before: a 50 MB public publish over a link slower than ~3.5 MB/s hit the 15 s
        // first-byte deadline while still sending (and counted against the breaker).
        assert_eq!(upload_allowance(&http::Method::GET, None), Duration::ZERO);
        assert_eq!(
            upload_allowance(&http::Method::PUT, Some(0)),
            Duration::ZERO
        );
        assert_eq!(
            upload_allowance(&http::Method::PUT, Some(50 * 1024 * 1024)),
            Duration::from_secs(800)
        );
        assert_eq!(
            upload_allowance(&http::Method::POST, None),
            UNKNOWN_UPLOAD_ALLOWANCE
        );
    }
}
