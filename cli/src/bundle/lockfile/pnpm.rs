//! pnpm's `pnpm-lock.yaml`, lockfile version 9: the `packages:` map, keyed `name@version`
//! (`'@scope/name@1.0.0'`), with `resolution.integrity`. `snapshots:` repeats packages with
//! peer suffixes (`react-dom@18.2.0(react@18.2.0)`) and adds nothing a registry serves.
//! Version 6 keys (`/name@1.0.0(peer)`) are read too.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{registry_version, split_name, LockfileError, Pinned};

#[derive(Deserialize)]
struct Lock {
    #[serde(rename = "lockfileVersion")]
    version: Option<serde_yaml::Value>,
    #[serde(default)]
    packages: Option<BTreeMap<String, Entry>>,
}

#[derive(Deserialize, Default)]
struct Entry {
    #[serde(default)]
    resolution: Option<Resolution>,
}

#[derive(Deserialize, Default)]
struct Resolution {
    integrity: Option<String>,
    tarball: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub(super) fn parse(text: &str) -> Result<Pinned, LockfileError> {
    let lock: Lock = serde_yaml::from_str(text)?;
    let version = match &lock.version {
        Some(serde_yaml::Value::String(s)) => s.clone(),
        Some(serde_yaml::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let major = version.split('.').next().unwrap_or("");
    if !matches!(major, "6" | "7" | "9") {
        return Err(LockfileError::Unsupported(format!(
            "pnpm-lock.yaml lockfileVersion {version:?} is not supported (9.0, as pnpm 9 \
             and later write, and 6.x)"
        )));
    }
    let mut out = Pinned::default();
    for (key, e) in lock.packages.unwrap_or_default() {
        // v6 keys start with `/`; peer suffixes `(…)` are not part of the version.
        let key = key.strip_prefix('/').unwrap_or(&key);
        let key = key.split('(').next().unwrap_or(key);
        let Some((name, version)) = split_name(key) else {
            out.skip(format!("{key}: not name@version"));
            continue;
        };
        let r = e.resolution.unwrap_or_default();
        // A git or directory resolution is not a registry package, whatever its key says.
        if !registry_version(version) || r.kind.is_some() {
            let how = r.tarball.or(r.kind).unwrap_or_default();
            out.skip(format!("{name}@{version}: not from a registry {how}"));
            continue;
        }
        out.add(name, version, r.integrity.as_deref());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Locked;
    use super::*;

    const LOCK: &str = r#"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      alias:
        specifier: npm:fx-c@^1.0.0
        version: fx-c@1.0.0
      fx-a:
        specifier: ^2.0.0
        version: 2.0.0

packages:

  '@fx/b@1.0.1':
    resolution: {integrity: sha512-BBB}

  fx-a@2.0.0:
    resolution: {integrity: sha512-AAA}

  fx-c@1.0.0:
    resolution: {integrity: sha512-DDD, tarball: http://127.0.0.1:4873/fx-c/-/fx-c-1.0.0.tgz}

  gitdep@https://codeload.example.test/x/gitdep/tar.gz/abc:
    resolution: {tarball: https://codeload.example.test/x/gitdep/tar.gz/abc}
    version: 1.2.3

  local@file:../local:
    resolution: {directory: ../local, type: directory}

snapshots:

  '@fx/b@1.0.1': {}

  fx-a@2.0.0:
    dependencies:
      '@fx/b': 1.0.1

  react-dom@18.2.0(react@18.2.0):
    dependencies:
      react: 18.2.0
"#;

    #[test]
    fn v9_packages_without_snapshots_or_non_registry_entries() {
        let p = parse(LOCK).unwrap();
        let got: Vec<(&str, &str, Option<&str>)> = p
            .packages
            .iter()
            .map(|(Locked { name, version }, i)| (name.as_str(), version.as_str(), i.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("@fx/b", "1.0.1", Some("sha512-BBB")),
                ("fx-a", "2.0.0", Some("sha512-AAA")),
                ("fx-c", "1.0.0", Some("sha512-DDD")),
            ]
        );
        assert_eq!(p.skipped.len(), 2, "{:?}", p.skipped);
    }

    #[test]
    fn v6_keys_and_unknown_versions() {
        let v6 = "lockfileVersion: '6.0'\npackages:\n  /@fx/b@1.0.0(react@18.2.0):\n    resolution: {integrity: sha512-X}\n";
        let p = parse(v6).unwrap();
        assert_eq!(
            p.packages.keys().next(),
            Some(&Locked {
                name: "@fx/b".into(),
                version: "1.0.0".into()
            })
        );
        let e = parse("lockfileVersion: 5.4\n").unwrap_err().to_string();
        assert!(e.contains("5.4"), "{e}");
        assert!(parse("packages: [").is_err());
    }
}
