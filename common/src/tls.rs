//! reqwest is built without a bundled crypto provider (one TLS stack in the tree: rustls on
//! ring). Every binary that makes HTTPS calls installs ring as the process default, once.

/// Installs ring as rustls' process-wide crypto provider; later calls do nothing.
pub fn install_crypto_provider() {
    // `Err` means a provider is already installed: exactly what was wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
