//! An org's config as the data plane holds it (from the control plane's snapshot), and
//! who a request is: token checks against it.

use std::collections::HashMap;
use std::sync::Arc;

use nproxy_common::secret::SecretDigest;
use nproxy_proto::tokens::nproxy_bearer;
use nproxy_proto::v1::{OrgConfigSnapshot, TokenScope};

use crate::org::error::AuthError;
use nproxy_core::names::PackageName;

#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub token_id: String,
    pub name: String,
    pub scopes: Vec<TokenScope>,
    pub expires_at_ms: Option<i64>,
    /// Not empty: the only (internal) packages the token is good for; it reads nothing
    /// else, public packages included (tokens minted by trusted publishing).
    pub packages: Vec<String>,
}

impl TokenGrant {
    /// Whether the token may be used for `name` at all (its scopes decide the rest).
    pub fn covers_package(&self, name: &PackageName) -> bool {
        self.packages.is_empty() || self.packages.iter().any(|p| p == name.as_str())
    }
}

#[derive(Debug)]
pub struct OrgConfig {
    pub org_id: String,
    pub slug: String,
    pub version: u64,
    pub internal_scopes: Vec<String>,
    pub public_reads: bool,
    /// Keyed by the token's digest; lookups compare keys in constant time.
    tokens: HashMap<SecretDigest, TokenGrant>,
    pub rules: Arc<nproxy_core::rules::Rules>,
    /// Package → versions an admin allowed despite the rules.
    pub exceptions: HashMap<String, Arc<std::collections::HashSet<String>>>,
    /// The org's npm-format signing keys as `/-/npm/v1/keys` lists them (retired ones with
    /// `expires`: what they signed before keeps verifying).
    pub npm_keys: Vec<serde_json::Value>,
    /// Names this org fetches from another registry than the data plane's upstream.
    pub upstream_routes: Vec<RouteEntry>,
}

/// An org's upstream route as the data plane holds it (the credential is fetched from the
/// control plane separately and never kept here).
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub id: String,
    pub pattern: nproxy_proto::upstream_pattern::Pattern,
    pub url: url::Url,
    pub has_credential: bool,
    pub version: i64,
}

impl OrgConfig {
    pub fn from_snapshot(s: OrgConfigSnapshot) -> OrgConfig {
        let rules = Arc::new(
            s.rules
                .as_ref()
                .map(crate::rules::pb::rules_from_pb)
                .unwrap_or_default(),
        );
        let mut exceptions: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        for e in &s.exceptions {
            exceptions
                .entry(e.package.clone())
                .or_default()
                .insert(e.version.clone());
        }
        let exceptions = exceptions
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        let tokens = s
            .tokens
            .into_iter()
            .filter_map(|t| {
                if t.sha256.len() != 32 {
                    return None;
                }
                Some((
                    SecretDigest::from_bytes(&t.sha256),
                    TokenGrant {
                        token_id: t.token_id,
                        name: t.name,
                        scopes: t
                            .scopes
                            .iter()
                            .filter_map(|v| TokenScope::try_from(*v).ok())
                            .collect(),
                        expires_at_ms: t.expires_at_ms,
                        packages: t.packages,
                    },
                ))
            })
            .collect();
        let npm_keys = s
            .signing_keys
            .iter()
            .filter(|k| k.algorithm == "ecdsa-p256")
            .map(|k| {
                use base64::Engine;
                serde_json::json!({
                    "expires": k.retired_at_ms.map(nproxy_core::internal::iso_from_ms),
                    "keyid": k.key_id,
                    "keytype": "ecdsa-sha2-nistp256",
                    "scheme": "ecdsa-sha2-nistp256",
                    "key": base64::engine::general_purpose::STANDARD.encode(&k.public_key),
                })
            })
            .collect();
        let upstream_routes = s
            .upstream_routes
            .iter()
            .filter_map(|r| {
                let pattern = nproxy_proto::upstream_pattern::parse(&r.pattern).ok();
                let url = url::Url::parse(&r.url).ok();
                if pattern.is_none() || url.is_none() {
                    tracing::warn!(org = %s.slug, route = %r.id, "ignoring an upstream route this data plane can't read");
                }
                Some(RouteEntry {
                    id: r.id.clone(),
                    pattern: pattern?,
                    url: url?,
                    has_credential: r.has_credential,
                    version: r.version,
                })
            })
            .collect();
        OrgConfig {
            org_id: s.org_id,
            slug: s.slug,
            version: s.version,
            internal_scopes: s.internal_scopes,
            public_reads: s.public_reads,
            tokens,
            rules,
            exceptions,
            npm_keys,
            upstream_routes,
        }
    }

