//! What the data plane knows about orgs: their config snapshots, published by the control
//! plane to Redis (or an in-process bus under `nproxyctl dev`). A snapshot is loaded on first
//! use, kept in memory (no Redis round-trip per request), dropped when an invalidation names
//! its org, and kept while Redis is unreachable. Without a config source every org is open:
//! anonymous, public packages only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nproxy_common::secret::SecretDigest;
use nproxy_proto::redis_layout::{
    org_snapshot_key, package_write_invalidation, token_usage_key, ADVISORIES_PREFIX,
    INVALIDATE_ALL, INVALIDATION_CHANNEL, PACKAGE_WRITE_PREFIX,
};
use nproxy_proto::tokens::nproxy_bearer;
use nproxy_proto::v1::{OrgConfigSnapshot, TokenScope};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::NpmError;
use crate::singleflight::SingleFlight;
use nproxy_core::names::{OrgSlug, PackageName};

pub enum Invalidation {
    Org(String),
    /// The advisories about one npm package changed.
    Advisories(String),
    /// A write to this public package was accepted upstream (through some data plane).
    PackageWritten(String),
    /// Messages may have been missed (reconnect): re-check everything held.
    All,
}

/// Called with the name of a public package written upstream through any data plane.
pub type PackageWriteListener = Box<dyn Fn(&str) + Send + Sync>;

#[async_trait::async_trait]
pub trait ConfigSource: Send + Sync + 'static {
    /// The org's encoded snapshot, `None` if the org does not exist.
    async fn fetch(&self, slug: &str) -> Result<Option<Vec<u8>>, String>;
    /// The stream of invalidations; taken once, by `OrgConfigs`.
    fn invalidations(&self) -> Option<mpsc::UnboundedReceiver<Invalidation>>;
    /// Reports when tokens were last used: (org id, token id, Unix ms).
    async fn report_usage(&self, used: Vec<(String, String, i64)>) -> Result<(), String>;
    /// The OSV advisories about one npm package (a JSON array), if any.
    async fn fetch_advisories(&self, package: &str) -> Result<Option<Vec<u8>>, String>;
    /// Tells every data plane that a public package was written upstream.
    async fn announce_package_write(&self, package: &str) -> Result<(), String>;
}

/// How often token use is reported; a token is recorded at most once per interval.
const USAGE_FLUSH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token_id: String,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug)]
pub struct OrgConfig {
    pub org_id: String,
    pub slug: String,
    pub version: u64,
    pub internal_scopes: Vec<String>,
    pub public_reads: bool,
    /// Keyed by the token's digest; lookups compare keys in constant time.
    tokens: HashMap<SecretDigest, TokenGrant>,
    pub rules: Arc<nproxy_core::rules::Rules>,
    /// Package → versions an admin allowed despite the rules.
    pub exceptions: HashMap<String, Arc<std::collections::HashSet<String>>>,
}

impl OrgConfig {
    pub fn from_snapshot(s: OrgConfigSnapshot) -> OrgConfig {
        let rules = Arc::new(
            s.rules
                .as_ref()
                .map(crate::rules::pb::rules_from_pb)
                .unwrap_or_default(),
        );
        let mut exceptions: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for e in &s.exceptions {
            exceptions
                .entry(e.package.clone())
                .or_default()
                .insert(e.version.clone());
        }
        let exceptions = exceptions
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        let tokens = s
            .tokens
            .into_iter()
            .filter_map(|t| {
                if t.sha256.len() != 32 {
                    return None;
                }
                Some((
                    SecretDigest::from_bytes(&t.sha256),
                    TokenGrant {
                        token_id: t.token_id,
                        name: t.name,
                        scopes: t
                            .scopes
                            .iter()
                            .filter_map(|v| TokenScope::try_from(*v).ok())
                            .collect(),
                        expires_at_ms: t.expires_at_ms,
                    },
                ))
            })
            .collect();
        OrgConfig {
            org_id: s.org_id,
            slug: s.slug,
            version: s.version,
            internal_scopes: s.internal_scopes,
            public_reads: s.public_reads,
            tokens,
            rules,
            exceptions,
        }
    }

    /// Whether a package belongs to the org's own scopes (exact scope match).
    pub fn is_internal(&self, name: &PackageName) -> bool {
        name.scope().is_some_and(|s| {
            self.internal_scopes
                .iter()
                .any(|i| i.eq_ignore_ascii_case(s))
        })
    }
}

/// How a request's org is known.
#[derive(Clone)]
pub enum OrgView {
    /// No config source: anonymous access to public packages.
    Open,
    Configured(Arc<OrgConfig>),
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    Token(TokenGrant),
}

use nproxy_common::time::now_ms;

