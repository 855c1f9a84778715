//! Maps an npm request path to what it asks for. Pure: no I/O, no config beyond its arguments.

use crate::names::{NameError, OrgSlug, PackageName, TarballError, TarballFile};
use crate::upstream_route::{self, package_segment, Forwarded, UpstreamRouteError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Ping,
    /// `GET /<name>`: the package document.
    Packument(PackageName),
    /// `GET /<name>/-/<file>.tgz`.
    Tarball(PackageName, TarballFile),
    /// An npm service endpoint this data plane does not own, from the allow-list in
    /// `upstream_route`: validated parts, rebuilt into the URL sent upstream.
    Forwarded(Forwarded),
    /// `/<name>/-rev/<rev>`: whole-package unpublish (DELETE) or a document update (PUT).
    /// `None`: the client sent no revision it knew (`-rev/undefined`, see `parse_rev`).
    PackumentRev(PackageName, Option<String>),
    /// `/<name>/-/<file>/-rev/<rev>`: deleting one tarball (the end of a version unpublish).
    TarballRev(PackageName, TarballFile, Option<String>),
    /// `/-/package/<name>/dist-tags`
    DistTags(PackageName),
    /// `/-/package/<name>/dist-tags/<tag>`
    DistTag(PackageName, String),
    Whoami,
    /// `/-/nproxy/v1/explain/<name>`: which rules fire on which versions.
    Explain(PackageName),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("invalid package name: {0}")]
    Name(#[from] NameError),
    #[error("invalid tarball path: {0}")]
    Tarball(#[from] TarballError),
    #[error("not found")]
    NotFound,
    #[error("invalid path encoding")]
    BadEncoding,
    #[error("invalid revision")]
    BadRevision,
    #[error("invalid dist-tag")]
    BadTag,
    #[error("invalid path parameter")]
    BadParam,
}

impl From<UpstreamRouteError> for RouteError {
    fn from(e: UpstreamRouteError) -> Self {
        match e {
            UpstreamRouteError::NotFound => RouteError::NotFound,
            UpstreamRouteError::BadParam => RouteError::BadParam,
        }
    }
}

/// A dist-tag from a path: npm only makes tags `encodeURIComponent` leaves alone, and `.` or
/// `..` would be a dot segment in the URL sent upstream.
fn parse_tag(tag: &str) -> Result<String, RouteError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag != "."
        && tag != ".."
        && tag.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '.' | '_' | '~' | '!' | '*' | '\'' | '(' | ')')
        });
    if ok {
        Ok(tag.to_string())
    } else {
        Err(RouteError::BadTag)
    }
}

impl Route {
    /// The path sent upstream when this route is forwarded (writes to public packages, their
    /// dist-tags), rebuilt from validated parts; `None` for routes that are never forwarded.
    pub fn upstream_path(&self) -> Option<String> {
        Some(match self {
            Route::Packument(n) => format!("/{}", package_segment(n)),
            Route::PackumentRev(n, rev) => format!(
                "/{}/-rev/{}",
                package_segment(n),
                rev.as_deref().unwrap_or("undefined")
            ),
            Route::TarballRev(n, f, rev) => format!(
                "/{}/-/{}/-rev/{}",
                n.as_str(),
                f.as_str(),
                rev.as_deref().unwrap_or("undefined")
            ),
            Route::DistTags(n) => format!("/-/package/{}/dist-tags", package_segment(n)),
            Route::DistTag(n, tag) => {
                format!("/-/package/{}/dist-tags/{tag}", package_segment(n))
            }
            Route::Forwarded(u) => u.upstream_path(None),
            _ => return None,
        })
    }
}

/// A CouchDB-style revision as nproxy issues them (`<n>-<hex>`), or `undefined`: pnpm 11
/// reads documents without `?write=true` and, where that read had no `_rev`, sends the
/// JavaScript word itself (`-rev/undefined`). That means "no revision known": the write
/// then goes to the current document, as on the registry these clients were made for.
fn parse_rev(s: &str) -> Result<Option<String>, RouteError> {
    if s == "undefined" || s == "null" {
        return Ok(None);
    }
    if crate::names::is_rev(s) {
        Ok(Some(s.to_string()))
    } else {
        Err(RouteError::BadRevision)
    }
}

/// Splits `/{org}/rest` for path-prefix mode. Returns the org and the rest (starting with `/`).
pub fn split_org_prefix(path: &str) -> Option<(Result<OrgSlug, String>, &str)> {
    let rest = path.strip_prefix('/')?;
    let (first, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if first.is_empty() || first == "-" || first.starts_with('@') {
        return None;
    }
    Some((OrgSlug::parse(first).map_err(|_| first.to_string()), tail))
}

/// Percent-decodes the path once. A double-encoded escape leaves a `%`, which no valid name
/// holds, so validation rejects it afterwards.
fn decode(path: &str) -> Result<String, RouteError> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| RouteError::BadEncoding)?;
    Ok(decoded.into_owned())
}

