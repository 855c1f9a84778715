//! `Pattern`: an entry of an org's allow or deny list, a package name or a whole scope with
//! an optional semver range.

use crate::names::PackageName;

/// A package name pattern: an exact name or a whole scope (`@types/*`), with an optional
/// semver range of versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub name: String,
    pub range: Option<semver::VersionReq>,
}

impl Pattern {
    pub fn parse(name: &str, range: Option<&str>) -> Result<Pattern, String> {
        let ok = match name.strip_suffix("/*") {
            Some(scope) => {
                scope.starts_with('@') && PackageName::parse(&format!("{scope}/x")).is_ok()
            }
            None => PackageName::parse(name).is_ok(),
        };
        if !ok {
            return Err(format!(
                "{name:?} is neither a package name nor a scope like @types/*"
            ));
        }
        let range = range
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                semver::VersionReq::parse(r)
                    .map_err(|e| format!("{r:?} is not a semver range: {e}"))
            })
            .transpose()?;
        Ok(Pattern {
            name: name.to_string(),
            range,
        })
    }

    pub(super) fn matches_name(&self, name: &PackageName) -> bool {
        match self.name.strip_suffix("/*") {
            Some(scope) => name.scope() == Some(scope),
            None => self.name == name.as_str(),
        }
    }

    pub(super) fn matches(&self, name: &PackageName, version: &str) -> bool {
        self.matches_name(name)
            && self
                .range
                .as_ref()
                .is_none_or(|r| semver::Version::parse(version).is_ok_and(|v| r.matches(&v)))
    }
}
