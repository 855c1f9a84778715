//! Several control-plane endpoints, one client: how data planes and nproxyctl fail over
//! when a control plane replica is down, restarting or draining.
//!
//! A list is written comma-separated wherever one endpoint was (`control_plane_url`,
//! `nproxyctl --endpoint`). `Endpoints` keeps one lazily connected channel per endpoint and
//! starts each call at the next one in turn (spreading load); a call that fails as
//! `Unavailable` (refused, reset, draining) moves on to the next endpoint. Only calls that
//! are safe to repeat go through `call` (signing, idempotent event hand-over, reads);
//! nproxyctl's mutations fail over only while connecting (`first_reachable`), so a change
//! is never applied twice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// Splits a comma-separated endpoint list, trimming blanks; `None` if it holds no URL.
pub fn parse_list(list: &str) -> Option<Vec<String>> {
    let urls: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    (!urls.is_empty()).then_some(urls)
}

pub struct Endpoints {
    channels: Vec<(String, Channel)>,
    next: AtomicUsize,
}

impl Endpoints {
    /// Lazily connected channels (nothing is dialled until a call).
    pub fn lazy(
        urls: &[String],
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Endpoints, String> {
        let channels = urls
            .iter()
            .map(|u| {
                let ch = Endpoint::from_shared(u.clone())
                    .map_err(|e| format!("{u:?}: {e}"))?
                    .connect_timeout(connect_timeout)
                    .timeout(timeout)
                    .connect_lazy();
                Ok((u.clone(), ch))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if channels.is_empty() {
            return Err("no endpoint given".into());
        }
        Ok(Endpoints {
            channels,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` against one endpoint after another, starting at the next in turn, until one
    /// answers with anything but `Unavailable`; the last error if none does.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, tonic::Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let n = self.channels.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let (url, ch) = &self.channels[(start + i) % n];
            match f(ch.clone()).await {
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    tracing::debug!(endpoint = %url, error = %s.message(), "control plane unavailable; trying the next");
                    last = Some(s);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| tonic::Status::unavailable("no control plane endpoint")))
    }
}

/// Connects to the first endpoint of the list that accepts a connection, in order; with
/// every attempt's error if none does.
pub async fn first_reachable(
    urls: &[String],
    connect_timeout: Duration,
) -> Result<(String, Channel), String> {
    let mut errors = Vec::new();
    for u in urls {
        let endpoint = match Endpoint::from_shared(u.clone()) {
            Ok(e) => e.connect_timeout(connect_timeout),
            Err(e) => {
                errors.push(format!("{u}: {e}"));
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(ch) => return Ok((u.clone(), ch)),
            Err(e) => errors.push(format!("{u}: {e}")),
        }
    }
    Err(errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_ignore_blanks() {
        assert_eq!(
            parse_list(" http://a:1 ,http://b:2,, "),
            Some(vec!["http://a:1".to_string(), "http://b:2".to_string()])
        );
        assert_eq!(parse_list(" , "), None);
    }

    /// Nothing listens on the first endpoint: the call lands on the second; a non-transport
    /// error is returned as it is, without trying further.
    #[tokio::test]
    async fn an_unavailable_endpoint_passes_the_call_on() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        let urls = vec![dead_url.clone(), "http://127.0.0.1:9".to_string()];
        let eps = Endpoints::lazy(&urls, Duration::from_millis(500), Duration::from_secs(1))
            .expect("endpoints");
        let mut tried = Vec::new();
        let r: Result<(), _> = eps
            .call(|ch| {
                tried.push(ch);
                async { Err(tonic::Status::unavailable("down")) }
            })
            .await;
        assert_eq!(tried.len(), 2, "every endpoint is tried once");
        assert_eq!(r.expect_err("all down").code(), tonic::Code::Unavailable);
        let mut calls = 0;
        let r: Result<(), _> = eps
            .call(|_| {
                calls += 1;
                async { Err(tonic::Status::permission_denied("no")) }
            })
            .await;
        assert_eq!(calls, 1, "only Unavailable moves on");
        assert_eq!(r.expect_err("denied").code(), tonic::Code::PermissionDenied);
        let err = first_reachable(&[dead_url], Duration::from_millis(500))
            .await
            .expect_err("nothing listens");
        assert!(err.contains("127.0.0.1"), "{err}");
    }
}