/// Routes a path relative to the registry root (org prefix already removed).
pub fn route(path: &str) -> Result<Route, RouteError> {
    if path == "/-/ping" {
        return Ok(Route::Ping);
    }
    if path == "/-/whoami" {
        return Ok(Route::Whoami);
    }
    if let Some(rest) = path.strip_prefix("/-/nproxy/v1/explain/") {
        return Ok(Route::Explain(PackageName::parse(&decode(rest)?)?));
    }
    if let Some(r) = upstream_route::route(path) {
        return Ok(Route::Forwarded(r?));
    }
    if let Some(rest) = path.strip_prefix("/-/package/") {
        let decoded = decode(rest)?;
        let (name, tail) = match decoded.split_once("/dist-tags") {
            Some(x) => x,
            None => return Err(RouteError::NotFound),
        };
        let name = PackageName::parse(name)?;
        return match tail {
            "" | "/" => Ok(Route::DistTags(name)),
            t => {
                let tag = t.strip_prefix('/').ok_or(RouteError::NotFound)?;
                if tag.contains('/') {
                    return Err(RouteError::NotFound);
                }
                Ok(Route::DistTag(name, parse_tag(tag)?))
            }
        };
    }
    if path.starts_with("/-/") || path == "/" || path.is_empty() {
        return Err(RouteError::NotFound);
    }
    let decoded = decode(path.strip_prefix('/').ok_or(RouteError::NotFound)?)?;
    let segments: Vec<&str> = decoded.split('/').collect();
    // Scoped names take two segments; the decoded form of `@scope%2fname` and the plain
    // `@scope/name` route identically, as npm, pnpm and yarn use both.
    let name_len = if decoded.starts_with('@') { 2 } else { 1 };
    if segments.len() < name_len {
        return Err(RouteError::Name(NameError::BadScope));
    }
    let name = PackageName::parse(&segments[..name_len].join("/"))?;
    match &segments[name_len..] {
        [] => Ok(Route::Packument(name)),
        ["-", file] => {
            let file = TarballFile::parse(&name, file)?;
            Ok(Route::Tarball(name, file))
        }
        ["-rev", rev] => Ok(Route::PackumentRev(name, parse_rev(rev)?)),
        ["-", file, "-rev", rev] => {
            let file = TarballFile::parse(&name, file)?;
            Ok(Route::TarballRev(name, file, parse_rev(rev)?))
        }
        _ => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(n: &str) -> PackageName {
        PackageName::parse(n).unwrap()
    }

    #[test]
    fn packuments() {
        assert_eq!(route("/lodash"), Ok(Route::Packument(pkg("lodash"))));
        assert_eq!(
            route("/@acme%2futils"),
            Ok(Route::Packument(pkg("@acme/utils")))
        );
        assert_eq!(
            route("/@acme%2Futils"),
            Ok(Route::Packument(pkg("@acme/utils")))
        );
        assert_eq!(
            route("/@acme/utils"),
            Ok(Route::Packument(pkg("@acme/utils")))
        );
        assert_eq!(
            route("/%40acme%2futils"),
            Ok(Route::Packument(pkg("@acme/utils")))
        );
    }

    #[test]
    fn tarballs() {
        let want = Route::Tarball(
            pkg("@acme/utils"),
            TarballFile::parse(&pkg("@acme/utils"), "utils-1.0.0.tgz").unwrap(),
        );
        assert_eq!(route("/@acme/utils/-/utils-1.0.0.tgz"), Ok(want.clone()));
        assert_eq!(route("/@acme%2futils/-/utils-1.0.0.tgz"), Ok(want));
        assert!(matches!(
            route("/lodash/-/lodash-4.17.21.tgz"),
            Ok(Route::Tarball(..))
        ));
    }

    #[test]
    fn hostile_paths() {
        assert!(route("/..%2f..%2fetc%2fpasswd").is_err());
        assert!(route("/lodash/-/..%2f..%2fx.tgz").is_err());
        assert!(route("/lodash/-/lodash-1.0.0.tgz/extra").is_err());
        assert!(route("/%2e%2e").is_err());
        assert!(route("/a%25252f").is_err());
        assert!(route("/%ff").is_err());
        assert_eq!(route("/"), Err(RouteError::NotFound));
        assert_eq!(route("/-/whatever"), Err(RouteError::NotFound));
        assert_eq!(route("/lodash/latest"), Err(RouteError::NotFound));
    }

    /// Names only valid for old packages still exist upstream and must route.
    #[test]
    fn legacy_names() {
        assert_eq!(
            route("/JSONStream"),
            Ok(Route::Packument(pkg("JSONStream")))
        );
        assert!(matches!(
            route("/JSONStream/-/JSONStream-1.3.5.tgz"),
            Ok(Route::Tarball(n, f)) if n.as_str() == "JSONStream" && f.version().to_string() == "1.3.5"
        ));
        assert_eq!(route("/Base64"), Ok(Route::Packument(pkg("Base64"))));
        assert_eq!(route("/a%27b"), Ok(Route::Packument(pkg("a'b"))));
        assert_eq!(route("/(x)"), Ok(Route::Packument(pkg("(x)"))));
        assert_eq!(route("/http"), Ok(Route::Packument(pkg("http"))));
        let long = "l".repeat(300);
        assert_eq!(route(&format!("/{long}")), Ok(Route::Packument(pkg(&long))));
        assert_eq!(
            route("/-/package/JSONStream/dist-tags"),
            Ok(Route::DistTags(pkg("JSONStream")))
        );
    }

    #[test]
    fn service_endpoints() {
        assert_eq!(route("/-/ping"), Ok(Route::Ping));
        assert_eq!(
            route("/-/npm/v1/security/advisories/bulk"),
            Ok(Route::Forwarded(Forwarded::AuditBulk))
        );
        assert_eq!(
            route("/-/v1/search"),
            Ok(Route::Forwarded(Forwarded::Search))
        );
        assert!(matches!(
            route("/-/npm/v1/attestations/x@1.0.0"),
            Ok(Route::Forwarded(Forwarded::Attestations(..)))
        ));
        assert_eq!(
            route("/-/npm/v1/keys"),
            Ok(Route::Forwarded(Forwarded::Keys))
        );
        // The campaign's bypass: never a route, let alone a forwarded one.
        assert!(route("/-/user/org.couchdb.user:x/%2e%2e/%2e%2e/%2e%2e/ms").is_err());
        assert!(route("/-/npm/v1/security/%2e%2e/%2e%2e/ms/-/ms-1.0.0.tgz").is_err());
    }

    #[test]
    fn write_routes() {
        assert_eq!(
            route("/@acme%2futils/-rev/3-abc123"),
            Ok(Route::PackumentRev(
                pkg("@acme/utils"),
                Some("3-abc123".into())
            ))
        );
        assert!(matches!(
            route("/@acme/utils/-/utils-1.0.1.tgz/-rev/4-ff"),
            Ok(Route::TarballRev(_, _, Some(r))) if r == "4-ff"
        ));
        assert_eq!(route("/x/-rev/../../etc"), Err(RouteError::NotFound));
        assert_eq!(route("/x/-rev/abc"), Err(RouteError::BadRevision));
        // pnpm 11 without a `_rev` to copy.
        assert_eq!(
            route("/@acme%2fcap/-rev/undefined"),
            Ok(Route::PackumentRev(pkg("@acme/cap"), None))
        );
        assert!(matches!(
            route("/@acme/cap/-/cap-1.0.1.tgz/-rev/undefined"),
            Ok(Route::TarballRev(_, _, None))
        ));
        assert_eq!(
            route("/-/package/@acme%2futils/dist-tags"),
            Ok(Route::DistTags(pkg("@acme/utils")))
        );
        assert_eq!(
            route("/-/package/@acme%2futils/dist-tags/beta"),
            Ok(Route::DistTag(pkg("@acme/utils"), "beta".into()))
        );
        assert_eq!(
            route("/-/package/lodash/dist-tags/a/b"),
            Err(RouteError::NotFound)
        );
        assert_eq!(route("/-/whoami"), Ok(Route::Whoami));
        assert!(matches!(
            route("/-/user/org.couchdb.user:alice"),
            Ok(Route::Forwarded(Forwarded::CouchUser(_)))
        ));
        assert_eq!(route("/-/package/x/dist-tags/.."), Err(RouteError::BadTag));
        assert_eq!(
            route("/@acme/x/-/x-1.0.0.tgz/-rev/3-ab")
                .unwrap()
                .upstream_path()
                .as_deref(),
            Some("/@acme/x/-/x-1.0.0.tgz/-rev/3-ab")
        );
        assert_eq!(
            route("/@acme%2Fx").unwrap().upstream_path().as_deref(),
            Some("/@acme%2fx")
        );
    }

    #[test]
    fn org_prefix() {
        let (org, rest) = split_org_prefix("/acme/@x%2fy").unwrap();
        assert_eq!(org.unwrap().as_str(), "acme");
        assert_eq!(rest, "/@x%2fy");
        let (org, rest) = split_org_prefix("/acme").unwrap();
        assert_eq!(org.unwrap().as_str(), "acme");
        assert_eq!(rest, "/");
        assert!(split_org_prefix("/-/ping").is_none());
        assert!(split_org_prefix("/@x%2fy").is_none());
        assert!(split_org_prefix("/Bad_Org/x").unwrap().0.is_err());
    }
}
