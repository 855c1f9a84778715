//! What nproxy allows on each forwarded endpoint: the methods it answers, who may call it
//! (`Gate`), the package it is about (internal names never leave nproxy), and its label for
//! metrics and logs.

use http::Method;

use crate::names::PackageName;

use super::Forwarded;

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
}
