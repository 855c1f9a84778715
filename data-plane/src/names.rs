//! Validation of everything a request names: packages, tarball files, versions, org slugs.
//!
//! Every storage key and upstream URL is built from these validated types, never from
//! raw request text, so a hostile path can't reach outside its key space.

use std::fmt;

/// A package name that passed npm's rules for new packages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageName {
    full: String,
    /// Byte offset of the name part after `@scope/` (0 for unscoped names).
    name_start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("package name is empty")]
    Empty,
    #[error("package name is longer than 214 characters")]
    TooLong,
    #[error("package name must be lowercase")]
    Uppercase,
    #[error("package name may not start with '.' or '_'")]
    LeadingDotOrUnderscore,
    #[error("package name contains a character that is not allowed: {0:?}")]
    BadChar(char),
    #[error("scoped package name must look like @scope/name")]
    BadScope,
    #[error("package name {0:?} is not allowed")]
    Reserved(String),
}

const MAX_NAME_LEN: usize = 214;

fn is_name_char(c: char) -> bool {
    // npm's rule is "URL-safe"; its registry only ever creates names from this set.
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '~')
}

fn validate_part(part: &str) -> Result<(), NameError> {
    if part.is_empty() {
        return Err(NameError::BadScope);
    }
    if part.starts_with('.') || part.starts_with('_') {
        return Err(NameError::LeadingDotOrUnderscore);
    }
    for c in part.chars() {
        if c.is_ascii_uppercase() {
            return Err(NameError::Uppercase);
        }
        if !is_name_char(c) {
            return Err(NameError::BadChar(c));
        }
    }
    if part == "." || part == ".." {
        return Err(NameError::Reserved(part.to_string()));
    }
    Ok(())
}

impl PackageName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if let Some(rest) = s.strip_prefix('@') {
            let (scope, name) = rest.split_once('/').ok_or(NameError::BadScope)?;
            validate_part(scope)?;
            validate_part(name)?;
            return Ok(Self {
                full: s.to_string(),
                name_start: scope.len() + 2,
            });
        }
        validate_part(s)?;
        if matches!(s, "node_modules" | "favicon.ico") {
            return Err(NameError::Reserved(s.to_string()));
        }
        Ok(Self {
            full: s.to_string(),
            name_start: 0,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The name without its scope: `utils` for `@acme/utils`.
    pub fn unscoped(&self) -> &str {
        &self.full[self.name_start..]
    }

    /// `@acme` for `@acme/utils`, `None` for unscoped names.
    pub fn scope(&self) -> Option<&str> {
        (self.name_start > 0).then(|| &self.full[..self.name_start - 1])
    }

    /// The form used in a packument URL path: `@acme%2futils` or `lodash`.
    pub fn url_encoded(&self) -> String {
        self.full.replacen('/', "%2f", 1)
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// A tarball file name such as `utils-1.0.0.tgz`, checked to belong to its package.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TarballFile {
    file: String,
    version: semver::Version,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarballError {
    #[error("tarball file name must end in .tgz")]
    NotTgz,
    #[error("tarball file name must be <name>-<version>.tgz for package {0}")]
    WrongPackage(String),
    #[error("tarball file name has an invalid version: {0}")]
    BadVersion(String),
}

impl TarballFile {
    pub fn parse(package: &PackageName, file: &str) -> Result<Self, TarballError> {
        let stem = file.strip_suffix(".tgz").ok_or(TarballError::NotTgz)?;
        let version = stem
            .strip_prefix(package.unscoped())
            .and_then(|v| v.strip_prefix('-'))
            .ok_or_else(|| TarballError::WrongPackage(package.to_string()))?;
        let version = semver::Version::parse(version)
            .map_err(|_| TarballError::BadVersion(version.to_string()))?;
        // The canonical rendering must round-trip, so `1.0.0` and `01.0.0` can't be two keys.
        let canonical = format!("{}-{}.tgz", package.unscoped(), version);
        if canonical != file {
            return Err(TarballError::BadVersion(stem.to_string()));
        }
        Ok(Self {
            file: canonical,
            version,
        })
    }

    pub fn for_version(package: &PackageName, version: &semver::Version) -> Self {
        Self {
            file: format!("{}-{}.tgz", package.unscoped(), version),
            version: version.clone(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.file
    }

    pub fn version(&self) -> &semver::Version {
        &self.version
    }
}

/// An org slug: a DNS label (lowercase letters, digits and inner hyphens, 1–63 chars).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgSlug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("org slug {0:?} must be a DNS label: 1-63 lowercase letters, digits or inner hyphens")]
pub struct OrgSlugError(pub String);

impl OrgSlug {
    pub fn parse(s: &str) -> Result<Self, OrgSlugError> {
        // The control plane's rule, so every slug it accepts is addressable here.
        nproxy_proto::validate::slug("org", s)
            .map(Self)
            .map_err(|_| OrgSlugError(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "lodash",
            "left-pad",
            "a.b",
            "x_y",
            "@types/node",
            "@acme/utils",
            "a~b",
        ] {
            assert!(PackageName::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_hostile_names() {
        for n in [
            "",
            "..",
            ".",
            ".hidden",
            "_private",
            "Upper",
            "a/b",
            "@scope",
            "@/x",
            "@scope/",
            "@scope/../x",
            "@../x",
            "a b",
            "a%2fb",
            "a\\b",
            "node_modules",
            "x\0",
            "@a/b/c",
        ] {
            assert!(PackageName::parse(n).is_err(), "{n:?} should be rejected");
        }
        assert_eq!(
            PackageName::parse(&"a".repeat(215)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn scoped_parts() {
        let n = PackageName::parse("@acme/utils").unwrap();
        assert_eq!(n.scope(), Some("@acme"));
        assert_eq!(n.unscoped(), "utils");
        assert_eq!(n.url_encoded(), "@acme%2futils");
        let n = PackageName::parse("lodash").unwrap();
        assert_eq!(n.scope(), None);
        assert_eq!(n.unscoped(), "lodash");
    }

    #[test]
    fn tarball_files() {
        let n = PackageName::parse("@acme/utils").unwrap();
        let t = TarballFile::parse(&n, "utils-1.0.0-beta.1.tgz").unwrap();
        assert_eq!(t.version().to_string(), "1.0.0-beta.1");
        assert!(TarballFile::parse(&n, "other-1.0.0.tgz").is_err());
        assert!(TarballFile::parse(&n, "utils-1.0.0.tar").is_err());
        assert!(TarballFile::parse(&n, "utils-01.0.0.tgz").is_err());
        assert!(TarballFile::parse(&n, "utils-../../x.tgz").is_err());
        assert!(TarballFile::parse(&n, "utils-.tgz").is_err());
        // A name that is a prefix of another must not match its tarballs.
        let short = PackageName::parse("util").unwrap();
        assert!(TarballFile::parse(&short, "utils-1.0.0.tgz").is_err());
    }

    #[test]
    fn org_slugs() {
        assert!(OrgSlug::parse("acme").is_ok());
        assert!(OrgSlug::parse("acme-2").is_ok());
        for s in ["", "-acme", "acme-", "Acme", "a.b", "a_b", &"a".repeat(64)] {
            assert!(OrgSlug::parse(s).is_err(), "{s}");
        }
    }
}