impl OrgView {
    /// Internal packages always need a token, whatever the public-reads setting.
    pub fn authorize_internal(
        &self,
        authorization: Option<&str>,
        needed: TokenScope,
        name: &PackageName,
    ) -> Result<TokenGrant, NpmError> {
        match self.authorize(authorization, needed)? {
            Principal::Token(g) => Ok(g),
            Principal::Anonymous => Err(NpmError::Unauthorized(format!(
                "{name} is an internal package: it needs a token with the `{}` scope",
                needed.label()
            ))),
        }
    }

    /// A presented nproxy token must be valid wherever it is sent, even on routes nproxy
    /// itself does not authorize (forwarded ones): never silently treated as anonymous.
    pub fn check_presented(&self, authorization: Option<&str>) -> Result<(), NpmError> {
        match nproxy_bearer(authorization) {
            Some(_) => self
                .authorize(authorization, TokenScope::Unspecified)
                .map(|_| ())
                .or_else(|e| match e {
                    // Valid, only without a scope this check does not ask for.
                    NpmError::Forbidden(_) => Ok(()),
                    other => Err(other),
                }),
            None => Ok(()),
        }
    }

    /// Checks the request's token for `needed` access to public packages.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        needed: TokenScope,
    ) -> Result<Principal, NpmError> {
        let OrgView::Configured(cfg) = self else {
            return Ok(Principal::Anonymous);
        };
        let principal = match nproxy_bearer(authorization) {
            Some(token) => {
                let grant = cfg
                    .tokens
                    .get(&SecretDigest::sha256(token.as_bytes()))
                    .ok_or_else(|| NpmError::Unauthorized("invalid or revoked token".into()))?;
                if grant.expires_at_ms.is_some_and(|e| e <= now_ms()) {
                    return Err(NpmError::Unauthorized(format!(
                        "token {:?} has expired",
                        grant.name
                    )));
                }
                Principal::Token(grant.clone())
            }
            None => Principal::Anonymous,
        };
        match &principal {
            Principal::Token(g) if g.scopes.iter().any(|s| s.covers(needed)) => Ok(principal),
            Principal::Token(g) => Err(NpmError::Forbidden(format!(
                "token {:?} lacks the `{}` scope",
                g.name,
                needed.label()
            ))),
            Principal::Anonymous if cfg.public_reads && needed == TokenScope::Proxy => {
                Ok(principal)
            }
            Principal::Anonymous => Err(NpmError::Unauthorized(format!(
                "authentication required: this registry needs a token with the `{}` scope",
                needed.label()
            ))),
        }
    }
}

pub struct OrgConfigs {
    source: Option<Arc<dyn ConfigSource>>,
    known: moka::sync::Cache<String, Arc<OrgConfig>>,
    unknown: moka::sync::Cache<String, ()>,
    loads: SingleFlight<String, Result<Option<Arc<OrgConfig>>, String>>,
    /// (org id, token id) → last use, not yet reported.
    usage: moka::sync::Cache<(String, String), i64>,
    /// Advisories by npm package name, shared by all orgs.
    advisories: moka::sync::Cache<String, Arc<PackageAdvisories>>,
    advisory_loads: SingleFlight<String, Result<Arc<PackageAdvisories>, String>>,
    package_writes: std::sync::OnceLock<PackageWriteListener>,
}

/// The advisories about one package, with a version that changes when they do.
#[derive(Debug, Default)]
pub struct PackageAdvisories {
    pub version: String,
    pub list: Vec<nproxy_core::osv::Advisory>,
}

