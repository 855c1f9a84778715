//! Public packuments and tarballs as clients get them: the ready-made packument bytes
//! (gzip and ETag negotiated, refused when the rules block every version), stored or
//! in-memory tarballs, and cold tarballs streamed while their download is verified.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::NpmError;
use crate::http::respond::{
    accepts_gzip, etag_matches, header, insert, response, send_body, send_header, send_stored,
    tarball_header, Failure, Handled,
};
use crate::metrics::Metrics;
use crate::public::packuments::Packuments;
use crate::public::tarballs::{Download, Outcome, Source, Tarballs};
use crate::rules::verdicts::Policy;
use crate::store::ObjectMeta;
use nproxy_core::names::{PackageName, TarballFile};
use nproxy_core::packument::Form;

/// How much of a staging file is read at a time while a cold tarball streams.
const FILE_READ_CHUNK: usize = 256 * 1024;

pub struct PublicApi {
    pub packuments: Arc<Packuments>,
    pub tarballs: Arc<Tarballs>,
    pub metrics: Metrics,
    /// Cold tarballs up to this size are verified before their first byte is sent.
    pub verify_before_send_bytes: u64,
}

impl PublicApi {
    pub(crate) async fn packument(
        &self,
        session: &mut Session,
        name: &PackageName,
        base: &str,
        policy: Option<&Policy>,
    ) -> Handled {
        let form = Form::from_accept(header(session, "accept"));
        let gz = accepts_gzip(header(session, "accept-encoding"));
        let (served, hit) = self
            .packuments
            .served(name, form, base, policy, !gz)
            .await
            .map_err(NpmError::from)?;
        if let Some(why) = &served.refused {
            return Err(NpmError::Forbidden(why.clone()).into());
        }
        let etag = if gz {
            format!("{}-gz\"", served.etag.trim_end_matches('"'))
        } else {
            served.etag.clone()
        };
        let not_modified = etag_matches(header(session, "if-none-match"), &etag);
        let mut resp = response(if not_modified { 304 } else { 200 })?;
        insert(&mut resp, "etag", &etag)?;
        insert(&mut resp, "vary", "Accept, Accept-Encoding")?;
        // An org's answer depends on its rules and tokens: clients revalidate every time (a
        // cheap 304), so a rule change reaches warm caches at once.
        let cache_control = if policy.is_some() {
            "private, no-cache"
        } else {
            "public, max-age=300"
        };
        insert(&mut resp, "cache-control", cache_control)?;
        insert(
            &mut resp,
            "x-nproxy-cache",
            if hit { "hit" } else { "miss" },
        )?;
        if !served.blocked_header.is_empty() {
            insert(&mut resp, "x-nproxy-blocked", &served.blocked_header)?;
        }
        if not_modified {
            send_header(session, resp).await?;
            return send_body(session, Bytes::new(), true).await;
        }
        let body = if gz {
            insert(&mut resp, "content-encoding", "gzip")?;
            served.gzip.clone()
        } else {
            // `served` asked for the plain bytes; an empty body here would be a bug upstream
            // of this line, not a client's problem.
            match &served.identity {
                Some(b) => b.clone(),
                None => {
                    return Err(NpmError::Internal("plain packument bytes missing".into()).into())
                }
            }
        };
        insert(&mut resp, "content-type", form.content_type())?;
        insert(&mut resp, "content-length", body.len())?;
        let head = session.req_header().method == http::Method::HEAD;
        send_header(session, resp).await?;
        send_body(session, if head { Bytes::new() } else { body }, true).await
    }

    pub(crate) async fn tarball(
        &self,
        session: &mut Session,
        name: &PackageName,
        file: &TarballFile,
    ) -> Handled {
        match self
            .tarballs
            .open(name, file)
            .await
            .map_err(NpmError::from)?
        {
            Source::Memory(meta, bytes) => self.send_memory(session, &meta, bytes, "hit").await,
            Source::Stored(obj) => send_stored(session, obj, "hit", &self.metrics).await,
            Source::Downloading(d) => self.send_download(session, &d, name, file).await,
        }
    }

    async fn send_memory(
        &self,
        session: &mut Session,
        meta: &ObjectMeta,
        bytes: Bytes,
        cache: &'static str,
    ) -> Handled {
        let not_modified = etag_matches(header(session, "if-none-match"), &meta.etag);
        let head = session.req_header().method == http::Method::HEAD;
        let mut resp = tarball_header(
            if not_modified { 304 } else { 200 },
            Some(&meta.etag),
            cache,
        )?;
        if not_modified {
            send_header(session, resp).await?;
            return send_body(session, Bytes::new(), true).await;
        }
        insert(&mut resp, "content-length", bytes.len())?;
        send_header(session, resp).await?;
        if head {
            return send_body(session, Bytes::new(), true).await;
        }
        self.metrics.tarball_bytes(bytes.len() as u64);
        send_body(session, bytes, true).await
    }

