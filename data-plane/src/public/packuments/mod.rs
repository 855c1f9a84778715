//! Public packuments: fetched from the upstream, kept in the blob store, revalidated when
//! stale, and served from memory as ready-made bytes.
//!
//! Three layers, each keyed so one client's headers can't change another's answer:
//! - the **stored** merged upstream document (`Key::public_packument`), shared by all orgs,
//!   with its validators and fetch time beside it (`Key::public_packument_meta`);
//! - a **state** per package in memory: content version, size, fetch time;
//! - a **tarball index** per package, for cold downloads only, in a byte-bounded cache;
//! - **served** bytes per (package, form, public base URL): gzip'd, with an ETag.
//!
//! This file holds the cache and the read side (`state`, `served`, `build`); `refresh.rs`
//! talks to the upstream and the store (revalidate, merge, store, serve stale); `index.rs`
//! the tarball indexes.
//!
//! The hot path is two cache lookups and a time comparison: no JSON, no store, no upstream.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

mod airgap;
mod index;
mod refresh;

pub use airgap::imported_meta;

use index::TarballIndex;
use index::TARBALL_INDEX_BYTES;

use crate::metrics::Metrics;
use crate::public::doc_budget::DocBudget;
use crate::public::error::PublicError;
use crate::public::render::{render, Served};
use crate::public::upstream::{Upstream, Validators};
use crate::rules::verdicts::{Policy, PolicyVerdict, Verdicts};
use crate::singleflight::{panicked, shared_err, Shared, SingleFlight};
use crate::store::{get_bytes, BlobStore, KeySpace};
use nproxy_core::names::PackageName;
use nproxy_core::packument::Form;