impl OrgConfigs {
    /// Builds the registry of org configs and, with a source, starts following its
    /// invalidations and re-checking held orgs every `refresh`.
    pub fn new(source: Option<Arc<dyn ConfigSource>>, refresh: Duration) -> Arc<OrgConfigs> {
        let this = Arc::new(OrgConfigs {
            known: moka::sync::Cache::builder().max_capacity(100_000).build(),
            unknown: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
            loads: SingleFlight::default(),
            usage: moka::sync::Cache::builder().max_capacity(1_000_000).build(),
            advisories: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            advisory_loads: SingleFlight::default(),
            package_writes: std::sync::OnceLock::new(),
            source,
        });
        if let Some(rx) = this.source.as_ref().and_then(|s| s.invalidations()) {
            let weak = Arc::downgrade(&this);
            tokio::spawn(follow(weak, rx));
            let weak = Arc::downgrade(&this);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(USAGE_FLUSH);
                loop {
                    tick.tick().await;
                    let Some(this) = weak.upgrade() else { return };
                    this.flush_usage().await;
                }
            });
            let weak = Arc::downgrade(&this);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(refresh);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(this) = weak.upgrade() else { return };
                    this.recheck_all().await;
                }
            });
        }
        this
    }

    pub fn is_open(&self) -> bool {
        self.source.is_none()
    }

    /// Sets who hears of public packages written upstream (the packument cache). Once.
    pub fn on_package_write(&self, listener: PackageWriteListener) {
        let _ = self.package_writes.set(listener);
    }

    /// A write to a public package was accepted upstream through this data plane: every
    /// other data plane hears of it (this one has already acted).
    pub async fn announce_package_write(&self, package: &str) {
        if let Some(source) = &self.source {
            if let Err(e) = source.announce_package_write(package).await {
                tracing::warn!(package, error = %e, "cannot announce a package write; other data planes revalidate on their own schedule");
            }
        }
    }

    pub async fn view(&self, org: &OrgSlug) -> Result<OrgView, NpmError> {
        let Some(source) = &self.source else {
            return Ok(OrgView::Open);
        };
        let slug = org.as_str();
        if let Some(cfg) = self.known.get(slug) {
            return Ok(OrgView::Configured(cfg));
        }
        if self.unknown.contains_key(slug) {
            return Err(NpmError::NotFound(format!("unknown org {slug:?}")));
        }
        let source = source.clone();
        let key = slug.to_string();
        let loaded = self
            .loads
            .run(
                key.clone(),
                move || async move { load(source.as_ref(), &key).await },
                || Err("org config load panicked".into()),
            )
            .await;
        match loaded {
            Ok(Some(cfg)) => {
                self.known.insert(slug.to_string(), cfg.clone());
                Ok(OrgView::Configured(cfg))
            }
            Ok(None) => {
                self.unknown.insert(slug.to_string(), ());
                Err(NpmError::NotFound(format!("unknown org {slug:?}")))
            }
            Err(e) => {
                tracing::warn!(org = %slug, error = %e, "cannot load org config");
                Err(NpmError::Unavailable(
                    "org configuration is unavailable; try again shortly".into(),
                ))
            }
        }
    }

    /// The advisories about a package (cached; dropped when the control plane changes them).
    pub async fn advisories(&self, package: &str) -> Result<Arc<PackageAdvisories>, NpmError> {
        let Some(source) = &self.source else {
            return Ok(Arc::default());
        };
        if let Some(a) = self.advisories.get(package) {
            return Ok(a);
        }
        let source = source.clone();
        let key = package.to_string();
        let loaded = self
            .advisory_loads
            .run(
                key.clone(),
                move || async move {
                    let bytes = source.fetch_advisories(&key).await?;
                    let Some(bytes) = bytes else {
                        return Ok(Arc::new(PackageAdvisories {
                            version: "none".into(),
                            list: Vec::new(),
                        }));
                    };
                    let docs: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
                        .map_err(|e| format!("undecodable advisories for {key}: {e}"))?;
                    let list = docs
                        .iter()
                        .filter_map(|d| {
                            nproxy_core::osv::Advisory::parse(d.to_string().as_bytes()).ok()
                        })
                        .collect();
                    Ok(Arc::new(PackageAdvisories {
                        version: hex::encode(&Sha256::digest(&bytes)[..8]),
                        list,
                    }))
                },
                || Err("advisory load panicked".into()),
            )
            .await;
        match loaded {
            Ok(a) => {
                self.advisories.insert(package.to_string(), a.clone());
                Ok(a)
            }
            Err(e) => {
                tracing::warn!(package, error = %e, "cannot load advisories");
                Err(NpmError::Unavailable(
                    "advisories are unavailable; try again shortly".into(),
                ))
            }
        }
    }

    /// Notes that a token was used (cheap: at most one entry per token per flush).
    pub fn record_use(&self, org_id: &str, token_id: &str) {
        if self.source.is_none() {
            return;
        }
        let key = (org_id.to_string(), token_id.to_string());
        if !self.usage.contains_key(&key) {
            self.usage.insert(key, now_ms());
        }
    }

    async fn flush_usage(&self) {
        let Some(source) = &self.source else { return };
        let batch: Vec<(String, String, i64)> = self
            .usage
            .iter()
            .map(|(k, v)| (k.0.clone(), k.1.clone(), v))
            .collect();
        if batch.is_empty() {
            return;
        }
        for (org, token, _) in &batch {
            self.usage.invalidate(&(org.clone(), token.clone()));
        }
        if let Err(e) = source.report_usage(batch).await {
            // Informational only: the next use is reported again.
            tracing::debug!(error = %e, "cannot report token use");
        }
    }

    fn invalidate(&self, slug: &str) {
        self.known.invalidate(slug);
        self.unknown.invalidate(slug);
    }

    /// Re-reads every held org; keeps the old snapshot when the source is unreachable.
    async fn recheck_all(&self) {
        let Some(source) = &self.source else { return };
        self.unknown.invalidate_all();
        let held: Vec<(Arc<String>, Arc<OrgConfig>)> = self.known.iter().collect();
        for (slug, old) in held {
            match load(source.as_ref(), &slug).await {
                Ok(Some(cfg)) if cfg.version != old.version => {
                    self.known.insert(slug.to_string(), cfg);
                }
                Ok(Some(_)) => {}
                Ok(None) => self.known.invalidate(slug.as_str()),
                Err(e) => {
                    tracing::warn!(org = %slug, error = %e, "cannot re-check org config; keeping the last known");
                    return;
                }
            }
        }
    }
}

