//! npm-native trust: the registry signing keys npm verifies `dist.signatures` with
//! (`keys`), attestations kept and served (`attestations`), and trusted publishing's token
//! exchange (`oidc`). The signatures themselves are made by the control plane at publish
//! (`crate::internal::api`).

pub mod attestations;
pub mod keys;
pub mod oidc;

use std::sync::Arc;

pub use attestations::Attestations;
pub use keys::RegistryKeys;

/// What the HTTP edge needs to answer the trust endpoints.
pub struct TrustApi {
    pub keys: Arc<RegistryKeys>,
    pub attestations: Attestations,
}
