//! `nproxyctl bundle import`: a bundle into the blob store of an nproxy without an upstream.
//! Staged and verified whole first (signature, every hash, the manifest's shape): a bundle
//! with one wrong byte is refused and nothing is written. Then merged into the store
//! (`apply.rs`), and recorded in the importing org's audit log (`bundle.imported`, once per
//! manifest: importing the same bundle again changes nothing).

use std::path::PathBuf;
use std::sync::Arc;

use figment::providers::Serialized;
use nproxy_data_plane::config::{Config, StorageConfig, StorageKind};
use nproxy_data_plane::store::{BlobStore, LocalStore, S3Store};
use nproxy_proto::v1 as pb;
use serde_json::json;

use super::apply::{self, Applied};
use super::{stage, trust, verify, Control};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The bundle file (`bundle create`'s output; tar or gzip'd tar).
    pub bundle: PathBuf,
    /// A trusted signer's Ed25519 public key: base64 (as `nproxyctl key list` prints it),
    /// `key list -o json` output, or a PEM PUBLIC KEY. Repeatable; one must have signed.
    #[arg(long = "trust-key", required = true)]
    pub trust_keys: Vec<PathBuf>,
    /// The importing org: the audit event goes to its log.
    #[arg(long)]
    pub org: String,
    /// The data plane's config file; its `[storage]` section names the store
    /// (`NPROXY_STORAGE__*` variables override it, as for the data plane).
    #[arg(long)]
    pub storage_config: Option<PathBuf>,
    /// The local store's folder (`storage.path`), instead of a config file.
    #[arg(long)]
    pub storage_path: Option<PathBuf>,
}

pub struct Imported {
    pub manifest_sha256: String,
    pub signer: String,
    pub exporting_org: String,
    pub packages: usize,
    pub versions: usize,
    pub applied: Applied,
}

/// The store the data planes use, from the flags, the config file and `NPROXY_STORAGE__*`.
fn open_store(args: &ImportArgs) -> anyhow::Result<Arc<dyn BlobStore>> {
    let from_env = std::env::vars().any(|(k, _)| k.starts_with("NPROXY_STORAGE__"));
    anyhow::ensure!(
        args.storage_config.is_some() || args.storage_path.is_some() || from_env,
        "say which store to import into: --storage-config <data plane config> or \
         --storage-path <folder>"
    );
    let mut figment = Config::figment(args.storage_config.as_deref());
    if let Some(p) = &args.storage_path {
        figment = figment
            .merge(Serialized::default("storage.kind", "local"))
            .merge(Serialized::default("storage.path", p));
    }
    let storage: StorageConfig = figment
        .extract_inner("storage")
        .map_err(|e| anyhow::anyhow!("storage configuration: {e}"))?;
    Ok(match storage.kind {
        StorageKind::Local => Arc::new(LocalStore::open(&storage.path).map_err(|e| {
            anyhow::anyhow!("cannot open the store {}: {e}", storage.path.display())
        })?),
        StorageKind::S3 => {
            anyhow::ensure!(
                !storage.s3.bucket.is_empty(),
                "storage.s3.bucket is required for storage.kind = \"s3\""
            );
            let staging = std::env::temp_dir().join("nproxy-staging");
            Arc::new(S3Store::new(&storage.s3, staging)?)
        }
    })
}

fn trusted_keys(args: &ImportArgs) -> anyhow::Result<Vec<trust::TrustedKey>> {
    let mut keys = Vec::new();
    for p in &args.trust_keys {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        keys.extend(trust::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?);
    }
    Ok(keys)
}

/// Stages the bundle next to the store, verifies it whole, then writes what it may.
pub async fn stage_verify_apply(
    store: Arc<dyn BlobStore>,
    bundle: &std::path::Path,
    keys: &[trust::TrustedKey],
) -> anyhow::Result<(verify::Verified, Applied)> {
    let staging = tempfile::Builder::new()
        .prefix("bundle-import-")
        .tempdir_in(store.staging_dir())?;
    let bundle = bundle.to_path_buf();
    let dir = staging.path().to_path_buf();
    let mut staged = tokio::task::spawn_blocking(move || stage::extract(&bundle, &dir))
        .await?
        .map_err(|e| anyhow::anyhow!("bundle refused: {e}; nothing was imported"))?;
    let staged_ref = &staged;
    let verified =
        tokio::task::block_in_place(|| verify::verify(staged_ref, keys)).map_err(|problems| {
            anyhow::anyhow!(
                "bundle refused, nothing was imported:\n  {}",
                problems.join("\n  ")
            )
        })?;
    let applied = apply::apply(store, &verified.packages, &mut staged).await?;
    Ok((verified, applied))
}

pub async fn run(args: &ImportArgs, cp: &Control) -> anyhow::Result<Imported> {
    let keys = trusted_keys(args)?;
    let store = open_store(args)?;
    // The org must exist (and the token be an admin's) before anything is read or written.
    nproxy_proto::v1::orgs_client::OrgsClient::with_interceptor(
        cp.channel.clone(),
        cp.auth.clone(),
    )
    .get_org(pb::GetOrgRequest {
        org: args.org.clone(),
    })
    .await?;
    let (verified, applied) = stage_verify_apply(store, &args.bundle, &keys).await?;
    let versions = verified.packages.iter().map(|p| p.versions.len()).sum();
    let internal: Vec<&str> = verified
        .packages
        .iter()
        .filter(|p| p.internal)
        .map(|p| p.name.as_str())
        .collect();
    let details = json!({
        "manifest_sha256": verified.manifest_sha256,
        "signer_key_id": verified.signer,
        "exporting_org": verified.manifest.org,
        "created": verified.manifest.created,
        "packages": verified.packages.len(),
        "versions": versions,
        "new_versions": applied.new_versions,
        "tarballs_written": applied.tarballs_written,
        "internal_packages": internal,
        "refused": applied.refused.iter().map(|(n, why)| json!({"package": n, "why": why})).collect::<Vec<_>>(),
    });
    nproxy_proto::v1::audit_client::AuditClient::with_interceptor(
        cp.channel.clone(),
        cp.auth.clone(),
    )
    .record_events(pb::RecordEventsRequest {
        org: args.org.clone(),
        events: vec![pb::NewEvent {
            idempotency_key: format!("bundle.imported:{}", verified.manifest_sha256),
            r#type: nproxy_proto::events::BUNDLE_IMPORTED.into(),
            details_json: details.to_string(),
            time_ms: nproxy_common::time::now_ms(),
        }],
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "the bundle was imported, but its audit event could not be recorded ({}); \
             run the same import again to record it",
            crate::commands::describe(&anyhow::Error::from(e))
        )
    })?;
    Ok(Imported {
        manifest_sha256: verified.manifest_sha256,
        signer: verified.signer,
        exporting_org: verified.manifest.org,
        packages: verified.packages.len(),
        versions,
        applied,
    })
}
