//! A TCP proxy the tests control, placed between nproxy and one dependency (the upstream,
//! S3, Redis, the control plane) to inject faults: refuse, black-hole, delay, throttle,
//! reset or truncate mid-stream, or answer with canned bytes.
//!
//! Changing the fault drops every open connection, so pooled keep-alive connections
//! (reqwest, the S3 SDK, Redis) meet the new fault on their next request instead of
//! carrying on over an old healthy connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with each new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways unchanged.
    Pass,
    /// Accept, then reset at once (`connection refused` / `reset` to the client).
    Refuse,
    /// Accept and read everything, never answer (a black-holed egress).
    BlackHole,
    /// Wait this long before connecting to the target, then forward.
    Delay(Duration),
    /// Forward the target's answer at this many bytes per second.
    Throttle(u32),
    /// Forward the answer's header at full speed, then its body at this many bytes per
    /// second (a tarball trickling after prompt headers).
    TrickleBody(u32),
    /// Forward this many bytes of the target's answer, then reset the connection.
    ResetAfter(usize),
    /// Forward this many bytes of the target's answer, then close cleanly.
    TruncateAfter(usize),
    /// Read the request, answer with these bytes, close.
    Canned(Vec<u8>),
}

pub struct FaultProxy {
    addr: SocketAddr,
    fault: Mutex<Fault>,
    /// Bumped on every fault change: open connections watch it and close.
    generation: watch::Sender<u64>,
    accepted: AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 in front of `target` (`host:port`), passing traffic.
    pub async fn start(target: &str) -> Arc<FaultProxy> {
        let target: SocketAddr = tokio::net::lookup_host(target)
            .await
            .expect("target address")
            .next()
            .expect("target resolves");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (generation, _) = watch::channel(0u64);
        let proxy = Arc::new_cyclic(|weak: &std::sync::Weak<FaultProxy>| {
            let weak = weak.clone();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let Some(p) = weak.upgrade() else { return };
                    p.accepted.fetch_add(1, Ordering::SeqCst);
                    let fault = p.fault.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let stop = p.generation.subscribe();
                    drop(p);
                    tokio::spawn(serve(conn, target, fault, stop));
                }
            });
            FaultProxy {
                addr,
                fault: Mutex::new(Fault::Pass),
                generation,
                accepted: AtomicUsize::new(0),
                task,
            }
        });
        proxy
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the fault for new connections and drops every open one.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.generation.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far (to assert that nproxy did not even try).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

async fn serve(
    mut client: TcpStream,
    target: SocketAddr,
    fault: Fault,
    mut stop: watch::Receiver<u64>,
) {
    let work = async {
        match fault {
            Fault::Refuse => {
                reset(&client);
            }
            Fault::BlackHole => {
                let mut buf = vec![0u8; 16 * 1024];
                while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
                // The client gave up: keep nothing.
            }
            Fault::Canned(bytes) => {
                let mut buf = vec![0u8; 16 * 1024];
                let _ = client.read(&mut buf).await;
                let _ = client.write_all(&bytes).await;
                let _ = client.shutdown().await;
            }
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                pipe(client, target, None, None).await;
            }
            Fault::Pass => pipe(client, target, None, None).await,
            Fault::Throttle(rate) => pipe(client, target, Some((rate, false)), None).await,
            Fault::TrickleBody(rate) => pipe(client, target, Some((rate, true)), None).await,
            Fault::ResetAfter(n) => pipe(client, target, None, Some((n, true))).await,
            Fault::TruncateAfter(n) => pipe(client, target, None, Some((n, false))).await,
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stop.changed() => {}
    }
}

/// Forwards both ways; the answer direction may be throttled (bytes per second) or cut
/// after a number of bytes (reset or clean close).
async fn pipe(
    mut client: TcpStream,
    target: SocketAddr,
    rate: Option<(u32, bool)>,
    cut: Option<(usize, bool)>,
) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        reset(&client);
        return;
    };
    let reset_at_end = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let up = async {
            let _ = tokio::io::copy(&mut cr, &mut uw).await;
            let _ = uw.shutdown().await;
            // The answer may still be coming.
            std::future::pending::<()>().await
        };
        let down = async {
            let mut buf = vec![0u8; 16 * 1024];
            let mut sent = 0usize;
            // For `TrickleBody`: bytes of `\r\n\r\n` matched; 4 once the header is out.
            let mut header_end = 0u8;
            loop {
                let slow = match rate {
                    Some((_, true)) => header_end == 4,
                    Some((_, false)) => true,
                    None => false,
                };
                // Byte by byte while throttling (or watching for the header's end).
                let want = match cut {
                    _ if rate.is_some() => 1,
                    Some((n, _)) => (n - sent).min(buf.len()),
                    None => buf.len(),
                };
                if want == 0 {
                    break;
                }
                let n = match ur.read(&mut buf[..want]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if cw.write_all(&buf[..n]).await.is_err() {
                    return false;
                }
                sent += n;
                if rate.is_some_and(|(_, body_only)| body_only) && header_end < 4 {
                    let b = buf[0];
                    let want = b"\r\n\r\n"[header_end as usize];
                    header_end = if b == want {
                        header_end + 1
                    } else {
                        u8::from(b == b'\r')
                    };
                }
                if let (true, Some((r, _))) = (slow, rate) {
                    tokio::time::sleep(Duration::from_secs_f64(1.0 / f64::from(r.max(1)))).await;
                }
                if cut.is_some_and(|(limit, _)| sent >= limit) {
                    break;
                }
            }
            cut.is_some_and(|(_, reset)| reset)
        };
        tokio::select! {
            _ = up => false,
            r = down => r,
        }
    };
    if reset_at_end {
        // SO_LINGER 0: the close is a reset; the peer sees ECONNRESET.
        reset(&client);
    } else {
        let _ = client.shutdown().await;
    }
}

/// Makes the coming close a reset (`SO_LINGER` 0). tokio deprecates `set_linger` because a
/// *non-zero* linger blocks the thread on drop; zero never blocks, it discards and resets.
#[allow(deprecated)]
fn reset(s: &TcpStream) {
    let _ = s.set_linger(Some(Duration::ZERO));
}
