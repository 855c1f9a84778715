//! yarn's `yarn.lock`: version 1 (yarn's own indented format) and berry (yarn 2+, YAML).
//!
//! v1: an entry per group of ranges, `"@s/b@^1.0.0", "@s/b@^1.0.1":` then indented
//! `version "1.0.1"`, `resolved "<url>#<sha1>"`, `integrity sha512-…`. An alias range is
//! `x@npm:fx-c@^1.0.0`.
//! berry: a YAML map whose values carry `resolution: "name@npm:1.0.1"`; `checksum` is yarn's
//! hash of its own cache archive, not an npm integrity, so none is taken from it.

use std::collections::BTreeMap;

use super::{registry_version, split_name, LockfileError, Pinned};

/// A yarn 1 field value: `"text"` or a bare word.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

#[derive(Default)]
struct V1Entry {
    line: usize,
    specs: Vec<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
}

pub(super) fn parse_v1(text: &str) -> Result<Pinned, LockfileError> {
    let mut entries: Vec<V1Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            let Some(header) = line.strip_suffix(':') else {
                return Err(LockfileError::Syntax {
                    line: i + 1,
                    message: format!("expected an entry header ending in ':', found {line:?}"),
                });
            };
            entries.push(V1Entry {
                line: i + 1,
                specs: header.split(", ").map(|s| unquote(s).to_string()).collect(),
                ..V1Entry::default()
            });
            continue;
        }
        // Only the entry's own fields (indent 2); dependency lists sit deeper.
        if indent != 2 {
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            return Err(LockfileError::Syntax {
                line: i + 1,
                message: "a field before any entry".into(),
            });
        };
        let (key, value) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let value = Some(unquote(value).to_string());
        match unquote(key) {
            "version" => entry.version = value,
            "resolved" => entry.resolved = value,
            "integrity" => entry.integrity = value,
            _ => {}
        }
    }
    let mut out = Pinned::default();
    for e in entries {
        let Some(spec) = e.specs.first() else {
            continue;
        };
        let Some((installed_as, range)) = split_name(spec) else {
            out.skip(format!("line {}: {spec:?} is not name@range", e.line));
            continue;
        };
        // `x@npm:fx-c@^1`: the package is fx-c.
        let (name, range) = match range.strip_prefix("npm:").and_then(split_name) {
            Some((real, r)) => (real, r),
            None => (installed_as, range),
        };
        let Some(version) = e.version.as_deref() else {
            out.skip(format!("line {}: {name} has no version", e.line));
            continue;
        };
        let from_registry = registry_version(version)
            && !range.contains(':')
            && e.resolved.as_deref().is_none_or(|r| {
                (r.starts_with("http://") || r.starts_with("https://")) && r.contains("/-/")
            });
        if !from_registry {
            out.skip(format!("{name}@{version}: not from a registry ({spec})"));
            continue;
        }
        out.add(name, version, e.integrity.as_deref());
    }
    Ok(out)
}

