//! `GET /-/npm/v1/attestations/<name>@<version>`. Public versions: the upstream's document,
//! fetched once, checked to be about this version and the very tarball nproxy serves (the
//! subject's sha512), stored forever like the tarball and served from the copy afterwards
//! (also with the upstream down). A document that fails the check is refused and not kept.
//! Internal versions: the provenance bundle published with them (`npm publish
//! --provenance`), kept beside their tarball.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use nproxy_core::attestation::{check_document, sha512_hex_of_integrity, MAX_ATTESTATIONS_BYTES};
use nproxy_core::names::{PackageName, TarballFile};
use nproxy_core::upstream_route::Forwarded;

use crate::error::NpmError;
use crate::internal::store::InternalStore;
use crate::public::error::PublicError;
use crate::public::packuments::Packuments;
use crate::store::{get_bytes, BlobStore, Key, PutBody, PutMode, StoreError};

pub struct Attestations {
    pub store: Arc<dyn BlobStore>,
    pub internal: Arc<InternalStore>,
}

fn not_found(name: &PackageName, version: &semver::Version) -> NpmError {
    NpmError::NotFound(format!("{name}@{version} has no attestations"))
}

impl Attestations {
    /// The public version's attestations document, as JSON bytes, from the upstream
    /// `packuments` copies (the data plane's, or an org upstream route's).
    pub async fn public(
        &self,
        packuments: &Arc<Packuments>,
        name: &PackageName,
        version: &semver::Version,
    ) -> Result<Bytes, NpmError> {
        let file = TarballFile::for_version(name, version);
        let mut dist = packuments
            .dist(name, file.as_str(), false)
            .await
            .map_err(|e| NpmError::from(PublicError::from_shared(&e)))?;
        if dist.is_none() {
            // Published since the copy was taken?
            dist = packuments
                .dist(name, file.as_str(), true)
                .await
                .map_err(|e| NpmError::from(PublicError::from_shared(&e)))?;
        }
        let Some(dist) = dist else {
            return Err(NpmError::NotFound(format!("{name}@{version} not found")));
        };
        let Some(sha512) = dist.integrity.as_deref().and_then(sha512_hex_of_integrity) else {
            // Attestations are bound to a sha512; a version without one has none npm can use.
            return Err(not_found(name, version));
        };
        let key = Key::public_attestations(name, &sha512)
            .ok_or_else(|| NpmError::Internal("attestations key".into()))?;
        if let Some((_, body)) = get_bytes(self.store.as_ref(), &key).await? {
            return Ok(body);
        }
        let path = Forwarded::Attestations(name.clone(), version.clone()).upstream_path(None);
        let body = packuments
            .upstream()
            .small_document("attestations", &path, MAX_ATTESTATIONS_BYTES)
            .await
            .map_err(|e| NpmError::from(PublicError::Upstream(e)))?
            .ok_or_else(|| not_found(name, version))?;
        let doc: Value = serde_json::from_slice(&body).map_err(|_| {
            NpmError::BadGateway(format!(
                "the upstream's attestations for {name}@{version} are not JSON"
            ))
        })?;
        if let Err(why) = check_document(&doc, name, &version.to_string(), &sha512) {
            tracing::warn!(package = %name, %version, %why, "refused the upstream's attestations");
            return Err(NpmError::BadGateway(format!(
                "the upstream's attestations for {name}@{version} do not match its tarball \
                 ({why}); refused, not stored"
            )));
        }
        match self
            .store
            .put(&key, PutBody::Bytes(body.clone()), PutMode::CreateOnly)
            .await
        {
            Ok(_) | Err(StoreError::PreconditionFailed) => {}
            Err(e) => {
                tracing::warn!(package = %name, %version, error = %e, "cannot store attestations; served this once")
            }
        }
        Ok(body)
    }

    /// The internal version's provenance, as npm's attestations document.
    pub async fn internal(
        &self,
        org_id: &str,
        name: &PackageName,
        version: &semver::Version,
    ) -> Result<Bytes, NpmError> {
        let Some((_, doc)) = self.internal.read_live(org_id, name).await? else {
            return Err(NpmError::NotFound(format!("{name} not found")));
        };
        let v = version.to_string();
        let predicate = doc["versions"][&v]
            .pointer("/dist/attestations/provenance/predicateType")
            .and_then(Value::as_str);
        let blob = nproxy_core::internal::blob_of(&doc, &v);
        let (Some(predicate), Some(blob)) = (predicate, blob) else {
            return Err(not_found(name, version));
        };
        let Some(bundle) = self.internal.get_attestations(org_id, name, &blob).await? else {
            return Err(not_found(name, version));
        };
        // The bundle goes out byte for byte as published.
        let mut out = Vec::with_capacity(bundle.len() + predicate.len() + 64);
        out.extend_from_slice(b"{\"attestations\":[{\"predicateType\":");
        out.extend_from_slice(&serde_json::to_vec(predicate).unwrap_or_default());
        out.extend_from_slice(b",\"bundle\":");
        out.extend_from_slice(&bundle);
        out.extend_from_slice(b"}]}");
        Ok(Bytes::from(out))
    }
}
