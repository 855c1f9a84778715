//! `nproxyctl bundle`: packages for networks without access to the upstream. `create` builds
//! one signed file from lockfiles through a connected nproxy; `import` verifies it whole and
//! writes it into the blob store of a disconnected one; `pins` lists what lockfiles pin.
//! The file format is `docs/bundle-format.md`.

pub mod lockfile;

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

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
    }
    Ok(())
}
