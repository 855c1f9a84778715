//! npm's `package-lock.json` (and `npm-shrinkwrap.json`), lockfile versions 2 and 3: the
//! `packages` map from install paths (`node_modules/a/node_modules/@s/b`) to entries. An
//! alias (`"x": "npm:fx-c@^1"`) installs at `node_modules/x` with `"name": "fx-c"`.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::{registry_version, LockfileError, Pinned};

#[derive(Deserialize)]
struct Lock {
    #[serde(rename = "lockfileVersion", default)]
    version: u32,
    #[serde(default)]
    packages: Option<BTreeMap<String, Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    name: Option<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default, rename = "inBundle")]
    in_bundle: bool,
}

pub(super) fn parse(text: &str) -> Result<Pinned, LockfileError> {
    let lock: Lock = serde_json::from_str(text)?;
    let packages = match (lock.version, lock.packages) {
        (2 | 3, Some(p)) => p,
        (v, _) => {
            return Err(LockfileError::Unsupported(format!(
                "package-lock.json lockfileVersion {v} is not supported (2 and 3 are; \
                 `npm install` with npm 7 or later upgrades it)"
            )))
        }
    };
    let mut out = Pinned::default();
    for (path, e) in packages {
        // The project itself, and workspace folders (no `node_modules/` in their path).
        let Some(at) = path.rfind("node_modules/") else {
            continue;
        };
        let installed_as = &path[at + "node_modules/".len()..];
        if e.link {
            out.skip(format!("{installed_as}: a link ({})", path));
            continue;
        }
        // Shipped inside its parent's tarball, never fetched on its own.
        if e.in_bundle {
            continue;
        }
        let name = e.name.as_deref().unwrap_or(installed_as);
        let Some(version) = e.version.as_deref() else {
            out.skip(format!("{name}: no version"));
            continue;
        };
        let from_registry = registry_version(version)
            && e.resolved.as_deref().is_none_or(|r| {
                (r.starts_with("http://") || r.starts_with("https://")) && r.contains("/-/")
            });
        if !from_registry {
            out.skip(format!(
                "{name}@{version}: not from a registry ({})",
                e.resolved.as_deref().unwrap_or("no resolved URL")
            ));
            continue;
        }
        out.add(name, version, e.integrity.as_deref());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Locked;
    use super::*;

    const LOCK: &str = r#"{
      "name": "fixture-project", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
      "packages": {
        "": {"name": "fixture-project", "version": "1.0.0", "dependencies": {"fx-a": "^2.0.0"}},
        "node_modules/fx-a": {"version": "2.0.0",
          "resolved": "http://127.0.0.1:4873/fx-a/-/fx-a-2.0.0.tgz",
          "integrity": "sha512-AAA", "dependencies": {"@fx/b": "^1.0.0"}},
        "node_modules/@fx/b": {"version": "1.0.1",
          "resolved": "http://127.0.0.1:4873/@fx/b/-/b-1.0.1.tgz", "integrity": "sha512-BBB"},
        "node_modules/fx-a/node_modules/@fx/b": {"version": "1.0.0", "integrity": "sha512-CCC"},
        "node_modules/alias": {"name": "fx-c", "version": "1.0.0",
          "resolved": "http://127.0.0.1:4873/fx-c/-/fx-c-1.0.0.tgz", "integrity": "sha512-DDD"},
        "node_modules/ws-pkg": {"resolved": "packages/ws-pkg", "link": true},
        "packages/ws-pkg": {"name": "ws-pkg", "version": "0.0.1"},
        "packages/ws-pkg/node_modules/fx-c": {"version": "1.0.0", "integrity": "sha512-DDD"},
        "node_modules/gitdep": {"version": "1.2.3",
          "resolved": "git+ssh://git@example.test/x/gitdep.git#abc", "integrity": "sha512-E"},
        "node_modules/fx-a/node_modules/inner": {"version": "0.1.0", "inBundle": true},
        "node_modules/local": {"version": "file:../local"}
      }
    }"#;

    #[test]
    fn v3_packages_aliases_links_and_workspaces() {
        let p = parse(LOCK).unwrap();
        let got: Vec<(String, String, Option<String>)> = p
            .packages
            .iter()
            .map(|(Locked { name, version }, i)| (name.clone(), version.clone(), i.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("@fx/b".into(), "1.0.0".into(), Some("sha512-CCC".into())),
                ("@fx/b".into(), "1.0.1".into(), Some("sha512-BBB".into())),
                ("fx-a".into(), "2.0.0".into(), Some("sha512-AAA".into())),
                ("fx-c".into(), "1.0.0".into(), Some("sha512-DDD".into())),
            ]
        );
        assert_eq!(p.skipped.len(), 3, "{:?}", p.skipped);
        assert!(p.skipped.iter().any(|s| s.contains("gitdep")));
        assert!(p.skipped.iter().any(|s| s.starts_with("ws-pkg")));
        assert!(p.skipped.iter().any(|s| s.starts_with("local")));
    }

    #[test]
    fn old_lockfile_versions_are_refused_with_a_hint() {
        let e = parse(r#"{"lockfileVersion": 1, "dependencies": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("lockfileVersion 1"), "{e}");
        assert!(parse("{").is_err());
    }
}
