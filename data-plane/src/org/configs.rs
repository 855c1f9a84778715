//! The in-memory cache of org configs: loaded on first use, dropped when an invalidation
//! names the org, re-checked periodically, kept while the source is unreachable; token use
//! batched and reported; advisories per package.

use std::sync::Arc;
use std::time::Duration;

use nproxy_proto::v1::OrgConfigSnapshot;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    ConfigSource, InternalWriteListener, Invalidation, OrgConfig, OrgView, PackageWriteListener,
};
use crate::org::error::OrgError;
use crate::singleflight::SingleFlight;
use nproxy_common::time::now_ms;
use nproxy_core::names::OrgSlug;

/// How often token use is reported; a token is recorded at most once per interval.
const USAGE_FLUSH: Duration = Duration::from_secs(5);

/// At most one re-read of an org's config per this interval for tokens it does not know.
const UNKNOWN_TOKEN_RELOAD: Duration = Duration::from_millis(200);

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
    internal_writes: std::sync::OnceLock<InternalWriteListener>,
    /// Org slug → when its config was last re-read for an unknown token.
    token_reloads: moka::sync::Cache<String, std::time::Instant>,
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
            internal_writes: std::sync::OnceLock::new(),
            token_reloads: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
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

    /// Sets who hears of internal packages written through other data planes (the search
    /// index). Once.
    pub fn on_internal_write(&self, listener: InternalWriteListener) {
        let _ = self.internal_writes.set(listener);
    }

    /// An internal package's document was written through this data plane: every other
    /// data plane hears of it.
    pub async fn announce_internal_write(&self, org_id: &str, package: &str) {
        if let Some(source) = &self.source {
            if let Err(e) = source.announce_internal_write(org_id, package).await {
                tracing::warn!(package, error = %e, "cannot announce an internal package write; other data planes' search catches up at its next full re-read");
            }
        }
    }

    pub async fn view(&self, org: &OrgSlug) -> Result<OrgView, OrgError> {
        let Some(source) = &self.source else {
            return Ok(OrgView::Open);
        };
        let slug = org.as_str();
        if let Some(cfg) = self.known.get(slug) {
            return Ok(OrgView::Configured(cfg));
        }
        if self.unknown.contains_key(slug) {
            return Err(OrgError::Unknown(slug.to_string()));
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
                Err(OrgError::Unknown(slug.to_string()))
            }
            Err(e) => {
                tracing::warn!(org = %slug, error = %e, "cannot load org config");
                Err(OrgError::Unavailable(
                    "org configuration is unavailable; try again shortly".into(),
                ))
            }
        }
    }

    /// `view`, made sure to know the request's nproxy token if the config source does: a
    /// token created a moment ago (a CI job's trusted-publishing token, used at once, maybe
    /// on another data plane) is in Redis before its creator hears back, but this data plane
    /// may not have had the invalidation yet. An unknown token re-reads the org's config,
    /// at most once per `UNKNOWN_TOKEN_RELOAD` per org (a flood of bad tokens costs one
    /// Redis read per interval; each waits at most the interval).
    pub async fn view_for(
        &self,
        org: &OrgSlug,
        authorization: Option<&str>,
    ) -> Result<OrgView, OrgError> {
        let view = self.view(org).await?;
        let (OrgView::Configured(cfg), Some(token)) =
            (&view, nproxy_proto::tokens::nproxy_bearer(authorization))
        else {
            return Ok(view);
        };
        if cfg.knows_token(token) {
            return Ok(view);
        }
        let Some(source) = &self.source else {
            return Ok(view);
        };
        let slug = org.as_str();
        if let Some(last) = self.token_reloads.get(slug) {
            let next = last + UNKNOWN_TOKEN_RELOAD;
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
            // Someone re-read it meanwhile (this wait's purpose): use what they found.
            if let Some(cfg) = self.known.get(slug) {
                if cfg.knows_token(token) || self.token_reloads.get(slug) != Some(last) {
                    return Ok(OrgView::Configured(cfg));
                }
            }
        }
        self.token_reloads
            .insert(slug.to_string(), std::time::Instant::now());
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
            Ok(Some(fresh)) if fresh.version >= cfg.version => {
                self.known.insert(slug.to_string(), fresh.clone());
                Ok(OrgView::Configured(fresh))
            }
            // Older, gone or unreachable: the view held stands (the token stays unknown).
            _ => Ok(view),
        }
    }

    /// The advisories about a package (cached; dropped when the control plane changes them).
    pub async fn advisories(&self, package: &str) -> Result<Arc<PackageAdvisories>, OrgError> {
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
                Err(OrgError::Unavailable(
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
            Invalidation::InternalWritten { org_id, package } => {
                if let Some(listener) = this.internal_writes.get() {
                    listener(Some((&org_id, &package)));
                }
            }
            Invalidation::All => {
                if let Some(listener) = this.internal_writes.get() {
                    listener(None);
                }
                this.advisories.invalidate_all();
                this.recheck_all().await
            }
        }
    }
}