    /// The upstream route `name` resolves to (`None`: the data plane's own upstream). A name
    /// resolves to exactly one upstream; nothing falls through to another.
    pub fn route_for(&self, name: &PackageName) -> Option<&RouteEntry> {
        let i = nproxy_proto::upstream_pattern::resolve(
            self.upstream_routes.iter().map(|r| &r.pattern),
            name.as_str(),
        )?;
        self.upstream_routes.get(i)
    }

    /// Whether the config holds this token (valid or not): an unknown one may be newer.
    pub fn knows_token(&self, secret: &str) -> bool {
        self.tokens
            .contains_key(&SecretDigest::sha256(secret.as_bytes()))
    }

    /// Whether a package belongs to the org's own scopes (exact scope match).
    pub fn is_internal(&self, name: &PackageName) -> bool {
        name.scope().is_some_and(|s| {
            self.internal_scopes
                .iter()
                .any(|i| i.eq_ignore_ascii_case(s))
        })
    }
}

/// How a request's org is known.
#[derive(Clone)]
pub enum OrgView {
    /// No config source: anonymous access to public packages.
    Open,
    Configured(Arc<OrgConfig>),
}

/// The outcome of checking a request's credentials.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    Token(TokenGrant),
}

use nproxy_common::time::now_ms;

impl OrgView {
    /// Internal packages always need a token, whatever the public-reads setting.
    pub fn authorize_internal(
        &self,
        authorization: Option<&str>,
        needed: TokenScope,
        name: &PackageName,
    ) -> Result<TokenGrant, AuthError> {
        match self.check(authorization, needed)? {
            Principal::Token(g) if !g.covers_package(name) => Err(AuthError::NotForPackage {
                token: g.name,
                name: name.to_string(),
            }),
            Principal::Token(g) => Ok(g),
            Principal::Anonymous => Err(AuthError::InternalNeedsToken {
                name: name.to_string(),
                scope: needed.label(),
            }),
        }
    }

    /// A presented nproxy token must be valid wherever it is sent, even on routes nproxy
    /// itself does not authorize (forwarded ones): never silently treated as anonymous.
    pub fn check_presented(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        match nproxy_bearer(authorization) {
            Some(_) => self
                .check(authorization, TokenScope::Unspecified)
                .map(|_| ())
                .or_else(|e| match e {
                    // Valid, only without a scope this check does not ask for.
                    AuthError::MissingScope { .. } => Ok(()),
                    other => Err(other),
                }),
            None => Ok(()),
        }
    }

