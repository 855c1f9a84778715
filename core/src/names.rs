//! Validation of everything a request names: packages, tarball files, versions, org slugs.
//!
//! Every storage key and upstream URL is built from these validated types, never from
//! raw request text, so a hostile path can't reach outside its key space.
//!
//! npm has two sets of name rules, and nproxy uses both:
//! - **valid for old packages** (`PackageName::parse`): what the public registry can still
//!   serve. Capital letters (`JSONStream`), more than 214 characters, `~'!()*` and the names
//!   of Node's core modules were all allowed once. Every read accepts these.
//! - **valid for new packages** (`PackageName::check_new`): lowercase, at most 214
//!   characters, no `~'!()*`, not a core module. Only where nproxy creates a package
//!   (an internal publish).

use std::fmt;

use sha2::{Digest, Sha256};

/// A package name valid for old packages (see the module docs).
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
    #[error("package name is longer than {0} characters")]
    TooLong(usize),
    #[error("package name must be lowercase")]
    Uppercase,
    #[error("package name may not start with '.' or '_'")]
    LeadingDotOrUnderscore,
    #[error("package name contains a character that is not allowed: {0:?}")]
    BadChar(char),
    #[error("package name can no longer contain special characters (~'!()*)")]
    SpecialChar,
    #[error("scoped package name must look like @scope/name")]
    BadScope,
    #[error("package name {0:?} is not allowed")]
    Reserved(String),
    #[error("package name {0:?} is a Node.js core module")]
    CoreModule(String),
}

/// Longest name accepted on reads. npm never capped old names; this only bounds the work
/// and key length a request can cause (long names get hashed key segments anyway).
const MAX_OLD_NAME_LEN: usize = 1024;
/// npm's limit for new packages.
const MAX_NEW_NAME_LEN: usize = 214;

/// Characters `encodeURIComponent` leaves alone: npm's "URL-safe" test for every name.
fn is_url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '!' | '~' | '*' | '\'' | '(' | ')')
}

/// Node.js core modules (as of Node 24): names npm refuses for new packages.
const CORE_MODULES: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

fn validate_part(part: &str) -> Result<(), NameError> {
    if part.is_empty() {
        return Err(NameError::BadScope);
    }
    if let Some(c) = part.chars().find(|c| !is_url_safe(*c)) {
        return Err(NameError::BadChar(c));
    }
    // URL-safe, but a path segment of its own: never a name.
    if part == "." || part == ".." {
        return Err(NameError::Reserved(part.to_string()));
    }
    Ok(())
}

impl PackageName {
    /// Any name valid for old packages: what reads of public packages accept.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_OLD_NAME_LEN {
            return Err(NameError::TooLong(MAX_OLD_NAME_LEN));
        }
        if s.starts_with('.') || s.starts_with('_') {
            return Err(NameError::LeadingDotOrUnderscore);
        }
        let lower = s.to_ascii_lowercase();
        if matches!(lower.as_str(), "node_modules" | "favicon.ico") {
            return Err(NameError::Reserved(s.to_string()));
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
        Ok(Self {
            full: s.to_string(),
            name_start: 0,
        })
    }

    /// npm's rules for new packages, on top of `parse`: for names nproxy creates.
    pub fn check_new(&self) -> Result<(), NameError> {
        if self.full.len() > MAX_NEW_NAME_LEN {
            return Err(NameError::TooLong(MAX_NEW_NAME_LEN));
        }
        if self.full.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(NameError::Uppercase);
        }
        if self
            .full
            .chars()
            .any(|c| matches!(c, '~' | '\'' | '!' | '(' | ')' | '*'))
        {
            return Err(NameError::SpecialChar);
        }
        if self.scope().is_none() && CORE_MODULES.contains(&self.full.as_str()) {
            return Err(NameError::CoreModule(self.full.clone()));
        }
        Ok(())
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

    /// The name as store-key segments: `@<scope>/<name>` or `<name>`, each part escaped by
    /// `key_segment`, so `JSONStream` and `jsonstream` never share a key, even on a file
    /// system that ignores case.
    pub fn key_path(&self) -> String {
        match self.scope() {
            Some(scope) => format!(
                "@{}/{}",
                key_segment(&scope[1..]),
                key_segment(self.unscoped())
            ),
            None => key_segment(&self.full),
        }
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// Longest escaped key segment kept readable; longer ones are hashed (file systems cap a
/// path segment at 255 bytes, S3 keys at 1024).
const MAX_KEY_SEGMENT: usize = 180;

/// Escapes text into one store-key segment made only of lowercase letters, digits and
/// `-._~+`, injectively and case-free:
/// - lowercase letters, digits, `-`, `_`, `~` stay; `.` stays except in first position;
/// - an uppercase letter becomes `+` and its lowercase (`J` → `+j`);
/// - any other byte (and a leading `.`) becomes `+` and two lowercase hex digits (`(` →
///   `+28`): a digit follows `+` only in this form, a letter only in the one above;
/// - an escaped segment longer than `MAX_KEY_SEGMENT` keeps a readable head and ends in
///   `+-` and the sha256 of the whole escaped segment; `+-` appears in no other form.
pub fn key_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => out.push(char::from(b)),
            b'.' if i > 0 => out.push('.'),
            b'A'..=b'Z' => {
                out.push('+');
                out.push(char::from(b.to_ascii_lowercase()));
            }
            _ => {
                out.push('+');
                out.push_str(&format!("{b:02x}"));
            }
        }
    }
    if out.len() <= MAX_KEY_SEGMENT {
        return out;
    }
    let digest = hex::encode(Sha256::digest(out.as_bytes()));
    // Every byte of `out` is ASCII, so any cut is a char boundary.
    format!("{}+-{digest}", &out[..64])
}

