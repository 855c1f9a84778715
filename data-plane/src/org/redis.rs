//! The Redis config source: snapshots by key, invalidations by pub/sub, and a lazily
//! connecting wrapper so a data plane starts while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use nproxy_proto::redis_layout::{
    internal_write_invalidation, org_snapshot_key, package_write_invalidation, token_usage_key,
    ADVISORIES_PREFIX, INTERNAL_WRITE_PREFIX, INVALIDATE_ALL, INVALIDATION_CHANNEL,
    PACKAGE_WRITE_PREFIX,
};
use tokio::sync::mpsc;

use super::{ConfigSource, Invalidation};

/// Org config from Redis: snapshots by key, invalidations by pub/sub (RESP3 push messages on
/// a connection that resubscribes by itself after a reconnect).
pub struct RedisSource {
    conn: redis::aio::ConnectionManager,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Invalidation>>>,
}

impl RedisSource {
    pub async fn connect(url: &str) -> Result<RedisSource, redis::RedisError> {
        let url = if url.contains("protocol=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let client = redis::Client::open(url)?;
        let (push_tx, mut push_rx) = mpsc::unbounded_channel::<redis::PushInfo>();
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_push_sender(push_tx)
            .set_automatic_resubscription();
        let mut conn = redis::aio::ConnectionManager::new_with_config(client, cfg).await?;
        conn.subscribe(INVALIDATION_CHANNEL).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut subscribed_once = false;
            while let Some(push) = push_rx.recv().await {
                let msg = match push.kind {
                    redis::PushKind::Message => {
                        let payload = push.data.get(1).and_then(|v| match v {
                            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                            redis::Value::SimpleString(s) => Some(s.clone()),
                            _ => None,
                        });
                        match payload {
                            Some(p) if p == INVALIDATE_ALL => Invalidation::All,
                            Some(p) => {
                                if let Some(pkg) = p.strip_prefix(ADVISORIES_PREFIX) {
                                    Invalidation::Advisories(pkg.to_string())
                                } else if let Some(pkg) = p.strip_prefix(PACKAGE_WRITE_PREFIX) {
                                    Invalidation::PackageWritten(pkg.to_string())
                                } else if let Some(rest) = p.strip_prefix(INTERNAL_WRITE_PREFIX) {
                                    let Some((org, pkg)) = rest.split_once(' ') else {
                                        continue;
                                    };
                                    Invalidation::InternalWritten {
                                        org_id: org.to_string(),
                                        package: pkg.to_string(),
                                    }
                                } else {
                                    Invalidation::Org(p)
                                }
                            }
                            None => continue,
                        }
                    }
                    // After a reconnect the subscription is renewed; what was published
                    // meanwhile is lost, so everything held is re-checked.
                    redis::PushKind::Subscribe if subscribed_once => Invalidation::All,
                    redis::PushKind::Subscribe => {
                        subscribed_once = true;
                        continue;
                    }
                    redis::PushKind::Disconnection => {
                        tracing::warn!(
                            "lost the Redis connection; serving the last known org config"
                        );
                        continue;
                    }
                    _ => continue,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        Ok(RedisSource {
            conn,
            rx: std::sync::Mutex::new(Some(rx)),
        })
    }
}

#[async_trait::async_trait]
impl ConfigSource for RedisSource {
    async fn fetch(&self, slug: &str) -> Result<Option<Vec<u8>>, String> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(org_snapshot_key(slug))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    fn invalidations(&self) -> Option<mpsc::UnboundedReceiver<Invalidation>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    async fn fetch_advisories(&self, package: &str) -> Result<Option<Vec<u8>>, String> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(nproxy_proto::redis_layout::advisories_key(package))
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn announce_package_write(&self, package: &str) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(INVALIDATION_CHANNEL)
            .arg(package_write_invalidation(package))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn announce_internal_write(&self, org_id: &str, package: &str) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(INVALIDATION_CHANNEL)
            .arg(internal_write_invalidation(org_id, package))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn report_usage(&self, used: Vec<(String, String, i64)>) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for (org, token, ms) in used {
            pipe.hset(token_usage_key(&org), token, ms).ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A `RedisSource` that need not exist yet: the data plane starts while Redis is down and
/// connects in the background (retrying with backoff), instead of refusing to start. Until
/// then every org that is not held answers 503 (`cannot load org config`), which is all a
/// data plane without org config can honestly say; a rolling restart during a Redis outage
/// therefore leaves data planes up and ready to serve the moment Redis returns.
pub struct LazyRedisSource {
    inner: Arc<std::sync::OnceLock<RedisSource>>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Invalidation>>>,
}

impl LazyRedisSource {
    /// Tries once now (so a healthy start is connected before serving), then keeps trying
    /// in the background.
    pub async fn start(url: &str) -> LazyRedisSource {
        let inner: Arc<std::sync::OnceLock<RedisSource>> = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let url = url.to_string();
        let cell = inner.clone();
        let started = std::time::Instant::now();
        let connected = async move {
            let mut delay = Duration::from_millis(500);
            let mut warned = false;
            loop {
                match RedisSource::connect(&url).await {
                    Ok(source) => {
                        let upstream = source.invalidations();
                        let _ = cell.set(source);
                        if warned || started.elapsed() > Duration::from_secs(3) {
                            tracing::warn!("connected to Redis; org config available");
                            // Anything held before may be stale.
                            let _ = tx.send(Invalidation::All);
                        }
                        return (upstream, tx);
                    }
                    Err(e) => {
                        if !warned {
                            tracing::warn!(error = %e, "cannot connect to Redis; retrying");
                            warned = true;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        };
        let forward = |(upstream, tx): (
            Option<mpsc::UnboundedReceiver<Invalidation>>,
            mpsc::UnboundedSender<Invalidation>,
        )| async move {
            if let Some(mut up) = upstream {
                while let Some(m) = up.recv().await {
                    if tx.send(m).is_err() {
                        return;
                    }
                }
            }
        };
        let task = tokio::spawn(async move { forward(connected.await).await });
        // A healthy Redis answers well within this; a down one is left to the background.
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if inner.get().is_some() || task.is_finished() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if inner.get().is_none() {
            tracing::warn!("cannot reach Redis yet; serving without org config (orgs answer 503) and connecting in the background");
        }
        LazyRedisSource {
            inner,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }

    fn source(&self) -> Result<&RedisSource, String> {
        self.inner
            .get()
            .ok_or_else(|| "not connected to Redis yet".to_string())
    }
}

#[async_trait::async_trait]
impl ConfigSource for LazyRedisSource {
    async fn fetch(&self, slug: &str) -> Result<Option<Vec<u8>>, String> {
        self.source()?.fetch(slug).await
    }

    fn invalidations(&self) -> Option<mpsc::UnboundedReceiver<Invalidation>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    async fn report_usage(&self, used: Vec<(String, String, i64)>) -> Result<(), String> {
        self.source()?.report_usage(used).await
    }

    async fn fetch_advisories(&self, package: &str) -> Result<Option<Vec<u8>>, String> {
        self.source()?.fetch_advisories(package).await
    }

    async fn announce_package_write(&self, package: &str) -> Result<(), String> {
        self.source()?.announce_package_write(package).await
    }

    async fn announce_internal_write(&self, org_id: &str, package: &str) -> Result<(), String> {
        self.source()?
            .announce_internal_write(org_id, package)
            .await
    }
}
