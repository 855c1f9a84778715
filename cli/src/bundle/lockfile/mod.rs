//! Lockfiles → the exact package versions a project installs from a registry. Pure: text in,
//! a set of `(name, version)` out, with the lockfile's integrity where it records one.
//!
//! Formats: npm `package-lock.json` / `npm-shrinkwrap.json` v2 and v3 (`npm.rs`),
//! `pnpm-lock.yaml` v9 (and v6 keys) (`pnpm.rs`), `yarn.lock` v1 and berry (`yarn.rs`).
//! Entries that do not come from a registry (workspaces, links, `file:`, git, plain tarball
//! URLs, yarn patches) are not packages a registry can serve: they are reported as skipped.

mod npm;
mod pnpm;
mod yarn;

use std::collections::BTreeMap;
use std::path::Path;

/// One package version a lockfile pins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locked {
    pub name: String,
    pub version: String,
}

/// What a lockfile pins: each version with the integrity the lockfile records for it
/// (`None` where it records none, e.g. yarn berry, whose `checksum` is yarn's own hash).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub packages: BTreeMap<Locked, Option<String>>,
    /// Entries left out because no registry serves them, with why (for a warning).
    pub skipped: Vec<String>,
}

impl Pinned {
    fn add(&mut self, name: &str, version: &str, integrity: Option<&str>) {
        let key = Locked {
            name: name.to_string(),
            version: version.to_string(),
        };
        let slot = self.packages.entry(key).or_insert(None);
        if slot.is_none() {
            *slot = integrity.filter(|i| !i.is_empty()).map(str::to_string);
        }
    }

    fn skip(&mut self, what: impl Into<String>) {
        self.skipped.push(what.into());
    }

    /// Adds another lockfile's pins (the first integrity seen for a version is kept).
    pub fn extend(&mut self, other: Pinned) {
        for (k, integrity) in other.packages {
            self.add(&k.name, &k.version, integrity.as_deref());
        }
        self.skipped.extend(other.skipped);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Npm,
    Pnpm,
    Yarn1,
    YarnBerry,
}

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{0}")]
    Unsupported(String),
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
}

/// Which format a lockfile is, from its file name and, for `yarn.lock`, its text.
pub fn detect(path: &Path, text: &str) -> Result<Kind, LockfileError> {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let kind = match file {
        "package-lock.json" | "npm-shrinkwrap.json" => Kind::Npm,
        "pnpm-lock.yaml" => Kind::Pnpm,
        "yarn.lock" => yarn_kind(text),
        _ if text.trim_start().starts_with('{') => Kind::Npm,
        _ if text.contains("\nlockfileVersion:") || text.starts_with("lockfileVersion:") => {
            Kind::Pnpm
        }
        _ if text.contains("yarn lockfile v1") => Kind::Yarn1,
        _ if text.contains("__metadata:") => Kind::YarnBerry,
        _ => {
            return Err(LockfileError::Unsupported(format!(
                "{file:?} is not a lockfile nproxyctl knows (package-lock.json, \
                 npm-shrinkwrap.json, pnpm-lock.yaml, yarn.lock)"
            )))
        }
    };
    Ok(kind)
}

fn yarn_kind(text: &str) -> Kind {
    if text.lines().any(|l| l.trim_end() == "__metadata:") {
        Kind::YarnBerry
    } else {
        Kind::Yarn1
    }
}

pub fn parse(kind: Kind, text: &str) -> Result<Pinned, LockfileError> {
    match kind {
        Kind::Npm => npm::parse(text),
        Kind::Pnpm => pnpm::parse(text),
        Kind::Yarn1 => yarn::parse_v1(text),
        Kind::YarnBerry => yarn::parse_berry(text),
    }
}

/// A version a registry serves: semver, nothing else (git refs, URLs and paths are not).
fn registry_version(v: &str) -> bool {
    semver::Version::parse(v).is_ok()
}

/// `name@rest` split after the name (a scoped name's own `@` is part of the name).
fn split_name(spec: &str) -> Option<(&str, &str)> {
    let from = usize::from(spec.starts_with('@'));
    let at = spec.get(from..)?.find('@')? + from;
    let (name, rest) = (&spec[..at], &spec[at + 1..]);
    (!name.is_empty() && name != "@").then_some((name, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_after_the_scope() {
        assert_eq!(split_name("@fx/b@1.0.0"), Some(("@fx/b", "1.0.0")));
        assert_eq!(split_name("fx-a@^2"), Some(("fx-a", "^2")));
        assert_eq!(split_name("x@npm:@fx/b@1"), Some(("x", "npm:@fx/b@1")));
        assert_eq!(split_name("@fx/b"), None);
        assert_eq!(split_name("@"), None);
    }

    #[test]
    fn detects_by_name_and_content() {
        let d = |f: &str, t: &str| detect(Path::new(f), t).ok();
        assert_eq!(d("a/package-lock.json", "{}"), Some(Kind::Npm));
        assert_eq!(d("pnpm-lock.yaml", ""), Some(Kind::Pnpm));
        assert_eq!(d("yarn.lock", "# yarn lockfile v1\n"), Some(Kind::Yarn1));
        assert_eq!(
            d("yarn.lock", "__metadata:\n  version: 8\n"),
            Some(Kind::YarnBerry)
        );
        assert_eq!(d("locks/app.json", " {\"x\":1}"), Some(Kind::Npm));
        assert_eq!(d("README.md", "hello"), None);
    }

    #[test]
    fn several_lockfiles_merge_and_keep_the_first_integrity() {
        let mut a = Pinned::default();
        a.add("fx-a", "1.0.0", None);
        let mut b = Pinned::default();
        b.add("fx-a", "1.0.0", Some("sha512-x"));
        b.add("fx-c", "1.0.0", Some(""));
        a.extend(b);
        assert_eq!(a.packages.len(), 2);
        let k = Locked {
            name: "fx-a".into(),
            version: "1.0.0".into(),
        };
        assert_eq!(a.packages[&k].as_deref(), Some("sha512-x"));
    }
}
