//! Where org config lives in Redis: the one place both sides agree on names.

/// Key of an org's `OrgConfigSnapshot` (protobuf bytes), by slug: data planes find orgs by
/// the host or path they are addressed as.
pub fn org_snapshot_key(slug: &str) -> String {
    format!("nproxy:v1:org:{slug}")
}

/// Key of the stamp of what `org_snapshot_key` holds (`<org created_at_ms>:<config version>`),
/// or of its removal (a tombstone): several control planes publish, and the stamp lets a
/// late publish of an older config lose instead of overwriting a newer one.
pub fn org_snapshot_stamp_key(slug: &str) -> String {
    format!("nproxy:v1:org-stamp:{slug}")
}

/// Channel on which the control plane announces a changed or deleted org; the message is
/// the org's slug, or `*` for "reload everything".
pub const INVALIDATION_CHANNEL: &str = "nproxy:v1:invalidate";

/// The message that asks data planes to drop every cached org.
pub const INVALIDATE_ALL: &str = "*";

/// Latest audit chain head of an org (`<seq>:<hex hash>`), an anchor outside the database.
pub fn audit_head_key(org_id: &str) -> String {
    format!("nproxy:v1:audit-head:{org_id}")
}

/// Hash of token id → last use (Unix ms) for an org, written by data planes in batches and
/// folded into the database by the control plane.
pub fn token_usage_key(org_id: &str) -> String {
    format!("nproxy:v1:token-usage:{org_id}")
}

/// The OSV advisories (a JSON array of OSV documents) about one npm package, shared by all
/// orgs; data planes fetch them by package name and drop them on an invalidation
/// `adv:<package>` on `INVALIDATION_CHANNEL`.
pub fn advisories_key(package: &str) -> String {
    format!("nproxy:v1:advisories:{package}")
}

/// Prefix of the invalidation message for a package's advisories.
pub const ADVISORIES_PREFIX: &str = "adv:";

/// The invalidation message for a package's advisories.
pub fn advisories_invalidation(package: &str) -> String {
    format!("{ADVISORIES_PREFIX}{package}")
}

/// Prefix of the message a data plane publishes on `INVALIDATION_CHANNEL` after a write to
/// a public package (publish, unpublish, dist-tag, deprecate) was accepted upstream: every
/// data plane then revalidates that package on its next read.
pub const PACKAGE_WRITE_PREFIX: &str = "pkg:";

/// The invalidation message for a public package written upstream.
pub fn package_write_invalidation(package: &str) -> String {
    format!("{PACKAGE_WRITE_PREFIX}{package}")
}

/// Prefix of the message a data plane publishes on `INVALIDATION_CHANNEL` after writing an
/// internal package's document (publish, unpublish, dist-tag, deprecate):
/// `ipkg:<org id> <package>`. Every data plane then re-reads that package for its search
/// index. Internal names travel only inside the deployment (Redis), never upstream.
pub const INTERNAL_WRITE_PREFIX: &str = "ipkg:";

/// The invalidation message for an internal package's document written.
pub fn internal_write_invalidation(org_id: &str, package: &str) -> String {
    format!("{INTERNAL_WRITE_PREFIX}{org_id} {package}")
}