/// What nproxy knows about one package, without its document.
#[derive(Debug)]
pub struct PackageState {
    /// sha256 of the stored merged document: changes exactly when the content does.
    pub version: String,
    /// Size of the stored document, bytes: what rendering it will cost, before reading it.
    pub len: usize,
    pub fetched_at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServedKey {
    name: PackageName,
    form: Form,
    base: String,
    policy: Option<(String, u64, String)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredMeta {
    fetched_at_ms: u64,
    validators: Validators,
    /// sha256 of the upstream's last 200 body: an unchanged body needs no merge.
    upstream_sha256: String,
    /// sha256 of the stored merged document, to detect a meta/body pair from two writes.
    body_sha256: String,
}

pub struct Packuments {
    store: Arc<dyn BlobStore>,
    /// Whose copies these are: the data plane's upstream, or one org route's.
    space: KeySpace,
    upstream: Arc<Upstream>,
    metrics: Metrics,
    max_age: Duration,
    /// Past `max_age`, how much longer a copy is answered at once while it is refreshed.
    stale_while_revalidate: Duration,
    /// Packages with a background refresh under way (one per package).
    background: moka::sync::Cache<PackageName, ()>,
    /// Background refreshes talking to the upstream at once: an `npm ci` of 800 stale
    /// packages must not become 800 simultaneous upstream requests (nor 800 connections
    /// into a black hole before the breaker has seen enough failures to open).
    background_permits: Arc<tokio::sync::Semaphore>,
    states: moka::sync::Cache<PackageName, Arc<PackageState>>,
    served: moka::sync::Cache<ServedKey, Arc<Served>>,
    indexes: moka::sync::Cache<PackageName, Arc<TarballIndex>>,
    index_loads: SingleFlight<PackageName, Shared<Arc<TarballIndex>, PublicError>>,
    not_found: moka::sync::Cache<PackageName, ()>,
    /// Packages written upstream through nproxy (publish, unpublish, dist-tag, deprecate):
    /// their next read goes to the upstream, however fresh the held copy looks, until one
    /// upstream answer arrives.
    written: moka::sync::Cache<PackageName, ()>,
    refreshes: SingleFlight<PackageName, Shared<Arc<PackageState>, PublicError>>,
    builds: SingleFlight<ServedKey, Shared<Arc<Served>, PublicError>>,
    /// What each org's rules say about each package (cached per document state).
    verdicts: Arc<Verdicts>,
    /// Bounds the documents parsed, merged or rendered at once, by size.
    budget: Arc<DocBudget>,
}

fn now_ms(t: SystemTime) -> u64 {
    u64::try_from(nproxy_common::time::ms_at(t)).unwrap_or(0)
}

/// How long a write upstream keeps forcing synchronous revalidation if the upstream stays
/// unreachable (each read retries it meanwhile).
const WRITTEN_TTL: Duration = Duration::from_secs(600);

/// Background refreshes running at once per data plane.
const BACKGROUND_REFRESHES: usize = 16;

pub struct PackumentsConfig {
    pub max_age: Duration,
    pub stale_while_revalidate: Duration,
    pub negative_ttl: Duration,
    pub memory_bytes: u64,
    /// Documents parsed, merged or rendered at once, bytes (see `DocBudget`).
    pub work_bytes: u64,
}

impl Packuments {
    pub fn new(
        store: Arc<dyn BlobStore>,
        upstream: Arc<Upstream>,
        metrics: Metrics,
        cfg: PackumentsConfig,
    ) -> Self {
        Self {
            verdicts: Arc::new(Verdicts::new(store.clone(), None, KeySpace::default())),
            space: KeySpace::default(),
            store,
            upstream,
            metrics,
            max_age: cfg.max_age,
            stale_while_revalidate: cfg.stale_while_revalidate,
            // An entry outlives a refresh only if its task died; it then expires.
            background: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            background_permits: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_REFRESHES)),
            states: moka::sync::Cache::builder().max_capacity(200_000).build(),
            served: moka::sync::Cache::builder()
                .weigher(|_k, v: &Arc<Served>| v.weight())
                .max_capacity(cfg.memory_bytes)
                .build(),
            indexes: moka::sync::Cache::builder()
                .weigher(|_k, v: &Arc<TarballIndex>| v.weight())
                .max_capacity(TARBALL_INDEX_BYTES)
                .build(),
            index_loads: SingleFlight::default(),
            not_found: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cfg.negative_ttl.max(Duration::from_millis(1)))
                .build(),
            written: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WRITTEN_TTL)
                .build(),
            refreshes: SingleFlight::default(),
            builds: SingleFlight::default(),
            budget: Arc::new(DocBudget::new(cfg.work_bytes)),
        }
    }

    /// Where `package.blocked` / `package.warned` audit events go.
    pub fn with_outbox(mut self, outbox: Option<Arc<crate::internal::outbox::Outbox>>) -> Self {
        self.verdicts = Arc::new(Verdicts::new(
            self.store.clone(),
            outbox,
            self.space.clone(),
        ));
        self
    }

    /// Keeps its copies in `space` (an org's upstream route); call before `with_outbox`.
    pub fn with_space(mut self, space: KeySpace) -> Self {
        self.verdicts = Arc::new(Verdicts::new(self.store.clone(), None, space.clone()));
        self.space = space;
        self
    }

    /// The upstream these copies come from.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    pub fn space(&self) -> &KeySpace {
        &self.space
    }

    /// Shares another instance's document budget (upstream routes share the data plane's:
    /// one memory bound whatever the number of upstreams).
    pub fn with_budget_of(mut self, other: &Packuments) -> Self {
        self.budget = other.budget.clone();
        self
    }

    fn is_fresh(&self, s: &PackageState) -> bool {
        self.age_within(s.fetched_at, self.max_age)
    }

    /// Stale, but still answered at once while a background refresh runs.
    /// Never without an upstream: the stored copy is re-read instead (`stored_only`).
    fn may_serve_stale(&self, fetched_at: SystemTime) -> bool {
        self.upstream.configured()
            && !self.stale_while_revalidate.is_zero()
            && self.age_within(fetched_at, self.max_age + self.stale_while_revalidate)
    }

    fn age_within(&self, fetched_at: SystemTime, limit: Duration) -> bool {
        // A clock that went backwards makes a copy look new: treat it as fetched now.
        SystemTime::now()
            .duration_since(fetched_at)
            .map_or(true, |age| age < limit)
    }

    /// Starts one background refresh of `name` unless one is running or the upstream's
    /// breaker is open (then there is nothing to try until the probe closes it).
    fn refresh_in_background(self: &Arc<Self>, name: &PackageName) {
        if !self.upstream.available() {
            return;
        }
        if !self.background.entry(name.clone()).or_insert(()).is_fresh() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.background.invalidate(name);
            return;
        };
        let this = self.clone();
        let key = name.clone();
        let permits = self.background_permits.clone();
        rt.spawn(async move {
            let _permit = permits.acquire_owned().await;
            // The breaker may have opened while this waited: nothing to try then.
            if !this.upstream.available() {
                this.metrics.background_refresh("skipped");
                this.background.invalidate(&key);
                return;
            }
            // Not through `refreshes`: the caller may itself be inside this package's
            // flight (loading the stale copy), which a join would return unchanged. The
            // `background` entry keeps it to one per package.
            let r = this.clone().refresh(key.clone(), false).await;
            this.metrics
                .background_refresh(if r.is_ok() { "done" } else { "failed" });
            this.background.invalidate(&key);
        });
    }

    /// A write to this package was accepted upstream (here or on another data plane): forget
    /// a remembered 404 and make the next read ask the upstream, so a client that publishes
    /// and then installs through nproxy sees what it published.
    pub fn written_upstream(&self, name: &PackageName) {
        self.written.insert(name.clone(), ());
        self.not_found.invalidate(name);
        // Without a held state every read takes the slow path, which checks `written`: the
        // hot path stays free of the extra lookup.
        self.states.invalidate(name);
    }

    /// `written_upstream` for data planes that learn of it only from the store (a restart, or
    /// no Redis): the stored fetch time goes back to zero, so the copy counts as stale.
    pub async fn mark_stale_in_store(&self, name: &PackageName) {
        let key = self.space.packument_meta(name);
        let meta: Option<StoredMeta> = match get_bytes(self.store.as_ref(), &key).await {
            Ok(Some((_, b))) => serde_json::from_slice(&b).ok(),
            _ => None,
        };
        if let Some(mut meta) = meta {
            meta.fetched_at_ms = 0;
            self.write_meta(name, &meta).await;
        }
    }

    /// The package's current state, revalidating upstream when stale. `force` revalidates
    /// even a fresh state (a client asked for a tarball the state does not list).
    pub async fn state(
        self: &Arc<Self>,
        name: &PackageName,
        force: bool,
    ) -> Shared<Arc<PackageState>, PublicError> {
        if let Some(s) = self.states.get(name) {
            if !force && self.is_fresh(&s) {
                return Ok(s);
            }
            // Stale-while-revalidate: the copy now, the upstream in the background.
            if !force && self.may_serve_stale(s.fetched_at) && !self.written.contains_key(name) {
                self.metrics.cache("packument", "stale_served");
                self.refresh_in_background(name);
                return Ok(s);
            }
        } else if self.not_found.contains_key(name) {
            return Err(shared_err(PublicError::PackageNotFound(name.to_string())));
        }
        let force = force || self.written.contains_key(name);
        let this = self.clone();
        let key = name.clone();
        self.refreshes
            .run(
                key.clone(),
                move || async move { this.refresh(key, force).await },
                panicked,
            )
            .await
    }

    /// The bytes to send for a packument request; `plain` when the client takes no gzip.
    pub async fn served(
        self: &Arc<Self>,
        name: &PackageName,
        form: Form,
        base: &str,
        policy: Option<&Policy>,
        plain: bool,
    ) -> Result<(Arc<Served>, bool), Arc<PublicError>> {
        let state = self.state(name, false).await?;
        let key = ServedKey {
            name: name.clone(),
            form,
            base: base.to_string(),
            policy: policy.map(Policy::key),
        };
        if let Some(s) = self.served.get(&key) {
            if s.version == state.version && !nproxy_common::time::has_passed(s.recheck_at_ms) {
                self.metrics.cache("packument", "hit");
                return Ok((self.with_identity_if(plain, key, s).await?, true));
            }
        }
        self.metrics.cache("packument", "build");
        let verdict = match policy {
            Some(p) => Some(
                self.verdicts
                    .at(name, p, &state.version)
                    .await
                    .map_err(|e| Arc::new(PublicError::Rules(e)))?,
            ),
            None => None,
        };
        let this = self.clone();
        let build_key = key.clone();
        let len = state.len;
        let served = self
            .builds
            .run(
                key.clone(),
                move || async move { this.build(build_key, verdict, plain, len).await },
                panicked,
            )
            .await?;
        // A concurrent build for a gzip-taking client may have won the single flight.
        Ok((self.with_identity_if(plain, key, served).await?, false))
    }

    /// `served` with its plain bytes when the client needs them, decompressed once and
    /// cached beside the gzip'd ones (most clients never ask).
    async fn with_identity_if(
        &self,
        plain: bool,
        key: ServedKey,
        served: Arc<Served>,
    ) -> Shared<Arc<Served>, PublicError> {
        if !plain || served.identity.is_some() {
            return Ok(served);
        }
        let _permit = self
            .budget
            .admit(served.gzip.len().saturating_mul(8))
            .await
            .map_err(shared_err)?;
        let full = tokio::task::spawn_blocking(move || served.with_identity())
            .await
            .map_err(|_| shared_err(PublicError::Task("a gunzip task failed")))??;
        let full = Arc::new(full);
        crate::public::byte_cache::insert_bounded(
            &self.served,
            key,
            full.clone(),
            &self.metrics,
            "packuments",
        );
        Ok(full)
    }

    /// What the org's rules say about this package now (cached per document state, rules
    /// version and advisories version; recomputed when a time-based finding expires).
    pub async fn verdict(
        self: &Arc<Self>,
        name: &PackageName,
        policy: &Policy,
    ) -> Shared<Arc<PolicyVerdict>, PublicError> {
        let state = self.state(name, false).await?;
        self.verdicts
            .at(name, policy, &state.version)
            .await
            .map_err(|e| Arc::new(PublicError::Rules(e)))
    }

    /// Renders one form for one base URL from the stored document.
    async fn build(
        self: Arc<Self>,
        key: ServedKey,
        verdict: Option<Arc<PolicyVerdict>>,
        keep_identity: bool,
        key_len: usize,
    ) -> Shared<Arc<Served>, PublicError> {
        // Each render holds a parsed document and its encodings (tens of MB for a big
        // packument): only so many bytes of documents at once, whatever the number of
        // distinct base URLs asked for, so memory stays bounded.
        let _permit = self.budget.admit(key_len).await.map_err(shared_err)?;
        let Some((_, body)) = get_bytes(self.store.as_ref(), &self.space.packument(&key.name))
            .await
            .map_err(shared_err)?
        else {
            return Err(shared_err(PublicError::PackageNotFound(
                key.name.to_string(),
            )));
        };
        let k = key.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            render(
                &k.name,
                &k.base,
                &body,
                verdict.as_deref(),
                k.form,
                keep_identity,
            )
        })
        .await
        .map_err(|_| shared_err(PublicError::Task("a render task failed")))??;
        let served = Arc::new(rendered);
        crate::public::byte_cache::insert_bounded(
            &self.served,
            key,
            served.clone(),
            &self.metrics,
            "packuments",
        );
        Ok(served)
    }
}
