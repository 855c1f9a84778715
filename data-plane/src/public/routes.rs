//! Org upstream routes: names an org fetches from another registry (a vendor's, GitHub
//! Packages) than the data plane's upstream. Each route gets its own public pipeline: an
//! upstream client with its own circuit breaker and the route's credential, and packument
//! and tarball caches whose copies live under the route's own key space — so rules,
//! caching, stale serving and the breaker apply per upstream, and a name routed for one org
//! never shares a copy with the same name resolved elsewhere.
//!
//! The credential comes from the control plane (data-plane credential), lives only in the
//! route's HTTP client (a sensitive header, never logged, sent to that upstream's origin
//! only), and is kept while the control plane is down.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::error::NpmError;
use crate::internal::cp_client::ControlPlaneClient;
use crate::internal::outbox::Outbox;
use crate::metrics::Metrics;
use crate::org::RouteEntry;
use crate::public::packuments::{Packuments, PackumentsConfig};
use crate::public::serve::PublicApi;
use crate::public::tarballs::Tarballs;
use crate::public::upstream::Upstream;
use crate::singleflight::SingleFlight;
use crate::store::{BlobStore, KeySpace};

/// Route pipelines held at once (each has its own caches and connection pool); the least
/// used is dropped beyond this and rebuilt on its next use.
const MAX_ROUTES: u64 = 64;
/// A route pipeline's caches are this fraction of the data plane's own.
const CACHE_SHARE: u64 = 8;

/// The data plane's own pipeline's packuments: routes share its document budget.
pub type Shared = Arc<Packuments>;

struct Held {
    version: i64,
    api: Arc<PublicApi>,
}

pub struct Routes {
    settings: Arc<Settings>,
    own: Shared,
    store: Arc<dyn BlobStore>,
    metrics: Metrics,
    outbox: Option<Arc<Outbox>>,
    cp: Option<ControlPlaneClient>,
    held: moka::sync::Cache<String, Arc<Held>>,
    builds: SingleFlight<(String, i64), Result<Arc<Held>, String>>,
    /// Route id → (route version, credential), as last fetched: outlives a pipeline
    /// dropped for space, so the control plane being down never loses a credential held.
    credentials: moka::sync::Cache<String, (i64, Arc<str>)>,
}

impl Routes {
    pub fn new(
        own: Shared,
        settings: Arc<Settings>,
        store: Arc<dyn BlobStore>,
        metrics: Metrics,
        outbox: Option<Arc<Outbox>>,
        cp: Option<ControlPlaneClient>,
    ) -> Routes {
        Routes {
            own,
            settings,
            store,
            metrics,
            outbox,
            cp,
            held: moka::sync::Cache::builder()
                .max_capacity(MAX_ROUTES)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            builds: SingleFlight::default(),
            credentials: moka::sync::Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// The route's credential for its current version: the one held, else fetched. While
    /// the control plane can't be reached, a pipeline (or, once dropped for space, a
    /// credential) held for this version keeps working; a newer version waits for it.
    async fn credential(
        &self,
        org_id: &str,
        route: &RouteEntry,
    ) -> Result<Option<Arc<str>>, String> {
        if !route.has_credential {
            return Ok(None);
        }
        // Only the credential of this very route version: one held for an older version
        // may belong to another URL (a route moved to another registry gets a new one).
        if let Some((v, c)) = self.credentials.get(&route.id) {
            if v >= route.version {
                return Ok(Some(c));
            }
        }
        let fetched = match &self.cp {
            Some(cp) => cp
                .upstream_credentials(org_id)
                .await
                .map_err(|s| format!("GetUpstreamCredentials: {:?}", s.code())),
            None => Err("no control plane configured to hold the route's credential".into()),
        };
        match fetched {
            Ok(all) => {
                for c in all {
                    self.credentials
                        .insert(c.route_id, (c.version, Arc::from(c.credential.as_str())));
                }
                match self.credentials.get(&route.id) {
                    Some((v, c)) if v >= route.version => Ok(Some(c)),
                    _ => Err("the control plane has no credential for this route version".into()),
                }
            }
            // The caller keeps serving with the pipeline it holds (old URL, old credential).
            Err(e) => Err(e),
        }
    }

    /// The pipeline of `route` (an org's), built on first use and rebuilt when the route's
    /// URL or credential changes. While a new credential can't be fetched, the pipeline
    /// held keeps serving.
    pub async fn api(&self, org_id: &str, route: &RouteEntry) -> Result<Arc<PublicApi>, NpmError> {
        let held = self.held.get(&route.id);
        if let Some(h) = &held {
            if h.version == route.version {
                return Ok(h.api.clone());
            }
        }
        let built = match self.credential(org_id, route).await {
            Ok(credential) => {
                let (own, settings, store, metrics, outbox) = (
                    self.own.clone(),
                    self.settings.clone(),
                    self.store.clone(),
                    self.metrics.clone(),
                    self.outbox.clone(),
                );
                let r = route.clone();
                self.builds
                    .run(
                        (route.id.clone(), route.version),
                        move || async move {
                            build(&own, &settings, store, metrics, outbox, credential, &r)
                        },
                        || Err("a route build panicked".into()),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match (built, held) {
            (Ok(h), _) => {
                self.held.insert(route.id.clone(), h.clone());
                Ok(h.api.clone())
            }
            (Err(e), Some(old)) => {
                tracing::warn!(route = %route.id, error = %e, "cannot rebuild an upstream route; serving with what is held");
                Ok(old.api.clone())
            }
            (Err(e), None) => {
                tracing::warn!(route = %route.id, error = %e, "cannot build an upstream route");
                Err(NpmError::Unavailable(
                    "this package's upstream is not available yet (its credentials could not \
                     be fetched from the control plane); try again shortly"
                        .into(),
                ))
            }
        }
    }
}

fn build(
    own: &Packuments,
    settings: &Settings,
    store: Arc<dyn BlobStore>,
    metrics: Metrics,
    outbox: Option<Arc<Outbox>>,
    credential: Option<Arc<str>>,
    route: &RouteEntry,
) -> Result<Arc<Held>, String> {
    let space = KeySpace::route(&route.id).ok_or("the route's id can't name a key space")?;
    let upstream = Arc::new(
        Upstream::at(settings, &route.url, credential.as_deref(), metrics.clone())
            .map_err(|e| format!("upstream client: {e}"))?,
    );
    let packuments = Arc::new(
        Packuments::new(
            store.clone(),
            upstream.clone(),
            metrics.clone(),
            PackumentsConfig {
                max_age: settings.packument_max_age,
                stale_while_revalidate: settings.stale_while_revalidate,
                negative_ttl: settings.negative_cache,
                memory_bytes: settings.memory_cache_bytes / CACHE_SHARE,
                work_bytes: settings.packument_work_bytes,
            },
        )
        .with_space(space)
        .with_outbox(outbox)
        .with_budget_of(own),
    );
    let tarballs = Arc::new(Tarballs::new(
        store,
        upstream,
        packuments.clone(),
        metrics.clone(),
        settings.tarball_memory_cache_bytes / CACHE_SHARE,
    ));
    Ok(Arc::new(Held {
        version: route.version,
        api: Arc::new(PublicApi {
            packuments,
            tarballs,
            metrics,
            verify_before_send_bytes: settings.verify_before_send_bytes,
        }),
    }))
}
