//! A registry without an upstream (air-gapped): packuments come from the stored copy only,
//! re-read when its meta says it changed (`nproxyctl bundle import` wrote a new one), and
//! anything not stored is a clean 404. Also the meta an import writes beside a document,
//! so data planes take it as a valid copy.

use std::sync::Arc;
use std::time::SystemTime;

use super::{now_ms, PackageState, Packuments, StoredMeta};
use crate::public::error::PublicError;
use crate::public::upstream::UpstreamError;
use crate::singleflight::{shared_err, Shared};
use nproxy_common::hash::sha256_hex;
use nproxy_core::names::PackageName;

impl Packuments {
    /// `refresh` without an upstream: the held state if the stored document is still the
    /// one it describes, else the stored document, else a 404 saying why.
    pub(super) async fn stored_only(
        &self,
        name: &PackageName,
        held: Option<Arc<PackageState>>,
        meta: Option<StoredMeta>,
    ) -> Shared<Arc<PackageState>, PublicError> {
        let now = SystemTime::now();
        if let (Some(h), Some(m)) = (&held, &meta) {
            if h.version == m.body_sha256 {
                let state = Arc::new(PackageState {
                    version: h.version.clone(),
                    len: h.len,
                    fetched_at: now,
                });
                self.states.insert(name.clone(), state.clone());
                return Ok(state);
            }
        }
        match self.load_stored(name, now).await? {
            Some(state) => Ok(state),
            None => Err(shared_err(PublicError::Upstream(
                UpstreamError::NotConfigured(format!(
                    "{name} is not in this registry (no upstream configured)"
                )),
            ))),
        }
    }
}

/// The meta to store beside a public packument an import wrote (`body`): fetched now, the
/// upstream's validators and answer hash kept from `existing` (so a registry with an
/// upstream revalidates as before). `None` when `existing` already describes `body`:
/// nothing to write, so importing the same bundle twice writes nothing.
pub fn imported_meta(existing: Option<&[u8]>, body: &[u8]) -> Option<Vec<u8>> {
    let body_sha256 = sha256_hex(body);
    let old: Option<StoredMeta> = existing.and_then(|b| serde_json::from_slice(b).ok());
    if old.as_ref().is_some_and(|m| m.body_sha256 == body_sha256) {
        return None;
    }
    let old = old.unwrap_or_default();
    serde_json::to_vec(&StoredMeta {
        fetched_at_ms: now_ms(SystemTime::now()),
        validators: old.validators,
        upstream_sha256: old.upstream_sha256,
        body_sha256,
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_meta_keeps_validators_and_is_idempotent() {
        let first = imported_meta(None, b"{}").unwrap();
        let m: StoredMeta = serde_json::from_slice(&first).unwrap();
        assert_eq!(m.body_sha256, sha256_hex(b"{}"));
        assert!(m.fetched_at_ms > 0);
        assert!(imported_meta(Some(&first), b"{}").is_none());
        let upstream = serde_json::to_vec(&StoredMeta {
            fetched_at_ms: 1,
            validators: crate::public::upstream::Validators {
                etag: Some("\"e\"".into()),
                last_modified: None,
            },
            upstream_sha256: "u".into(),
            body_sha256: "old".into(),
        })
        .unwrap();
        let next: StoredMeta =
            serde_json::from_slice(&imported_meta(Some(&upstream), b"{\"a\":1}").unwrap()).unwrap();
        assert_eq!(next.validators.etag.as_deref(), Some("\"e\""));
        assert_eq!(next.upstream_sha256, "u");
        assert_eq!(next.body_sha256, sha256_hex(b"{\"a\":1}"));
    }
}
