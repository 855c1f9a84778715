//! `GET /-/npm/v1/keys`: the registry signing keys npm verifies `dist.signatures` with. An
//! org's answer is the upstream's keys (public packages keep their upstream signatures,
//! and npm aborts `audit signatures` on a keyid it cannot find) followed by the org's own
//! npm-format keys (its internal packages). The upstream's keys are fetched at most every
//! `FRESH`, kept in memory and in the blob store, so the endpoint answers with the upstream
//! down, from a data plane started while it is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::public::upstream::{Upstream, UpstreamError};
use crate::singleflight::SingleFlight;
use crate::store::{get_bytes, BlobStore, Key, PutBody, PutMode};

/// How long fetched upstream keys are used before asking again (keys change rarely; a
/// rotation upstream is announced long before it signs anything).
const FRESH: Duration = Duration::from_secs(600);
/// After a failed fetch, how long the copy held is used before trying again.
const RETRY: Duration = Duration::from_secs(30);
/// Bounds on what the upstream may send (its real document is under 1 KiB).
const MAX_BYTES: usize = 64 * 1024;
const MAX_KEYS: usize = 32;

#[derive(Clone)]
struct Held {
    keys: Arc<Vec<Value>>,
    /// When to ask the upstream again.
    refresh_at: Instant,
}

pub struct RegistryKeys {
    upstream: Arc<Upstream>,
    store: Arc<dyn BlobStore>,
    held: Mutex<Option<Held>>,
    fetches: SingleFlight<(), Arc<Vec<Value>>>,
}

/// The upstream's key list as nproxy keeps it: only well-formed entries, only the fields
/// npm reads, bounded. `None` when the document is not a key list at all.
pub fn sanitize(body: &[u8]) -> Option<Vec<Value>> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let list = doc.get("keys")?.as_array()?;
    fn short(v: &Value, max: usize) -> Option<&str> {
        v.as_str().filter(|s| !s.is_empty() && s.len() <= max)
    }
    Some(
        list.iter()
            .filter_map(|k| {
                let keyid = short(&k["keyid"], 256)?;
                let key = short(&k["key"], 4096)?;
                let expires = match &k["expires"] {
                    Value::Null => Value::Null,
                    Value::String(s) if s.len() <= 64 => Value::String(s.clone()),
                    _ => return None,
                };
                Some(json!({
                    "expires": expires,
                    "keyid": keyid,
                    "keytype": short(&k["keytype"], 64).unwrap_or("ecdsa-sha2-nistp256"),
                    "scheme": short(&k["scheme"], 64).unwrap_or("ecdsa-sha2-nistp256"),
                    "key": key,
                }))
            })
            .take(MAX_KEYS)
            .collect(),
    )
}

/// The answer: the upstream's keys, then the org's (a keyid listed once).
pub fn merged(upstream: &[Value], own: &[Value]) -> Value {
    let mut keys: Vec<Value> = upstream.to_vec();
    for k in own {
        if !keys.iter().any(|u| u["keyid"] == k["keyid"]) {
            keys.push(k.clone());
        }
    }
    json!({ "keys": keys })
}

impl RegistryKeys {
    pub fn new(upstream: Arc<Upstream>, store: Arc<dyn BlobStore>) -> Arc<Self> {
        Arc::new(Self {
            upstream,
            store,
            held: Mutex::new(None),
            fetches: SingleFlight::default(),
        })
    }