/// Longest version string accepted (node-semver's `MAX_LENGTH`).
pub const MAX_VERSION_LEN: usize = 256;

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
    #[error("tarball file name has an invalid version")]
    BadVersion,
}

impl TarballFile {
    pub fn parse(package: &PackageName, file: &str) -> Result<Self, TarballError> {
        let stem = file.strip_suffix(".tgz").ok_or(TarballError::NotTgz)?;
        let version = stem
            .strip_prefix(package.unscoped())
            .and_then(|v| v.strip_prefix('-'))
            .ok_or_else(|| TarballError::WrongPackage(package.to_string()))?;
        if version.len() > MAX_VERSION_LEN {
            return Err(TarballError::BadVersion);
        }
        let version = semver::Version::parse(version).map_err(|_| TarballError::BadVersion)?;
        // The canonical rendering must round-trip, so `1.0.0` and `01.0.0` can't be two keys.
        let canonical = format!("{}-{}.tgz", package.unscoped(), version);
        if canonical != file {
            return Err(TarballError::BadVersion);
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

    /// The file name as one store-key segment (see `key_segment`).
    pub fn key_segment(&self) -> String {
        key_segment(&self.file)
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
        if nproxy_common::slug::is_valid(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(OrgSlugError(s.to_string()))
        }
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
        ] {
            let p = PackageName::parse(n).unwrap();
            assert_eq!(p.check_new(), Ok(()), "{n}");
        }
    }

    /// Names the public registry still serves, from npm's "valid for old packages" rules.
    #[test]
    fn accepts_legacy_names_for_reads_only() {
        for (n, new_err) in [
            ("JSONStream", NameError::Uppercase),
            ("Base64", NameError::Uppercase),
            ("CSSselect", NameError::Uppercase),
            ("Markdown", NameError::Uppercase),
            ("@Scope/Pkg", NameError::Uppercase),
            ("a~b", NameError::SpecialChar),
            ("ca$h".replace('$', "'").as_str(), NameError::SpecialChar),
            ("hello!", NameError::SpecialChar),
            ("(x)", NameError::SpecialChar),
            ("star*", NameError::SpecialChar),
            ("http", NameError::CoreModule("http".into())),
            ("fs", NameError::CoreModule("fs".into())),
            (&"a".repeat(215), NameError::TooLong(214)),
        ] {
            let p = PackageName::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(p.check_new(), Err(new_err), "{n}");
        }
        // A scoped core-module name is an ordinary new name.
        assert_eq!(
            PackageName::parse("@acme/http").unwrap().check_new(),
            Ok(())
        );
    }

    #[test]
    fn rejects_hostile_names() {
        for n in [
            "",
            "..",
            ".",
            ".hidden",
            "_private",
            "a/b",
            "@scope",
            "@/x",
            "@scope/",
            "@scope/../x",
            "@scope/..",
            "@../x",
            "a b",
            " a",
            "a%2fb",
            "a\\b",
            "node_modules",
            "NODE_MODULES",
            "favicon.ico",
            "x\0",
            "@a/b/c",
            "a:b",
            "a?b",
            "a#b",
            "a\"b",
            "é",
        ] {
            assert!(PackageName::parse(n).is_err(), "{n:?} should be rejected");
        }
        assert_eq!(
            PackageName::parse(&"a".repeat(1025)),
            Err(NameError::TooLong(1024))
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
    fn key_segments_are_injective_and_case_free() {
        let names = [
            "JSONStream",
            "jsonstream",
            "JsonStream",
            "Base64",
            "base64",
            "a~b",
            "a'b",
            "a(b)",
            "a!b",
            "a*b",
            "a27b",
            "ab.",
            "@Scope/Pkg",
            "@scope/pkg",
            "@scope/Pkg",
        ];
        let mut seen = std::collections::HashMap::new();
        for n in names {
            let key = PackageName::parse(n).unwrap().key_path();
            // A case-insensitive file system lowercases in effect: still distinct.
            let folded = key.to_lowercase();
            assert_eq!(folded, key, "{n}: keys are lowercase already");
            if let Some(other) = seen.insert(folded.clone(), n) {
                panic!("{n} and {other} share the key {folded}");
            }
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~+@/".contains(&b)));
        }
        assert_eq!(PackageName::parse("lodash").unwrap().key_path(), "lodash");
        assert_eq!(
            PackageName::parse("@acme/utils").unwrap().key_path(),
            "@acme/utils"
        );
        assert_eq!(
            PackageName::parse("JSONStream").unwrap().key_path(),
            "+j+s+o+n+stream"
        );
        assert_eq!(key_segment(".tmp"), "+2etmp");
    }

    #[test]
    fn long_key_segments_are_hashed() {
        let a = "a".repeat(600);
        let b = format!("{}b", "a".repeat(599));
        let (ka, kb) = (key_segment(&a), key_segment(&b));
        assert!(ka.len() <= 200 && kb.len() <= 200);
        assert_ne!(ka, kb);
        assert!(ka.contains("+-"));
        assert!(!key_segment("JSONStream-1.0.0").contains("+-"));
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
        let legacy = PackageName::parse("JSONStream").unwrap();
        let t = TarballFile::parse(&legacy, "JSONStream-1.3.5.tgz").unwrap();
        assert_eq!(t.key_segment(), "+j+s+o+n+stream-1.3.5.tgz");
        let long = format!("utils-1.0.0-{}.tgz", "a".repeat(5000));
        assert_eq!(TarballFile::parse(&n, &long), Err(TarballError::BadVersion));
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