    /// Serves a tarball still being downloaded (see `tarballs` for the guarantees).
    async fn send_download(
        &self,
        session: &mut Session,
        d: &Download,
        name: &PackageName,
        file: &TarballFile,
    ) -> Handled {
        let mut rx = d.progress.clone();
        let started = loop {
            let p = rx.borrow_and_update().clone();
            match p.outcome {
                Some(Outcome::Failed(why)) => return Err(NpmError::BadGateway(why).into()),
                Some(Outcome::Unavailable(why)) => return Err(NpmError::Unavailable(why).into()),
                Some(Outcome::Local(why)) => return Err(NpmError::Internal(why).into()),
                _ => {}
            }
            if p.outcome.is_some() {
                break None;
            }
            if let Some(len) = p.started {
                break Some(len);
            }
            if rx.changed().await.is_err() {
                return Err(NpmError::Internal("download task vanished".into()).into());
            }
        };
        let head = session.req_header().method == http::Method::HEAD;
        let small = match started {
            Some(Some(len)) => len <= self.verify_before_send_bytes,
            // Unknown length: no way to withhold "the last byte" safely; wait for the verdict.
            _ => true,
        };
        if small || head {
            return self.send_after_verdict(session, rx, name, file).await;
        }
        let len = started.flatten().unwrap_or(0);
        let mut f = match tokio::fs::File::open(&d.path).await {
            Ok(f) => f,
            // Already committed and moved: serve the stored copy.
            Err(_) => return self.send_after_verdict(session, rx, name, file).await,
        };
        let mut resp = tarball_header(200, None, "miss")?;
        insert(&mut resp, "content-length", len)?;
        send_header(session, resp).await?;
        let mut sent = 0u64;
        let mut buf = BytesMut::with_capacity(FILE_READ_CHUNK);
        loop {
            let p = rx.borrow_and_update().clone();
            let allowed = match &p.outcome {
                Some(Outcome::Failed(why) | Outcome::Unavailable(why) | Outcome::Local(why)) => {
                    return Err(Failure::Abort(why.clone()))
                }
                Some(Outcome::Stored) => len,
                // The last byte waits for the verdict on all the others.
                None => p.written.min(len.saturating_sub(1)),
            };
            if sent < allowed {
                let want = usize::try_from(allowed - sent)
                    .unwrap_or(FILE_READ_CHUNK)
                    .min(FILE_READ_CHUNK);
                buf.clear();
                buf.resize(want, 0);
                f.seek(std::io::SeekFrom::Start(sent))
                    .await
                    .map_err(|e| Failure::Abort(format!("staging read: {e}")))?;
                let n = f
                    .read(&mut buf[..want])
                    .await
                    .map_err(|e| Failure::Abort(format!("staging read: {e}")))?;
                if n == 0 {
                    return Err(Failure::Abort("staging file shorter than reported".into()));
                }
                sent += n as u64;
                send_body(session, buf.split_to(n).freeze(), false).await?;
                continue;
            }
            if sent == len && matches!(p.outcome, Some(Outcome::Stored)) {
                self.metrics.tarball_bytes(sent);
                return send_body(session, Bytes::new(), true).await;
            }
            if rx.changed().await.is_err() {
                return Err(Failure::Abort("download task vanished".into()));
            }
        }
    }

    async fn send_after_verdict(
        &self,
        session: &mut Session,
        mut rx: tokio::sync::watch::Receiver<crate::public::tarballs::Progress>,
        name: &PackageName,
        file: &TarballFile,
    ) -> Handled {
        loop {
            let outcome = rx.borrow_and_update().outcome.clone();
            match outcome {
                Some(Outcome::Failed(why)) => return Err(NpmError::BadGateway(why).into()),
                Some(Outcome::Unavailable(why)) => return Err(NpmError::Unavailable(why).into()),
                Some(Outcome::Local(why)) => return Err(NpmError::Internal(why).into()),
                Some(Outcome::Stored) => break,
                None => {
                    if rx.changed().await.is_err() {
                        return Err(NpmError::Internal("download task vanished".into()).into());
                    }
                }
            }
        }
        match self
            .tarballs
            .open(name, file)
            .await
            .map_err(NpmError::from)?
        {
            Source::Memory(meta, bytes) => self.send_memory(session, &meta, bytes, "miss").await,
            Source::Stored(obj) => send_stored(session, obj, "miss", &self.metrics).await,
            Source::Downloading(_) => {
                Err(NpmError::Internal("the stored tarball vanished".into()).into())
            }
        }
    }
}