pub(super) fn parse_berry(text: &str) -> Result<Pinned, LockfileError> {
    let map: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(text)?;
    let mut out = Pinned::default();
    for (key, entry) in map {
        if key == "__metadata" {
            continue;
        }
        let Some(resolution) = entry.get("resolution").and_then(|r| r.as_str()) else {
            out.skip(format!("{key}: no resolution"));
            continue;
        };
        let Some((name, locator)) = split_name(resolution) else {
            out.skip(format!("{resolution}: not name@locator"));
            continue;
        };
        let Some(npm) = locator.strip_prefix("npm:") else {
            // The project's own workspaces, and patches of packages that are listed
            // themselves: nothing to say. Git, file, link, portal, exec: not a registry's.
            if !(locator.starts_with("workspace:") || locator.starts_with("patch:")) {
                out.skip(format!("{resolution}: not from a registry"));
            }
            continue;
        };
        // `npm:1.0.0::__archiveUrl=…` names a tarball URL; the version is before `::`.
        let version = npm.split("::").next().unwrap_or(npm);
        if !registry_version(version) {
            out.skip(format!("{resolution}: not a registry version"));
            continue;
        }
        out.add(name, version, None);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Locked;
    use super::*;

    fn list(p: &Pinned) -> Vec<(String, String, Option<String>)> {
        p.packages
            .iter()
            .map(|(Locked { name, version }, i)| (name.clone(), version.clone(), i.clone()))
            .collect()
    }

    const V1: &str = r#"# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@fx/b@^1.0.0", "@fx/b@^1.0.1":
  version "1.0.1"
  resolved "http://127.0.0.1:4873/@fx/b/-/b-1.0.1.tgz#0123abcd"
  integrity sha512-BBB

"alias@npm:fx-c@^1.0.0":
  version "1.0.0"
  resolved "http://127.0.0.1:4873/fx-c/-/fx-c-1.0.0.tgz#aa"
  integrity sha512-DDD

fx-a@^2.0.0:
  version "2.0.0"
  resolved "http://127.0.0.1:4873/fx-a/-/fx-a-2.0.0.tgz#bb"
  integrity sha512-AAA
  dependencies:
    "@fx/b" "^1.0.0"
    version "9.9.9"

"gitdep@git+https://example.test/x/gitdep.git#abc":
  version "1.2.3"
  resolved "git+https://example.test/x/gitdep.git#abc"

"local@file:../local":
  version "0.0.1"
"#;

    #[test]
    fn v1_entries_aliases_and_non_registry_ones() {
        let p = parse_v1(V1).unwrap();
        assert_eq!(
            list(&p),
            vec![
                ("@fx/b".into(), "1.0.1".into(), Some("sha512-BBB".into())),
                ("fx-a".into(), "2.0.0".into(), Some("sha512-AAA".into())),
                ("fx-c".into(), "1.0.0".into(), Some("sha512-DDD".into())),
            ]
        );
        assert_eq!(p.skipped.len(), 2, "{:?}", p.skipped);
        let e = parse_v1("fx-a@^1\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    const BERRY: &str = r#"# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 8
  cacheKey: 10c0

"@fx/b@npm:^1.0.0":
  version: 1.0.1
  resolution: "@fx/b@npm:1.0.1"
  checksum: 10c0/0123456789abcdef
  languageName: node
  linkType: hard

"alias@npm:fx-c@^1.0.0":
  version: 1.0.0
  resolution: "fx-c@npm:1.0.0"
  languageName: node
  linkType: hard

"fixture-project@workspace:.":
  version: 0.0.0-use.local
  resolution: "fixture-project@workspace:."
  dependencies:
    fx-a: "npm:^2.0.0"
  languageName: unknown
  linkType: soft

"fx-a@npm:^2.0.0, fx-a@npm:^2.0.0-rc":
  version: 2.0.0
  resolution: "fx-a@npm:2.0.0::__archiveUrl=http%3A%2F%2F127.0.0.1%2Ffx-a-2.0.0.tgz"
  languageName: node
  linkType: hard

"resolve@patch:resolve@npm%3A^1.22.8#optional!builtin<compat/resolve>":
  version: 1.22.8
  resolution: "resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>::version=1.22.8&hash=c3c19d"
  languageName: node
  linkType: hard

"gitdep@https://example.test/x/gitdep.git#commit=abc":
  version: 1.2.3
  resolution: "gitdep@https://example.test/x/gitdep.git#commit=abc"
  languageName: node
  linkType: hard
"#;

    #[test]
    fn berry_resolutions_only_from_npm() {
        let p = parse_berry(BERRY).unwrap();
        assert_eq!(
            list(&p),
            vec![
                ("@fx/b".into(), "1.0.1".into(), None),
                ("fx-a".into(), "2.0.0".into(), None),
                ("fx-c".into(), "1.0.0".into(), None),
            ]
        );
        assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
        assert!(p.skipped[0].contains("gitdep"));
    }
}
