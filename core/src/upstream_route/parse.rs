//! Routing a path under `/-/` to a `Forwarded` endpoint: the allow-list of exact routes,
//! each parameter percent-decoded and validated (names by npm's rules, identifiers and
//! secrets by character set and length, versions by semver). Anything else is refused or
//! left to nproxy's own routing.

use crate::names::PackageName;

use super::{Forwarded, Ident, Secret, UpstreamRouteError};

const MAX_IDENT: usize = 214;
const MAX_SECRET: usize = 512;

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
    crate::names::is_rev(&s)
        .then_some(s)
        .ok_or(UpstreamRouteError::BadParam)
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
