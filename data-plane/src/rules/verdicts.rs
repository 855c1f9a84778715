//! What an org's rules say about a public package: evaluated once per (package, document
//! state, rules version, advisories version), cached, recomputed when a time-based finding
//! (a cooldown) expires, and recorded in the audit outbox once per distinct verdict.
//! The rules themselves are pure (`nproxy_core::rules`); this is their cache and their
//! audit trail.

use nproxy_proto::events;
use std::sync::Arc;

use nproxy_core::names::PackageName;
use nproxy_core::packument::Packument;
use nproxy_core::rules;

use crate::internal::outbox::{self, Outbox};
use crate::rules::error::VerdictError;
use crate::singleflight::{panicked, shared_err, Shared, SingleFlight};
use crate::store::{get_bytes, BlobStore, KeySpace};
use nproxy_common::hash::sha256_hex;

/// What an org's rules say about a package, for one state of its document.
pub struct PolicyVerdict {
    pub version: String,
    pub verdict: rules::Verdict,
    pub all_blocked: bool,
}

/// An org's rules as they apply to one package.
#[derive(Clone)]
pub struct Policy {
    pub org_id: String,
    pub config_version: u64,
    pub rules: Arc<rules::Rules>,
    pub exceptions: Arc<std::collections::HashSet<String>>,
    pub advisories: Arc<crate::org::PackageAdvisories>,
}

impl Policy {
    pub(crate) fn key(&self) -> (String, u64, String) {
        (
            self.org_id.clone(),
            self.config_version,
            self.advisories.version.clone(),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerdictKey {
    name: PackageName,
    policy: (String, u64, String),
}

pub struct Verdicts {
    store: Arc<dyn BlobStore>,
    /// Whose copies the verdicts are about (see `Packuments::space`).
    space: KeySpace,
    /// Where `package.blocked` / `package.warned` audit events go.
    outbox: Option<Arc<Outbox>>,
    cache: moka::sync::Cache<VerdictKey, Arc<PolicyVerdict>>,
    builds: SingleFlight<VerdictKey, Shared<Arc<PolicyVerdict>, VerdictError>>,
}

impl Verdicts {
    pub fn new(
        store: Arc<dyn BlobStore>,
        outbox: Option<Arc<Outbox>>,
        space: KeySpace,
    ) -> Verdicts {
        Verdicts {
            store,
            space,
            outbox,
            cache: moka::sync::Cache::builder().max_capacity(100_000).build(),
            builds: SingleFlight::default(),
        }
    }

    /// What `policy` says about `name` whose stored document has hash `doc_version`
    /// (cached per document state, rules version and advisories version; recomputed when
    /// a time-based finding expires).
    pub async fn at(
        self: &Arc<Self>,
        name: &PackageName,
        policy: &Policy,
        doc_version: &str,
    ) -> Shared<Arc<PolicyVerdict>, VerdictError> {
        let key = VerdictKey {
            name: name.clone(),
            policy: policy.key(),
        };
        if let Some(v) = self.cache.get(&key) {
            if v.version == doc_version && !nproxy_common::time::has_passed(v.verdict.recheck_at_ms)
            {
                return Ok(v);
            }
        }
        let this = self.clone();
        let policy = policy.clone();
        self.builds
            .run(
                key.clone(),
                move || async move { this.compute(key, policy).await },
                panicked,
            )
            .await
    }

    async fn compute(
        self: Arc<Self>,
        key: VerdictKey,
        policy: Policy,
    ) -> Shared<Arc<PolicyVerdict>, VerdictError> {
        let Some((_, body)) = get_bytes(self.store.as_ref(), &self.space.packument(&key.name))
            .await
            .map_err(shared_err)?
        else {
            return Err(shared_err(VerdictError::NoDocument(key.name.to_string())));
        };
        let name = key.name.clone();
        let p = policy.clone();
        let verdict =
            tokio::task::spawn_blocking(move || -> Shared<PolicyVerdict, VerdictError> {
                let doc = Packument::parse(&body).map_err(|e| {
                    shared_err(VerdictError::Corrupt {
                        package: name.to_string(),
                        detail: e.to_string(),
                    })
                })?;
                let verdict = rules::evaluate(
                    &name,
                    &doc,
                    &p.rules,
                    &p.advisories.list,
                    &p.exceptions,
                    nproxy_common::time::now_ms(),
                );
                Ok(PolicyVerdict {
                    version: sha256_hex(&body),
                    all_blocked: rules::all_blocked(&doc, &verdict),
                    verdict,
                })
            })
            .await
            .map_err(|_| shared_err(VerdictError::Task("a rules task failed")))??;
        let verdict = Arc::new(verdict);
        self.record(&key.name, &policy, &verdict).await;
        self.cache.insert(key, verdict.clone());
        Ok(verdict)
    }

    /// Audit events for blocked and warned versions: one outbox entry per distinct verdict,
    /// with a deterministic id, so recomputing (or another data plane computing) the same
    /// verdict records nothing new.
    async fn record(&self, name: &PackageName, policy: &Policy, v: &PolicyVerdict) {
        let Some(outbox) = &self.outbox else { return };
        if v.verdict.blocked.is_empty() && v.verdict.warned.is_empty() {
            return;
        }
        let describe = |vers: &std::collections::BTreeSet<String>| -> Vec<serde_json::Value> {
            vers.iter()
                .map(|ver| {
                    let findings: Vec<serde_json::Value> = v
                        .verdict
                        .findings
                        .get(ver)
                        .into_iter()
                        .flatten()
                        .map(|f| serde_json::json!({"rule": f.rule.label(), "reason": f.reason}))
                        .collect();
                    serde_json::json!({"version": ver, "findings": findings})
                })
                .collect()
        };
        let t = nproxy_common::time::now_ms();
        let mut events = Vec::new();
        if !v.verdict.blocked.is_empty() {
            events.push(outbox::Event {
                kind: events::PACKAGE_BLOCKED.into(),
                details: serde_json::json!({"name": name.as_str(), "versions": describe(&v.verdict.blocked)}),
                time_ms: t,
            });
        }
        if !v.verdict.warned.is_empty() {
            events.push(outbox::Event {
                kind: events::PACKAGE_WARNED.into(),
                details: serde_json::json!({"name": name.as_str(), "versions": describe(&v.verdict.warned)}),
                time_ms: t,
            });
        }
        let fingerprint = sha256_hex(
            format!(
                "{name}|{}|{:?}|{:?}|{}",
                policy.org_id, v.verdict.blocked, v.verdict.warned, policy.config_version
            )
            .as_bytes(),
        );
        let mut entry = outbox::Entry::new(&policy.org_id, name, outbox::Expect::Nothing, events);
        entry.id = format!("rules-{}", &fingerprint[..40]);
        match outbox.put(&entry).await {
            Ok(key) => {
                let outbox = outbox.clone();
                tokio::spawn(async move {
                    let _ = outbox.deliver(&key).await;
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot record a rule verdict"),
        }
    }
}