    /// Checks the request's token for `needed` access to public packages (and org-wide
    /// routes): a token limited to some packages is good for none of them.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        needed: TokenScope,
    ) -> Result<Principal, AuthError> {
        match self.check(authorization, needed)? {
            Principal::Token(g) if !g.packages.is_empty() => Err(AuthError::OnlyForPackages {
                token: g.name,
                packages: g.packages.join(", "),
            }),
            p => Ok(p),
        }
    }

    /// The token's validity and scope, whatever it is used for.
    fn check(
        &self,
        authorization: Option<&str>,
        needed: TokenScope,
    ) -> Result<Principal, AuthError> {
        let OrgView::Configured(cfg) = self else {
            return Ok(Principal::Anonymous);
        };
        let principal = match nproxy_bearer(authorization) {
            Some(token) => {
                let grant = cfg
                    .tokens
                    .get(&SecretDigest::sha256(token.as_bytes()))
                    .ok_or(AuthError::InvalidToken)?;
                if grant.expires_at_ms.is_some_and(|e| e <= now_ms()) {
                    return Err(AuthError::Expired(grant.name.clone()));
                }
                Principal::Token(grant.clone())
            }
            None => Principal::Anonymous,
        };
        match &principal {
            Principal::Token(g) if g.scopes.iter().any(|s| s.covers(needed)) => Ok(principal),
            Principal::Token(g) => Err(AuthError::MissingScope {
                name: g.name.clone(),
                scope: needed.label(),
            }),
            Principal::Anonymous if cfg.public_reads && needed == TokenScope::Proxy => {
                Ok(principal)
            }
            Principal::Anonymous => Err(AuthError::Required(needed.label())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nproxy_proto::v1::TokenEntry;
    use sha2::{Digest, Sha256};

    fn view(public_reads: bool, tokens: Vec<(&str, Vec<TokenScope>, Option<i64>)>) -> OrgView {
        let snap = OrgConfigSnapshot {
            org_id: "o1".into(),
            slug: "acme".into(),
            version: 3,
            internal_scopes: vec!["@acme".into()],
            public_reads,
            tokens: tokens
                .into_iter()
                .map(|(secret, scopes, exp)| TokenEntry {
                    token_id: format!("id-{secret}"),
                    name: format!("name-{secret}"),
                    sha256: Sha256::digest(secret.as_bytes()).to_vec(),
                    scopes: scopes.into_iter().map(|s| s as i32).collect(),
                    expires_at_ms: exp,
                    packages: Vec::new(),
                })
                .collect(),
            ..Default::default()
        };
        OrgView::Configured(Arc::new(OrgConfig::from_snapshot(snap)))
    }

    #[test]
    fn public_reads_and_tokens() {
        let open = view(true, vec![("nproxy_a", vec![TokenScope::Proxy], None)]);
        assert!(matches!(
            open.authorize(None, TokenScope::Proxy),
            Ok(Principal::Anonymous)
        ));
        assert!(matches!(
            open.authorize(Some("Bearer nproxy_a"), TokenScope::Proxy),
            Ok(Principal::Token(_))
        ));
        // A wrong nproxy token is refused even where anonymous reads are allowed.
        assert!(matches!(
            open.authorize(Some("Bearer nproxy_b"), TokenScope::Proxy),
            Err(AuthError::InvalidToken
                | AuthError::Required(_)
                | AuthError::InternalNeedsToken { .. })
        ));
        // Someone else's token is not ours to judge.
        assert!(matches!(
            open.authorize(Some("Bearer npm_xyz"), TokenScope::Proxy),
            Ok(Principal::Anonymous)
        ));

        let closed = view(
            false,
            vec![
                ("nproxy_a", vec![TokenScope::Proxy], None),
                ("nproxy_p", vec![TokenScope::Publish], None),
                ("nproxy_old", vec![TokenScope::Proxy], Some(1)),
            ],
        );
        assert!(matches!(
            closed.authorize(None, TokenScope::Proxy),
            Err(AuthError::InvalidToken
                | AuthError::Required(_)
                | AuthError::InternalNeedsToken { .. })
        ));
        assert!(closed
            .authorize(Some("Bearer nproxy_a"), TokenScope::Proxy)
            .is_ok());
        assert!(
            closed
                .authorize(Some("Bearer nproxy_p"), TokenScope::Proxy)
                .is_ok(),
            "publish includes read"
        );
        assert!(matches!(
            closed.authorize(Some("Bearer nproxy_a"), TokenScope::Publish),
            Err(AuthError::MissingScope { .. })
        ));
        assert!(matches!(
            closed.authorize(Some("Bearer nproxy_old"), TokenScope::Proxy),
            Err(AuthError::Expired(_))
        ));
    }

    #[test]
    fn internal_scopes_match_exactly() {
        let OrgView::Configured(c) = view(true, vec![]) else {
            unreachable!()
        };
        assert!(c.is_internal(&PackageName::parse("@acme/utils").unwrap()));
        assert!(!c.is_internal(&PackageName::parse("@acme-corp/utils").unwrap()));
        assert!(!c.is_internal(&PackageName::parse("acme").unwrap()));
    }
}

#[cfg(test)]
mod package_tokens {
    use super::*;
    use nproxy_proto::v1::{PublicKey, TokenEntry};
    use sha2::{Digest, Sha256};

    fn cfg() -> OrgView {
        let snap = OrgConfigSnapshot {
            org_id: "o1".into(),
            slug: "acme".into(),
            internal_scopes: vec!["@acme".into()],
            public_reads: true,
            tokens: vec![TokenEntry {
                token_id: "t".into(),
                name: "oidc acme/app".into(),
                sha256: Sha256::digest(b"nproxy_ci").to_vec(),
                scopes: vec![TokenScope::Publish as i32],
                expires_at_ms: None,
                packages: vec!["@acme/app".into()],
            }],
            signing_keys: vec![
                PublicKey {
                    key_id: "SHA256:ed".into(),
                    public_key: vec![1; 32],
                    active: true,
                    ..Default::default()
                },
                PublicKey {
                    key_id: "SHA256:old".into(),
                    public_key: vec![2; 91],
                    algorithm: "ecdsa-p256".into(),
                    retired_at_ms: Some(0),
                    ..Default::default()
                },
                PublicKey {
                    key_id: "SHA256:new".into(),
                    public_key: vec![3; 91],
                    active: true,
                    algorithm: "ecdsa-p256".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        OrgView::Configured(Arc::new(OrgConfig::from_snapshot(snap)))
    }

    /// A trusted-publishing token is good for its package and nothing else: not another
    /// internal package, not public reads (even where anonymous reads are allowed, a
    /// presented token is judged), but it is a valid token wherever one is presented.
    #[test]
    fn a_package_token_reaches_only_its_package() {
        let v = cfg();
        let app = PackageName::parse("@acme/app").unwrap();
        let other = PackageName::parse("@acme/other").unwrap();
        let auth = Some("Bearer nproxy_ci");
        assert!(v
            .authorize_internal(auth, TokenScope::Publish, &app)
            .is_ok());
        assert!(v.authorize_internal(auth, TokenScope::Proxy, &app).is_ok());
        assert!(matches!(
            v.authorize_internal(auth, TokenScope::Publish, &other),
            Err(AuthError::NotForPackage { .. })
        ));
        assert!(matches!(
            v.authorize(auth, TokenScope::Proxy),
            Err(AuthError::OnlyForPackages { .. })
        ));
        assert!(v.check_presented(auth).is_ok());
    }

    #[test]
    fn npm_keys_are_the_ecdsa_ones_with_retired_ones_expiring() {
        let OrgView::Configured(c) = cfg() else {
            unreachable!()
        };
        let ids: Vec<&str> = c
            .npm_keys
            .iter()
            .filter_map(|k| k["keyid"].as_str())
            .collect();
        assert_eq!(ids, vec!["SHA256:old", "SHA256:new"]);
        assert_eq!(c.npm_keys[0]["expires"], "1970-01-01T00:00:00.000Z");
        assert!(c.npm_keys[1]["expires"].is_null());
        assert_eq!(c.npm_keys[1]["keytype"], "ecdsa-sha2-nistp256");
        assert!(c.knows_token("nproxy_ci") && !c.knows_token("nproxy_other"));
    }
}
