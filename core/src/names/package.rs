//! `PackageName`, a validated package name.
//!
//! npm has two sets of name rules, and nproxy uses both:
//! - **valid for old packages** (`PackageName::parse`): what the public registry can still
//!   serve. Capital letters (`JSONStream`), more than 214 characters, `~'!()*` and the names
//!   of Node's core modules were all allowed once. Every read accepts these.
//! - **valid for new packages** (`PackageName::check_new`): lowercase, at most 214
//!   characters, no `~'!()*`, not a core module. Only where nproxy creates a package
//!   (an internal publish).

use std::fmt;

use super::key::key_segment;

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