async fn load(source: &dyn ConfigSource, slug: &str) -> Result<Option<Arc<OrgConfig>>, String> {
    let Some(bytes) = source.fetch(slug).await? else {
        return Ok(None);
    };
    let snap = OrgConfigSnapshot::decode(bytes.as_slice())
        .map_err(|e| format!("undecodable snapshot for {slug}: {e}"))?;
    Ok(Some(Arc::new(OrgConfig::from_snapshot(snap))))
}

async fn follow(this: std::sync::Weak<OrgConfigs>, mut rx: mpsc::UnboundedReceiver<Invalidation>) {
    while let Some(msg) = rx.recv().await {
        let Some(this) = this.upgrade() else { return };
        match msg {
            Invalidation::Org(slug) => {
                tracing::debug!(org = %slug, "org config invalidated");
                this.invalidate(&slug);
            }
            Invalidation::Advisories(pkg) => this.advisories.invalidate(&pkg),
            Invalidation::PackageWritten(pkg) => {
                if let Some(listener) = this.package_writes.get() {
                    listener(&pkg);
                }
            }
            Invalidation::All => {
                this.advisories.invalidate_all();
                this.recheck_all().await
            }
        }
    }
}

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use nproxy_proto::v1::TokenEntry;

    fn view(public_reads: bool, tokens: Vec<(&str, Vec<TokenScope>, Option<i64>)>) -> OrgView {
        let snap = OrgConfigSnapshot {
            org_id: "o1".into(),
            slug: "acme".into(),
            version: 3,
            internal_scopes: vec!["@acme".into()],
            public_reads,
            tokens: tokens
                .into_iter()
                .map(|(secret, scopes, exp)| TokenEntry {
                    token_id: format!("id-{secret}"),
                    name: format!("name-{secret}"),
                    sha256: Sha256::digest(secret.as_bytes()).to_vec(),
                    scopes: scopes.into_iter().map(|s| s as i32).collect(),
                    expires_at_ms: exp,
                })
                .collect(),
            ..Default::default()
        };
        OrgView::Configured(Arc::new(OrgConfig::from_snapshot(snap)))
    }

    #[test]
    fn public_reads_and_tokens() {
        let open = view(true, vec![("nproxy_a", vec![TokenScope::Proxy], None)]);
        assert!(matches!(
            open.authorize(None, TokenScope::Proxy),
            Ok(Principal::Anonymous)
        ));
        assert!(matches!(
            open.authorize(Some("Bearer nproxy_a"), TokenScope::Proxy),
            Ok(Principal::Token(_))
        ));
        // A wrong nproxy token is refused even where anonymous reads are allowed.
        assert!(matches!(
            open.authorize(Some("Bearer nproxy_b"), TokenScope::Proxy),
            Err(NpmError::Unauthorized(_))
        ));
        // Someone else's token is not ours to judge.
        assert!(matches!(
            open.authorize(Some("Bearer npm_xyz"), TokenScope::Proxy),
            Ok(Principal::Anonymous)
        ));

        let closed = view(
            false,
            vec![
                ("nproxy_a", vec![TokenScope::Proxy], None),
                ("nproxy_p", vec![TokenScope::Publish], None),
                ("nproxy_old", vec![TokenScope::Proxy], Some(1)),
            ],
        );
        assert!(matches!(
            closed.authorize(None, TokenScope::Proxy),
            Err(NpmError::Unauthorized(_))
        ));
        assert!(closed
            .authorize(Some("Bearer nproxy_a"), TokenScope::Proxy)
            .is_ok());
        assert!(
            closed
                .authorize(Some("Bearer nproxy_p"), TokenScope::Proxy)
                .is_ok(),
            "publish includes read"
        );
        assert!(matches!(
            closed.authorize(Some("Bearer nproxy_a"), TokenScope::Publish),
            Err(NpmError::Forbidden(_))
        ));
        assert!(matches!(
            closed.authorize(Some("Bearer nproxy_old"), TokenScope::Proxy),
            Err(NpmError::Unauthorized(m)) if m.contains("expired")
        ));
    }

    #[test]
    fn internal_scopes_match_exactly() {
        let OrgView::Configured(c) = view(true, vec![]) else {
            unreachable!()
        };
        assert!(c.is_internal(&PackageName::parse("@acme/utils").unwrap()));
        assert!(!c.is_internal(&PackageName::parse("@acme-corp/utils").unwrap()));
        assert!(!c.is_internal(&PackageName::parse("acme").unwrap()));
    }
}
