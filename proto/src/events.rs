//! The audit log's event kinds: written by the control plane (org, token, key, rules,
//! trusted publisher and upstream route changes; `token.created` also for the tokens
//! trusted publishing mints) and handed over by data planes (package events), read by
//! dashboards and `nproxyctl audit`. Part of the contract: a kind, once written, keeps its
//! spelling.

pub const ORG_CREATED: &str = "org.created";
pub const ORG_DELETED: &str = "org.deleted";
pub const ORG_SETTINGS_CHANGED: &str = "org.settings_changed";
pub const TOKEN_CREATED: &str = "token.created";
pub const TOKEN_REVOKED: &str = "token.revoked";
pub const KEY_CREATED: &str = "key.created";
pub const KEY_ROTATED: &str = "key.rotated";
pub const RULES_CHANGED: &str = "rules.changed";
pub const EXCEPTION_ADDED: &str = "exception.added";
pub const EXCEPTION_REMOVED: &str = "exception.removed";
pub const TRUSTED_PUBLISHER_ADDED: &str = "trusted_publisher.added";
pub const TRUSTED_PUBLISHER_REMOVED: &str = "trusted_publisher.removed";
/// Upstream routes: id, pattern, URL, whether a credential is set; never the credential.
pub const UPSTREAM_ROUTE_ADDED: &str = "upstream_route.added";
pub const UPSTREAM_ROUTE_UPDATED: &str = "upstream_route.updated";
pub const UPSTREAM_ROUTE_REMOVED: &str = "upstream_route.removed";

pub const PACKAGE_PUBLISHED: &str = "package.published";
pub const PACKAGE_SIGNED: &str = "package.signed";
pub const PACKAGE_UNPUBLISHED: &str = "package.unpublished";
pub const PACKAGE_DIST_TAG_CHANGED: &str = "package.dist_tag_changed";
pub const PACKAGE_DEPRECATED: &str = "package.deprecated";
pub const PACKAGE_BLOCKED: &str = "package.blocked";
pub const PACKAGE_WARNED: &str = "package.warned";
/// `nproxyctl bundle import` wrote a signed bundle's packages into the store (recorded by
/// the admin who ran it, once per manifest).
pub const BUNDLE_IMPORTED: &str = "bundle.imported";

/// Kinds an admin may hand over with `RecordEvents` (what nproxyctl did outside the
/// control plane).
pub const ADMIN_RECORDED_KINDS: &[&str] = &[BUNDLE_IMPORTED];

/// Kinds a data plane may hand over; every other kind is the control plane's to write
/// (or an admin's, `ADMIN_RECORDED_KINDS`).
pub const DATA_PLANE_KINDS: &[&str] = &[
    PACKAGE_PUBLISHED,
    PACKAGE_SIGNED,
    PACKAGE_UNPUBLISHED,
    PACKAGE_DIST_TAG_CHANGED,
    PACKAGE_DEPRECATED,
    PACKAGE_BLOCKED,
    PACKAGE_WARNED,
];
