//! The npm endpoints nproxy does not own and passes to the upstream: an allow-list of exact
//! routes and methods, each parameter decoded and validated, and the URL sent upstream
//! rebuilt from those parts (never the client's raw text, which an HTTP client would
//! normalise: `/-/v1/search/%2e%2e/x` must never become `/x` upstream). Pure: no I/O.
//!
//! The list keeps every npm command working through nproxy: login (web and legacy),
//! logout, profile, token, access, owner, org, team, star, search, audit, keys,
//! attestations, hooks, trust and the trusted-publishing token exchange. Which commands send
//! what is in `docs/research/forward-routes.md`.

use http::Method;

use crate::names::PackageName;

/// A forwarded endpoint with its validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// `POST /-/v1/login`: web login starts.
    Login,
    /// `GET /-/v1/done?sessionId=…|authId=…`: web login (or web OTP) polling.
    LoginDone,
    /// `GET|PUT /-/user/org.couchdb.user:{user}`: legacy login, owner lookups.
    CouchUser(Ident),
    /// `PUT /-/user/org.couchdb.user:{user}/-rev/{rev}`: legacy login after a 409.
    CouchUserRev(Ident, String),
    /// `DELETE /-/user/token/{token}`: logout.
    Logout(Secret),
    /// `GET /-/user/{user}/package`: `access list packages` for a user.
    UserPackages(Ident),
    /// `GET|POST /-/npm/v1/user`: profile.
    Profile,
    /// `GET|POST /-/npm/v1/tokens`: token list and create.
    Tokens,
    /// `DELETE /-/npm/v1/tokens/token/{key}`: token revoke.
    Token(Secret),
    /// `GET /-/package/{name}/visibility`
    Visibility(PackageName),
    /// `POST /-/package/{name}/access`
    Access(PackageName),
    /// `GET /-/package/{name}/collaborators`
    Collaborators(PackageName),
    /// `GET|POST /-/package/{name}/trust`
    Trust(PackageName),
    /// `DELETE /-/package/{name}/trust/{id}`
    TrustId(PackageName, Ident),
    /// `GET /-/org/{org}/package`
    OrgPackages(Ident),
    /// `GET|PUT|DELETE /-/org/{org}/user`
    OrgUsers(Ident),
    /// `GET|PUT /-/org/{scope}/team`
    OrgTeams(Ident),
    /// `DELETE /-/team/{scope}/{team}`
    Team(Ident, Ident),
    /// `GET|PUT|DELETE /-/team/{scope}/{team}/package`
    TeamPackages(Ident, Ident),
    /// `GET|PUT|DELETE /-/team/{scope}/{team}/user`
    TeamUsers(Ident, Ident),
    /// `GET /-/_view/starredByUser?key="…"`
    StarredByUser,
    /// `GET /-/v1/search`
    Search,
    /// `POST /-/npm/v1/security/advisories/bulk` (answered with nproxy's advisories too).
    AuditBulk,
    /// `POST /-/npm/v1/security/audits/quick` (npm's fallback) and `/audits` (npm 6).
    AuditQuick,
    AuditFull,
    /// `GET /-/npm/v1/keys`
    Keys,
    /// `GET /-/npm/v1/attestations/{name}@{version}`
    Attestations(PackageName, semver::Version),
    /// `POST /-/npm/v1/oidc/token/exchange/package/{name}`: trusted publishing.
    OidcExchange(PackageName),
    /// `GET /-/npm/v1/hooks`, `POST /-/npm/v1/hooks/hook`, `GET|PUT|DELETE …/hook/{id}`.
    Hooks,
    Hook,
    HookId(Ident),
}

/// A name-like path parameter (user, org, scope, team, id): URL-safe characters only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

/// A path parameter that is a secret (a token or its key): never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why a path under a forwarded prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamRouteError {
    #[error("not found")]
    NotFound,
    #[error("invalid path parameter")]
    BadParam,
}

