//! `nproxyctl bundle`: packages for networks without access to the upstream. `create` builds
//! one signed file from lockfiles through a connected nproxy; `import` verifies it whole and
//! writes it into the blob store of a disconnected one; `pins` lists what lockfiles pin.
//! The file format is `docs/bundle-format.md`.

#[cfg(feature = "import")]
mod apply;
mod create;
mod format;
#[cfg(feature = "import")]
mod import;
pub mod lockfile;
#[cfg(feature = "import")]
mod stage;
#[cfg(test)]
#[cfg(feature = "import")]
mod tests;
mod trust;
#[cfg(feature = "import")]
mod verify;

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use nproxy_proto::tokens::BearerAuth;
use tonic::transport::Channel;

use crate::output::{print_json, Format, Table};
use crate::Target;

#[derive(Subcommand)]
pub enum BundleCmd {
    /// Lists the registry packages lockfiles pin (what `create` would bundle).
    Pins {
        /// package-lock.json, npm-shrinkwrap.json, pnpm-lock.yaml or yarn.lock (v1 or
        /// berry); repeat for several.
        #[arg(long = "lockfile", required = true)]
        lockfiles: Vec<PathBuf>,
    },
    /// Builds a signed bundle of every package version the lockfiles pin, fetched through a
    /// connected nproxy (the org's rules apply). Needs an admin token: the control plane
    /// signs the manifest with the org's Ed25519 key.
    Create(create::CreateArgs),
    /// Verifies a bundle whole (signature against the trusted key, every integrity) and
    /// writes it into the blob store of an nproxy without an upstream, merged with what is
    /// there; records `bundle.imported` in the org's audit log. Needs an admin token.
    #[cfg(feature = "import")]
    Import(import::ImportArgs),
}

/// The control plane: signing (create) and the audit event (import).
pub struct Control {
    channel: Channel,
    auth: BearerAuth,
}

impl Control {
    async fn open(t: &Target) -> anyhow::Result<Control> {
        let urls = nproxy_proto::endpoints::parse_list(&t.endpoint)
            .ok_or_else(|| anyhow::anyhow!("endpoint {:?} lists no URL", t.endpoint))?;
        let (_, channel) =
            nproxy_proto::endpoints::first_reachable(&urls, std::time::Duration::from_secs(5))
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the control plane: {e}"))?;
        let auth = BearerAuth::optional(t.token.as_deref())?;
        Ok(Control { channel, auth })
    }
}

/// Every package version the lockfiles pin, merged; what was skipped is printed on stderr.
pub fn read_lockfiles(paths: &[PathBuf]) -> anyhow::Result<lockfile::Pinned> {
    let mut all = lockfile::Pinned::default();
    for p in paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        let kind =
            lockfile::detect(p, &text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let pinned =
            lockfile::parse(kind, &text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        all.extend(pinned);
    }
    for s in &all.skipped {
        eprintln!("skipped (no registry serves it): {s}");
    }
    Ok(all)
}

pub async fn run(c: BundleCmd, t: &Target) -> anyhow::Result<()> {
    let f = t.output;
    match c {
        BundleCmd::Pins { lockfiles } => {
            let pinned = read_lockfiles(&lockfiles)?;
            match f {
                Format::Json => print_json(&json!(pinned
                    .packages
                    .iter()
                    .map(|(k, i)| json!({"name": k.name, "version": k.version, "integrity": i}))
                    .collect::<Vec<_>>())),
                Format::Table => {
                    let mut t = Table::new(&["NAME", "VERSION", "INTEGRITY"]);
                    for (k, i) in &pinned.packages {
                        t.row(vec![
                            k.name.clone(),
                            k.version.clone(),
                            i.clone().unwrap_or_else(|| "-".into()),
                        ]);
                    }
                    print!("{}", t.render());
                }
            }
        }
        BundleCmd::Create(args) => {
            let cp = Control::open(t).await?;
            let c = create::run(&args, &cp).await?;
            match f {
                Format::Json => print_json(&json!({
                    "file": args.out, "bytes": c.bytes, "packages": c.packages,
                    "versions": c.versions, "manifest_sha256": c.manifest_sha256,
                    "key_id": c.key_id,
                })),
                Format::Table => println!(
                    "{}: {} packages, {} versions, {} bytes; manifest sha256 {} signed by {}",
                    args.out.display(),
                    c.packages,
                    c.versions,
                    c.bytes,
                    c.manifest_sha256,
                    c.key_id
                ),
            }
        }
        #[cfg(feature = "import")]
        BundleCmd::Import(args) => {
            let cp = Control::open(t).await?;
            let i = import::run(&args, &cp).await?;
            let a = &i.applied;
            match f {
                Format::Json => print_json(&json!({
                    "manifest_sha256": i.manifest_sha256, "signer_key_id": i.signer,
                    "exporting_org": i.exporting_org, "packages": i.packages,
                    "versions": i.versions, "new_versions": a.new_versions,
                    "tarballs_written": a.tarballs_written,
                    "tarballs_present": a.tarballs_present,
                    "refused": a.refused.iter()
                        .map(|(n, why)| json!({"package": n, "why": why}))
                        .collect::<Vec<_>>(),
                })),
                Format::Table => println!(
                    "bundle {} from org {} (signed by {}): {} packages, {} versions; {} new \
                     versions, {} tarballs written, {} already present",
                    i.manifest_sha256,
                    i.exporting_org,
                    i.signer,
                    i.packages,
                    i.versions,
                    a.new_versions,
                    a.tarballs_written,
                    a.tarballs_present
                ),
            }
            if !a.refused.is_empty() {
                for (_, why) in &a.refused {
                    eprintln!("refused: {why}");
                }
                anyhow::bail!(
                    "{} package(s) refused (the rest was imported)",
                    a.refused.len()
                );
            }
        }
    }
    Ok(())
}
