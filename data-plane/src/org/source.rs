//! The contract an org config source fulfils (Redis, or the in-process bus of `nproxyctl
//! dev`), and the invalidations it delivers.

use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Org(String),
    /// The advisories about one npm package changed.
    Advisories(String),
    /// A write to this public package was accepted upstream (through some data plane).
    PackageWritten(String),
    /// An internal package's document was written (through some data plane).
    InternalWritten {
        org_id: String,
        package: String,
    },
    /// Messages may have been missed (reconnect): re-check everything held.
    All,
}

/// Called with the name of a public package written upstream through any data plane.
pub type PackageWriteListener = Box<dyn Fn(&str) + Send + Sync>;

/// Called with (org id, package) when an internal package's document was written through
/// any data plane, and with `None` when such messages may have been missed (a reconnect).
pub type InternalWriteListener = Box<dyn Fn(Option<(&str, &str)>) + Send + Sync>;

#[async_trait::async_trait]
pub trait ConfigSource: Send + Sync + 'static {
    /// The org's encoded snapshot, `None` if the org does not exist.
    async fn fetch(&self, slug: &str) -> Result<Option<Vec<u8>>, String>;
    /// The stream of invalidations; taken once, by `OrgConfigs`.
    fn invalidations(&self) -> Option<mpsc::UnboundedReceiver<Invalidation>>;
    /// Reports when tokens were last used: (org id, token id, Unix ms).
    async fn report_usage(&self, used: Vec<(String, String, i64)>) -> Result<(), String>;
    /// The OSV advisories about one npm package (a JSON array), if any.
    async fn fetch_advisories(&self, package: &str) -> Result<Option<Vec<u8>>, String>;
    /// Tells every data plane that a public package was written upstream.
    async fn announce_package_write(&self, package: &str) -> Result<(), String>;
    /// Tells every data plane that an internal package's document was written. A source
    /// serving one data plane (the dev bus) has no one else to tell.
    async fn announce_internal_write(&self, _org_id: &str, _package: &str) -> Result<(), String> {
        Ok(())
    }
}
