//! The path and query sent upstream for a forwarded endpoint, rebuilt from its validated
//! parts (never the client's raw text): each parameter re-encoded as one segment, and only
//! the endpoint's own query keys kept.

use crate::names::PackageName;

use super::Forwarded;

const MAX_QUERY_VALUE: usize = 1024;

impl Forwarded {
    /// Query keys passed on (everything else is dropped).
    fn query_keys(&self) -> &'static [&'static str] {
        use Forwarded as U;
        match self {
            U::LoginDone => &["sessionId", "authId"],
            U::CouchUser(_) => &["write"],
            U::Tokens => &["page", "perPage"],
            U::Collaborators(_) => &["format", "user"],
            U::OrgPackages(_)
            | U::UserPackages(_)
            | U::OrgTeams(_)
            | U::TeamPackages(..)
            | U::TeamUsers(..) => &["format"],
            U::StarredByUser => &["key"],
            U::Search => &[
                "text",
                "size",
                "from",
                "quality",
                "popularity",
                "maintenance",
            ],
            U::Hooks => &["package", "limit", "offset"],
            _ => &[],
        }
    }

    /// The path and query sent upstream, built from the validated parts. `query` is the
    /// client's raw query string; only this endpoint's keys survive, re-encoded.
    pub fn upstream_path(&self, query: Option<&str>) -> String {
        use Forwarded as U;
        let e = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
        let mut p = match self {
            U::Login => "/-/v1/login".to_string(),
            U::LoginDone => "/-/v1/done".to_string(),
            U::CouchUser(u) => format!("/-/user/org.couchdb.user:{}", e(&u.0)),
            U::CouchUserRev(u, r) => format!("/-/user/org.couchdb.user:{}/-rev/{}", e(&u.0), e(r)),
            U::Logout(t) => format!("/-/user/token/{}", e(&t.0)),
            U::UserPackages(u) => format!("/-/user/{}/package", e(&u.0)),
            U::Profile => "/-/npm/v1/user".to_string(),
            U::Tokens => "/-/npm/v1/tokens".to_string(),
            U::Token(k) => format!("/-/npm/v1/tokens/token/{}", e(&k.0)),
            U::Visibility(n) => format!("/-/package/{}/visibility", package_segment(n)),
            U::Access(n) => format!("/-/package/{}/access", package_segment(n)),
            U::Collaborators(n) => format!("/-/package/{}/collaborators", package_segment(n)),
            U::Trust(n) => format!("/-/package/{}/trust", package_segment(n)),
            U::TrustId(n, id) => format!("/-/package/{}/trust/{}", package_segment(n), e(&id.0)),
            U::OrgPackages(o) => format!("/-/org/{}/package", e(&o.0)),
            U::OrgUsers(o) => format!("/-/org/{}/user", e(&o.0)),
            U::OrgTeams(o) => format!("/-/org/{}/team", e(&o.0)),
            U::Team(s, t) => format!("/-/team/{}/{}", e(&s.0), e(&t.0)),
            U::TeamPackages(s, t) => format!("/-/team/{}/{}/package", e(&s.0), e(&t.0)),
            U::TeamUsers(s, t) => format!("/-/team/{}/{}/user", e(&s.0), e(&t.0)),
            U::StarredByUser => "/-/_view/starredByUser".to_string(),
            U::Search => "/-/v1/search".to_string(),
            U::AuditBulk => "/-/npm/v1/security/advisories/bulk".to_string(),
            U::AuditQuick => "/-/npm/v1/security/audits/quick".to_string(),
            U::AuditFull => "/-/npm/v1/security/audits".to_string(),
            U::Keys => "/-/npm/v1/keys".to_string(),
            U::Attestations(n, v) => {
                format!(
                    "/-/npm/v1/attestations/{}@{}",
                    package_segment(n),
                    e(&v.to_string())
                )
            }
            U::OidcExchange(n) => {
                format!(
                    "/-/npm/v1/oidc/token/exchange/package/{}",
                    package_segment(n)
                )
            }
            U::Hooks => "/-/npm/v1/hooks".to_string(),
            U::Hook => "/-/npm/v1/hooks/hook".to_string(),
            U::HookId(id) => format!("/-/npm/v1/hooks/hook/{}", e(&id.0)),
        };
        let keys = self.query_keys();
        if let (Some(q), false) = (query, keys.is_empty()) {
            let kept: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, v)| keys.contains(&k.as_ref()) && v.len() <= MAX_QUERY_VALUE)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if !kept.is_empty() {
                p.push('?');
                p.push_str(
                    &url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(kept)
                        .finish(),
                );
            }
        }
        p
    }
}

/// Characters escaped in a rebuilt path segment: everything but npm's URL-safe set (so a
/// `/`, `\`, `%`, `?`, `#` or `.`-only segment can't change the path's meaning).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'!')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b':')
    .remove(b'@')
    .remove(b'+');

/// A package name as one path segment, npm's way: `@scope%2fname`.
pub fn package_segment(n: &PackageName) -> String {
    match n.scope() {
        Some(scope) => format!("{scope}%2f{}", n.unscoped()),
        None => n.as_str().to_string(),
    }
}
