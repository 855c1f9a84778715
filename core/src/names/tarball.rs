//! `TarballFile`, a tarball file name checked to belong to its package, and the longest
//! version string accepted.

use super::key::key_segment;
use super::package::PackageName;

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
