//! `OrgSlug`, an org's name in URLs and keys: the control plane's slug rule.

use std::fmt;

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