    fn held(&self) -> Option<Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn hold(&self, keys: Arc<Vec<Value>>, for_: Duration) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(Held {
            keys,
            refresh_at: Instant::now() + for_,
        });
    }

    /// The upstream's current keys: held ones while fresh, else fetched (one fetch at a
    /// time), else the last copy (held or stored), else none.
    pub async fn upstream_keys(self: &Arc<Self>) -> Arc<Vec<Value>> {
        if let Some(h) = self.held() {
            if Instant::now() < h.refresh_at {
                return h.keys;
            }
        }
        let this = self.clone();
        self.fetches
            .run(
                (),
                move || async move { this.refresh().await },
                || Arc::new(Vec::new()),
            )
            .await
    }

    async fn refresh(self: Arc<Self>) -> Arc<Vec<Value>> {
        let fetched = self
            .upstream
            .small_document("keys", "/-/npm/v1/keys", MAX_BYTES)
            .await;
        let keys = match fetched {
            Ok(Some(body)) => {
                match sanitize(&body) {
                    Some(keys) => keys,
                    None => {
                        tracing::warn!("the upstream's /-/npm/v1/keys is not a key list; keeping the last copy");
                        return self.fallback().await;
                    }
                }
            }
            // A registry without signing keys.
            Ok(None) => Vec::new(),
            // An air-gapped registry: the last copy (kept from when it had one), quietly.
            Err(UpstreamError::NotConfigured(_)) => return self.fallback().await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the upstream's signing keys; serving the last copy");
                return self.fallback().await;
            }
        };
        let keys = Arc::new(keys);
        let changed = self.held().is_none_or(|h| h.keys != keys);
        if changed {
            let body = Bytes::from(serde_json::to_vec(&*keys).unwrap_or_default());
            if let Err(e) = self
                .store
                .put(
                    &Key::upstream_keys(),
                    PutBody::Bytes(body),
                    PutMode::Overwrite,
                )
                .await
            {
                tracing::warn!(error = %e, "cannot store the upstream's signing keys");
            }
        }
        self.hold(keys.clone(), FRESH);
        keys
    }

    /// The keys held, or the stored copy: used for `RETRY` before asking again.
    async fn fallback(&self) -> Arc<Vec<Value>> {
        let keys = match self.held() {
            Some(h) => h.keys,
            None => match get_bytes(self.store.as_ref(), &Key::upstream_keys()).await {
                Ok(Some((_, body))) => Arc::new(
                    serde_json::from_slice::<Vec<Value>>(&body)
                        .ok()
                        .and_then(|v| sanitize(&serde_json::to_vec(&json!({"keys": v})).ok()?))
                        .unwrap_or_default(),
                ),
                Ok(None) => Arc::new(Vec::new()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the stored upstream signing keys");
                    Arc::new(Vec::new())
                }
            },
        };
        self.hold(keys.clone(), RETRY);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_are_kept_with_npm_s_fields() {
        let body = json!({"keys": [
            {"expires": null, "keyid": "SHA256:a", "keytype": "ecdsa-sha2-nistp256",
             "scheme": "ecdsa-sha2-nistp256", "key": "MFkw", "extra": "dropped"},
            {"expires": "2025-01-29T00:00:00.000Z", "keyid": "SHA256:b", "key": "MFkx"},
            {"keyid": "", "key": "x"},
            {"keyid": "SHA256:c"},
            {"keyid": "SHA256:d", "key": "x", "expires": 5},
            "not an object"
        ]});
        let keys = sanitize(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].get("extra").is_none());
        assert_eq!(keys[1]["expires"], "2025-01-29T00:00:00.000Z");
        assert_eq!(keys[1]["keytype"], "ecdsa-sha2-nistp256");
        assert!(sanitize(b"[]").is_none());
        assert!(sanitize(b"not json").is_none());
        let many = json!({"keys": (0..100).map(|i| json!({"keyid": format!("k{i}"), "key": "x"})).collect::<Vec<_>>()});
        assert_eq!(
            sanitize(many.to_string().as_bytes()).unwrap().len(),
            MAX_KEYS
        );
    }

    #[test]
    fn the_org_s_keys_follow_the_upstream_s_once_each() {
        let up = vec![json!({"keyid": "SHA256:up", "key": "a"})];
        let own = vec![
            json!({"keyid": "SHA256:org", "key": "b"}),
            json!({"keyid": "SHA256:up", "key": "forged"}),
        ];
        let m = merged(&up, &own);
        let ids: Vec<&str> = m["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["keyid"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["SHA256:up", "SHA256:org"]);
        assert_eq!(m["keys"][0]["key"], "a");
    }
}