const MAX_IDENT: usize = 214;
const MAX_SECRET: usize = 512;
const MAX_QUERY_VALUE: usize = 1024;

fn decode(seg: &str) -> Result<String, UpstreamRouteError> {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| UpstreamRouteError::BadParam)
}

fn ident(seg: &str) -> Result<Ident, UpstreamRouteError> {
    let s = decode(seg)?;
    let s = s.strip_prefix('@').unwrap_or(&s).to_string();
    let ok = !s.is_empty()
        && s.len() <= MAX_IDENT
        && !s.starts_with('.')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '.' | '_' | '~' | '!' | '*' | '\'' | '(' | ')')
        });
    ok.then_some(Ident(s)).ok_or(UpstreamRouteError::BadParam)
}

fn secret(seg: &str) -> Result<Secret, UpstreamRouteError> {
    let s = decode(seg)?;
    let ok = !s.is_empty()
        && s.len() <= MAX_SECRET
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    ok.then_some(Secret(s)).ok_or(UpstreamRouteError::BadParam)
}

fn rev(seg: &str) -> Result<String, UpstreamRouteError> {
    let s = decode(seg)?;
    let ok = s.len() <= 80
        && s.split_once('-').is_some_and(|(n, h)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && !h.is_empty()
                && h.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    ok.then_some(s).ok_or(UpstreamRouteError::BadParam)
}

/// A package name from one segment (`@scope%2fname`, `name`) or two (`@scope`, `name`);
/// returns the name and the segments left.
fn package<'a>(segs: &'a [&'a str]) -> Result<(PackageName, &'a [&'a str]), UpstreamRouteError> {
    let first = decode(segs.first().ok_or(UpstreamRouteError::NotFound)?)?;
    let (name, rest) = if first.starts_with('@') && !first.contains('/') {
        let second = decode(segs.get(1).ok_or(UpstreamRouteError::NotFound)?)?;
        (format!("{first}/{second}"), &segs[2..])
    } else {
        (first, &segs[1..])
    };
    let name = PackageName::parse(&name).map_err(|_| UpstreamRouteError::BadParam)?;
    Ok((name, rest))
}

/// Routes a path relative to the registry root (still percent-encoded, no query). `None`:
/// not a forwarded endpoint at all (the caller routes it as one of nproxy's own).
pub fn route(path: &str) -> Option<Result<Forwarded, UpstreamRouteError>> {
    use Forwarded as U;
    let rest = path.strip_prefix("/-/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let r = match segs.as_slice() {
        ["v1", "login"] => Ok(U::Login),
        ["v1", "done"] => Ok(U::LoginDone),
        ["v1", "search"] => Ok(U::Search),
        ["_view", "starredByUser"] => Ok(U::StarredByUser),
        ["user", "token", t] => secret(t).map(U::Logout),
        ["user", u, "package"] => ident(u).map(U::UserPackages),
        ["user", cu] | ["user", cu, "-rev", _] => {
            let Some(user) = cu.strip_prefix("org.couchdb.user:") else {
                return Some(Err(UpstreamRouteError::NotFound));
            };
            match segs.as_slice() {
                [_, _, "-rev", r] => ident(user).and_then(|u| Ok(U::CouchUserRev(u, rev(r)?))),
                _ => ident(user).map(U::CouchUser),
            }
        }
        ["npm", "v1", "user"] => Ok(U::Profile),
        ["npm", "v1", "tokens"] => Ok(U::Tokens),
        ["npm", "v1", "tokens", "token", k] => secret(k).map(U::Token),
        ["npm", "v1", "keys"] => Ok(U::Keys),
        ["npm", "v1", "security", "advisories", "bulk"] => Ok(U::AuditBulk),
        ["npm", "v1", "security", "audits", "quick"] => Ok(U::AuditQuick),
        ["npm", "v1", "security", "audits"] => Ok(U::AuditFull),
        ["npm", "v1", "hooks"] => Ok(U::Hooks),
        ["npm", "v1", "hooks", "hook"] => Ok(U::Hook),
        ["npm", "v1", "hooks", "hook", id] => ident(id).map(U::HookId),
        ["npm", "v1", "attestations", spec @ ..] => attestation(spec),
        ["npm", "v1", "oidc", "token", "exchange", "package", name @ ..] => match package(name) {
            Ok((n, [])) => Ok(U::OidcExchange(n)),
            Ok(_) => Err(UpstreamRouteError::NotFound),
            Err(e) => Err(e),
        },
        ["package", tail @ ..] => match package(tail) {
            Ok((n, ["visibility"])) => Ok(U::Visibility(n)),
            Ok((n, ["access"])) => Ok(U::Access(n)),
            Ok((n, ["collaborators"])) => Ok(U::Collaborators(n)),
            Ok((n, ["trust"])) => Ok(U::Trust(n)),
            Ok((n, ["trust", id])) => ident(id).map(|id| U::TrustId(n, id)),
            // `dist-tags` and anything else under /-/package/ is nproxy's own routing.
            Ok(_) | Err(_) => return None,
        },
        ["org", o, "package"] => ident(o).map(U::OrgPackages),
        ["org", o, "user"] => ident(o).map(U::OrgUsers),
        ["org", o, "team"] => ident(o).map(U::OrgTeams),
        ["team", s, t] => ident(s).and_then(|s| Ok(U::Team(s, ident(t)?))),
        ["team", s, t, "package"] => ident(s).and_then(|s| Ok(U::TeamPackages(s, ident(t)?))),
        ["team", s, t, "user"] => ident(s).and_then(|s| Ok(U::TeamUsers(s, ident(t)?))),
        _ => return None,
    };
    Some(r)
}

fn attestation(spec: &[&str]) -> Result<Forwarded, UpstreamRouteError> {
    // `{name}@{version}`, the name possibly scoped over two segments.
    let joined = spec
        .iter()
        .map(|s| decode(s))
        .collect::<Result<Vec<_>, _>>()?
        .join("/");
    let at = joined
        .rfind('@')
        .filter(|i| *i > 0)
        .ok_or(UpstreamRouteError::BadParam)?;
    let name = PackageName::parse(&joined[..at]).map_err(|_| UpstreamRouteError::BadParam)?;
    let v = &joined[at + 1..];
    if v.len() > crate::names::MAX_VERSION_LEN {
        return Err(UpstreamRouteError::BadParam);
    }
    let version = semver::Version::parse(v).map_err(|_| UpstreamRouteError::BadParam)?;
    Ok(Forwarded::Attestations(name, version))
}

/// Who may call a forwarded endpoint, as far as nproxy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Getting credentials: nobody has an nproxy identity yet (login, the CI token exchange).
    Anyone,
    /// Reads of public registry data: the org's public-read rule applies.
    PublicRead,
    /// The user's own upstream account (profile, tokens, access, orgs): the upstream
    /// authenticates it with the user's upstream token; nproxy adds nothing.
    UpstreamAccount,
}

impl Forwarded {
    /// The methods the endpoint answers.
    pub fn allows(&self, m: &Method) -> bool {
        use Forwarded as U;
        let get = m == Method::GET || m == Method::HEAD;
        let (put, post, delete) = (m == Method::PUT, m == Method::POST, m == Method::DELETE);
        match self {
            U::Login | U::AuditBulk | U::AuditQuick | U::AuditFull | U::OidcExchange(_) => post,
            U::Hook | U::Access(_) => post,
            U::LoginDone
            | U::UserPackages(_)
            | U::Visibility(_)
            | U::Collaborators(_)
            | U::OrgPackages(_)
            | U::StarredByUser
            | U::Search
            | U::Keys
            | U::Attestations(..)
            | U::Hooks => get,
            U::CouchUser(_) => get || put,
            U::CouchUserRev(..) => put,
            U::Logout(_) | U::Token(_) | U::TrustId(..) | U::Team(..) => delete,
            U::Profile | U::Tokens | U::Trust(_) => get || post,
            U::OrgUsers(_) | U::TeamPackages(..) | U::TeamUsers(..) => get || put || delete,
            U::OrgTeams(_) => get || put,
            U::HookId(_) => get || put || delete,
        }
    }

    pub fn gate(&self) -> Gate {
        use Forwarded as U;
        match self {
            U::Login
            | U::LoginDone
            | U::CouchUser(_)
            | U::CouchUserRev(..)
            | U::OidcExchange(_) => Gate::Anyone,
            U::Search
            | U::StarredByUser
            | U::AuditBulk
            | U::AuditQuick
            | U::AuditFull
            | U::Keys
            | U::Attestations(..) => Gate::PublicRead,
            _ => Gate::UpstreamAccount,
        }
    }

    /// The package the endpoint is about, if any (internal names never leave nproxy).
    pub fn package(&self) -> Option<&PackageName> {
        use Forwarded as U;
        match self {
            U::Visibility(n)
            | U::Access(n)
            | U::Collaborators(n)
            | U::Trust(n)
            | U::TrustId(n, _)
            | U::Attestations(n, _)
            | U::OidcExchange(n) => Some(n),
            _ => None,
        }
    }

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

    /// A short label for metrics and logs (never a parameter).
    pub fn label(&self) -> &'static str {
        use Forwarded as U;
        match self {
            U::Login | U::LoginDone | U::CouchUser(_) | U::CouchUserRev(..) | U::Logout(_) => {
                "login"
            }
            U::Profile | U::Tokens | U::Token(_) => "profile",
            U::Search => "search",
            U::AuditBulk | U::AuditQuick | U::AuditFull => "audit",
            U::Keys | U::Attestations(..) => "signatures",
            U::OidcExchange(_) => "oidc",
            _ => "account",
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

/// Points the `doneUrl` of a web login (or web OTP) answer at nproxy instead of the
/// upstream, so npm polls through nproxy (older npm polls the URL as given, which needs
/// direct egress and misses the token it keeps for nproxy). Only a `doneUrl` on the
/// upstream's own base with the path `/-/v1/done` is rewritten; `None`: nothing to change.
pub fn rewrite_done_url(body: &[u8], upstream_base: &str, public_base: &str) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let done = v.get("doneUrl")?.as_str()?;
    let rest = done.strip_prefix(upstream_base)?;
    let query = rest.strip_prefix("/-/v1/done")?;
    if !(query.is_empty() || query.starts_with('?')) {
        return None;
    }
    v["doneUrl"] = serde_json::Value::String(format!("{public_base}/-/v1/done{query}"));
    serde_json::to_vec(&v).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn up(path: &str) -> Result<Forwarded, UpstreamRouteError> {
        route(path).expect("a forwarded prefix")
    }

    /// The attack campaign's paths: dot segments after a forwarded prefix.
    #[test]
    fn dot_segments_never_route() {
        for p in [
            "/-/user/org.couchdb.user:x/%2e%2e/%2e%2e/%2e%2e/ms",
            "/-/npm/v1/security/%2e%2e/%2e%2e/%2e%2e/ms/-/ms-1.0.0.tgz",
            "/-/v1/search/../../x",
            "/-/v1/login/%2e%2e/%2e%2e/ms",
            "/-/npm/v1/keys/../tokens",
            "/-/npm/v1/keys%2f..%2f..%2fms",
            "/-/org/%2e%2e/user",
            "/-/team/a/%2e%2e/user",
            "/-/user/..%5c..%5cms/package",
            "/-/npm/v1/tokens/token/..%2f..%2fms",
        ] {
            let r = route(p);
            assert!(!matches!(r, Some(Ok(_))), "{p} routed to {r:?}");
        }
    }

    #[test]
    fn upstream_paths_are_rebuilt_from_parts() {
        assert_eq!(
            up("/-/v1/login").unwrap().upstream_path(None),
            "/-/v1/login"
        );
        assert_eq!(
            up("/-/v1/search")
                .unwrap()
                .upstream_path(Some("text=a%20b&size=20&evil=1")),
            "/-/v1/search?text=a+b&size=20"
        );
        assert_eq!(
            up("/-/user/org.couchdb.user:alice")
                .unwrap()
                .upstream_path(Some("write=true")),
            "/-/user/org.couchdb.user:alice?write=true"
        );
        assert_eq!(
            up("/-/user/org.couchdb.user:alice/-rev/3-abc").unwrap(),
            Forwarded::CouchUserRev(Ident("alice".into()), "3-abc".into())
        );
        for p in [
            "/-/package/@acme%2Fx/access",
            "/-/package/@acme/x/access",
            "/-/package/%40acme%2fx/access",
        ] {
            assert_eq!(
                up(p).unwrap().upstream_path(None),
                "/-/package/@acme%2fx/access",
                "{p}"
            );
        }
        assert_eq!(
            up("/-/npm/v1/attestations/@acme%2fx@1.2.3")
                .unwrap()
                .upstream_path(None),
            "/-/npm/v1/attestations/@acme%2fx@1.2.3"
        );
        assert_eq!(
            up("/-/npm/v1/oidc/token/exchange/package/@acme%2fx").unwrap(),
            Forwarded::OidcExchange(PackageName::parse("@acme/x").unwrap())
        );
        assert_eq!(
            up("/-/team/@acme/devs/user")
                .unwrap()
                .upstream_path(Some("format=cli")),
            "/-/team/acme/devs/user?format=cli"
        );
        assert_eq!(
            up("/-/v1/done")
                .unwrap()
                .upstream_path(Some("sessionId=abc-123&x=y")),
            "/-/v1/done?sessionId=abc-123"
        );
    }

    #[test]
    fn methods_are_an_allow_list() {
        assert!(up("/-/v1/search").unwrap().allows(&Method::GET));
        assert!(!up("/-/v1/search").unwrap().allows(&Method::DELETE));
        assert!(!up("/-/npm/v1/keys").unwrap().allows(&Method::PUT));
        assert!(up("/-/npm/v1/security/advisories/bulk")
            .unwrap()
            .allows(&Method::POST));
        assert!(!up("/-/npm/v1/security/advisories/bulk")
            .unwrap()
            .allows(&Method::GET));
        assert!(up("/-/org/acme/user").unwrap().allows(&Method::DELETE));
    }

    #[test]
    fn unknown_forwarded_looking_paths() {
        assert_eq!(up("/-/user/bob"), Err(UpstreamRouteError::NotFound));
        assert!(route("/-/whatever").is_none());
        assert!(route("/lodash").is_none());
        assert!(route("/-/package/lodash/dist-tags").is_none());
        assert_eq!(
            up("/-/npm/v1/tokens/token/a%00b"),
            Err(UpstreamRouteError::BadParam)
        );
        assert_eq!(
            up("/-/npm/v1/attestations/x@notsemver"),
            Err(UpstreamRouteError::BadParam)
        );
    }

    #[test]
    fn done_urls_point_at_nproxy() {
        let body = br#"{"loginUrl":"https://web.example/login/x","doneUrl":"https://up.example/r/-/v1/done?sessionId=abc"}"#;
        let out = rewrite_done_url(body, "https://up.example/r", "http://np:4873/acme").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["doneUrl"], "http://np:4873/acme/-/v1/done?sessionId=abc");
        assert_eq!(v["loginUrl"], "https://web.example/login/x");
        // Another host's URL, or another path, is left alone.
        let other = br#"{"doneUrl":"https://elsewhere.example/-/v1/done?sessionId=abc"}"#;
        assert!(rewrite_done_url(other, "https://up.example/r", "http://np").is_none());
        let path = br#"{"doneUrl":"https://up.example/r/-/v1/doneX"}"#;
        assert!(rewrite_done_url(path, "https://up.example/r", "http://np").is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let r = up("/-/npm/v1/tokens/token/npm_secretvalue").unwrap();
        assert!(!format!("{r:?}").contains("secretvalue"));
    }
}
