//! The npm endpoints nproxy does not own and passes to the upstream: an allow-list of exact
//! routes and methods, each parameter decoded and validated, and the URL sent upstream
//! rebuilt from those parts (never the client's raw text, which an HTTP client would
//! normalise: `/-/v1/search/%2e%2e/x` must never become `/x` upstream). Pure: no I/O.
//!
//! The list keeps every npm command working through nproxy: login (web and legacy),
//! logout, profile, token, access, owner, org, team, star, search, audit, keys,
//! attestations, hooks, trust and the trusted-publishing token exchange. Which commands send
//! what is in `docs/research/forward-routes.md`.
//!
//! Where things are: this file holds the endpoint types (`Forwarded` and its parameters);
//! `parse` routes a path to one, validating every parameter; `policy` says which methods
//! each answers and who may call it (`Gate`); `rebuild` builds the path and query sent
//! upstream from the validated parts; `done_url` rewrites the one answer nproxy edits on
//! its way back (web login's `doneUrl`).

use crate::names::PackageName;

mod done_url;
mod parse;
mod policy;
mod rebuild;

pub use done_url::rewrite_done_url;
pub use parse::route;
pub use policy::Gate;
pub use rebuild::package_segment;

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

#[cfg(test)]
mod tests;
