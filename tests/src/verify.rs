//! npm's own signature verification, run in Node by `tests/node/verify-signatures.js` with
//! the pacote of the npm the tests use (the `npm` on PATH, as `clients::Project` runs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of the npm on PATH (`…/node_modules/npm`), where its pacote lives.
pub fn npm_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let npm = std::env::split_paths(&path)
        .map(|d| d.join("npm"))
        .find(|p| p.is_file())
        .expect("npm is on PATH");
    // /usr/bin/npm → …/node_modules/npm/bin/npm-cli.js
    let real = std::fs::canonicalize(&npm).expect("resolve npm");
    let dir = real
        .parent()
        .and_then(Path::parent)
        .expect("npm-cli.js sits in <npm>/bin")
        .to_path_buf();
    assert!(
        dir.join("node_modules/pacote/package.json").is_file(),
        "no pacote in {} (npm resolved to {})",
        dir.display(),
        real.display()
    );
    dir
}

/// `tests/node/verify-signatures.js`.
pub fn verifier_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/verify-signatures.js")
}

/// Verifies every package of `project_dir`'s package-lock.json against `registry` as
/// npm's `audit signatures` does: `{"<name>@<version>": "ok" | "missing" | "<code>:
/// <message>"}` (plus `"-/npm/v1/keys"` if the keys request failed with other than
/// 404/400). Panics if the verifier itself fails or runs over 3 minutes.
pub async fn npm_verify_signatures(
    registry: &str,
    token: Option<&str>,
    project_dir: &Path,
) -> BTreeMap<String, String> {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(verifier_script())
        .arg(registry)
        .arg(token.unwrap_or(""))
        .arg(project_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .env("NPROXY_NPM_DIR", npm_dir())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the verifier finished within 3 minutes")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "verify-signatures.js failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("verify-signatures.js {registry}: {stderr}");
    let map: BTreeMap<String, String> = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("verifier printed no JSON map ({e}):\n{stdout}\n{stderr}"));
    map
}

/// `map` with every value `"ok"`, for the keys `ids` (for an `assert_eq!` that shows what
/// differs).
pub fn all_ok<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    ids.into_iter()
        .map(|id| (id.to_string(), "ok".to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::registry::{Registry, SigMode};
    use serde_json::json;

    /// The harness proves itself against pacote: the fixture upstream's signatures verify,
    /// and a forged signature, a missing one and changed tarball bytes are each caught.
    #[tokio::test(flavor = "multi_thread")]
    async fn pacote_accepts_the_fixture_registry_and_catches_each_fault() {
        let packages = fixtures::standard();
        let reg = Registry::start(&packages).await;
        let fx = |name: &str| {
            packages
                .iter()
                .find(|p| p.name == name)
                .expect("fixture")
                .clone()
        };
        let (b, a, c) = (fx("@fx/b"), fx("fx-a"), fx("fx-c"));
        let entry = |p: &fixtures::FixturePackage, v: &str, alias: bool| {
            let mut e = json!({
                "version": v,
                "resolved": format!("{}{}", reg.url(), p.tarball_path(v)),
                "integrity": p.versions[v].tarball.integrity,
            });
            if alias {
                e["name"] = json!(p.name);
            }
            e
        };
        let lock = json!({
            "name": "p", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
            "packages": {
                "": {"name": "p", "version": "1.0.0"},
                "node_modules/fx-c": entry(&c, "1.0.0", false),
                "node_modules/@fx/b": entry(&b, "1.0.1", false),
                "node_modules/fx-a": entry(&a, "2.0.0", false),
                "node_modules/fx-a/node_modules/@fx/b": entry(&b, "1.0.0", false),
                "node_modules/old-a": entry(&a, "1.0.0", true),
                "node_modules/other-a": entry(&a, "1.1.0", true),
            },
        });
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("package-lock.json"),
            serde_json::to_vec(&lock).expect("json"),
        )
        .expect("lock");
        let got = npm_verify_signatures(&reg.url(), None, dir.path()).await;
        assert_eq!(
            got,
            all_ok([
                "fx-c@1.0.0",
                "@fx/b@1.0.1",
                "@fx/b@1.0.0",
                "fx-a@2.0.0",
                "fx-a@1.0.0",
                "fx-a@1.1.0"
            ])
        );
        assert_eq!(reg.count("GET", "/-/npm/v1/keys"), 1);

        reg.signature_mode("@fx/b", "1.0.0", SigMode::Invalid);
        reg.signature_mode("fx-a", "1.0.0", SigMode::Missing);
        reg.corrupt(&a.tarball_path("1.1.0"));
        let got = npm_verify_signatures(&reg.url(), Some("any-token"), dir.path()).await;
        assert!(
            got["@fx/b@1.0.0"].starts_with("EINTEGRITYSIGNATURE: "),
            "{got:?}"
        );
        assert_eq!(got["fx-a@1.0.0"], "missing", "{got:?}");
        assert!(got["fx-a@1.1.0"].starts_with("EINTEGRITY: "), "{got:?}");
        for ok in ["fx-c@1.0.0", "@fx/b@1.0.1", "fx-a@2.0.0"] {
            assert_eq!(got[ok], "ok", "{got:?}");
        }
        assert_eq!(got.len(), 6, "{got:?}");
    }
}
