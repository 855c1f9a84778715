//! Issue 9's authorization matrix: every route × every kind of credential × public reads
//! on and off × public and internal packages, asserting the exact outcome. The route
//! column comes from an exhaustive `match` over the data plane's own route types
//! (`class_of`): a new route does not compile until it has a policy here, and a route
//! without a sample request fails `every_route_kind_has_a_sample`.
//!
//! The policy:
//! - a presented nproxy token that is malformed, revoked, expired or of another org gets
//!   401 on every route (never silently anonymous);
//! - a non-nproxy bearer (an upstream token) counts as anonymous to nproxy and is passed
//!   only to forwarded routes;
//! - internal packages need an nproxy token (`proxy` to read, `publish` to write) whatever
//!   the public-reads setting; public reads need one only when public reads are off;
//! - writes to public packages need an upstream credential (nothing is relayed without);
//! - login and account endpoints go to the upstream, which authenticates them;
//! - the trusted-publishing exchange is answered by nproxy and takes only a CI job's OIDC
//!   id token (none of the credentials here is one: 401).

use std::collections::BTreeSet;
use std::time::Duration;

use nproxy_core::route::{route, Route};
use nproxy_core::upstream_route::Forwarded;
use nproxy_tests::eventually;
use nproxy_tests::fixtures::publish_payload;

use crate::control_plane::{status, Stack};
use crate::support::raw_http;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Health: answered for anyone.
    Open,
    /// Public package data (cached or forwarded): the public-reads rule.
    PublicRead,
    InternalRead,
    InternalWrite,
    /// Writes to public packages: relayed with an upstream credential only.
    PublicWrite,
    /// Login, the user's upstream account: the upstream decides.
    Upstream,
    /// Trusted publishing's token exchange: an OIDC id token or nothing.
    TokenExchange,
    /// Answered locally for an nproxy token, forwarded otherwise.
    Whoami,
}

/// The policy class of a routed request, by exhaustive match over the route types.
fn class_of(r: &Route, method: &str, internal: bool) -> (&'static str, Class) {
    let read = method == "GET" || method == "HEAD";
    match r {
        Route::Ping => ("ping", Class::Open),
        Route::Whoami => ("whoami", Class::Whoami),
        Route::Explain(_) if internal => ("explain", Class::InternalRead),
        Route::Explain(_) => ("explain", Class::PublicRead),
        Route::Packument(_) | Route::Tarball(..) | Route::DistTags(_) if internal => {
            let k = match r {
                Route::Packument(_) if !read => "publish",
                Route::Packument(_) => "packument",
                Route::Tarball(..) => "tarball",
                _ => "dist-tags",
            };
            (
                k,
                if read {
                    Class::InternalRead
                } else {
                    Class::InternalWrite
                },
            )
        }
        Route::Packument(_) if !read => ("publish", Class::PublicWrite),
        Route::Packument(_) => ("packument", Class::PublicRead),
        Route::Tarball(..) => ("tarball", Class::PublicRead),
        Route::DistTags(_) => ("dist-tags", Class::PublicRead),
        Route::PackumentRev(..) => (
            "packument-rev",
            if internal {
                Class::InternalWrite
            } else {
                Class::PublicWrite
            },
        ),
        Route::TarballRev(..) => (
            "tarball-rev",
            if internal {
                Class::InternalWrite
            } else {
                Class::PublicWrite
            },
        ),
        Route::DistTag(..) => (
            "dist-tag",
            if internal {
                Class::InternalWrite
            } else {
                Class::PublicWrite
            },
        ),
        Route::Forwarded(f) => match f {
            Forwarded::Login => ("login", Class::Upstream),
            Forwarded::LoginDone => ("login-done", Class::Upstream),
            Forwarded::CouchUser(_) => ("couch-user", Class::Upstream),
            Forwarded::CouchUserRev(..) => ("couch-user-rev", Class::Upstream),
            Forwarded::Logout(_) => ("logout", Class::Upstream),
            Forwarded::UserPackages(_) => ("user-packages", Class::Upstream),
            Forwarded::Profile => ("profile", Class::Upstream),
            Forwarded::Tokens => ("tokens", Class::Upstream),
            Forwarded::Token(_) => ("token", Class::Upstream),
            Forwarded::Visibility(_) => ("visibility", Class::Upstream),
            Forwarded::Access(_) => ("access", Class::Upstream),
            Forwarded::Collaborators(_) => ("collaborators", Class::Upstream),
            Forwarded::Trust(_) => ("trust", Class::Upstream),
            Forwarded::TrustId(..) => ("trust-id", Class::Upstream),
            Forwarded::OrgPackages(_) => ("org-packages", Class::Upstream),
            Forwarded::OrgUsers(_) => ("org-users", Class::Upstream),
            Forwarded::OrgTeams(_) => ("org-teams", Class::Upstream),
            Forwarded::Team(..) => ("team", Class::Upstream),
            Forwarded::TeamPackages(..) => ("team-packages", Class::Upstream),
            Forwarded::TeamUsers(..) => ("team-users", Class::Upstream),
            Forwarded::StarredByUser => ("starred", Class::PublicRead),
            Forwarded::Search => ("search", Class::PublicRead),
            Forwarded::AuditBulk => ("audit-bulk", Class::PublicRead),
            Forwarded::AuditQuick => ("audit-quick", Class::PublicRead),
            Forwarded::AuditFull => ("audit-full", Class::PublicRead),
            Forwarded::Keys => ("keys", Class::PublicRead),
            Forwarded::Attestations(..) => ("attestations", Class::PublicRead),
            Forwarded::OidcExchange(_) => ("oidc", Class::TokenExchange),
            Forwarded::Hooks => ("hooks", Class::Upstream),
            Forwarded::Hook => ("hook", Class::Upstream),
            Forwarded::HookId(_) => ("hook-id", Class::Upstream),
        },
    }
}

const ALL_KINDS: &[&str] = &[
    "ping",
    "whoami",
    "explain",
    "packument",
    "tarball",
    "dist-tags",
    "publish",
    "packument-rev",
    "tarball-rev",
    "dist-tag",
    "login",
    "login-done",
    "couch-user",
    "couch-user-rev",
    "logout",
    "user-packages",
    "profile",
    "tokens",
    "token",
    "visibility",
    "access",
    "collaborators",
    "trust",
    "trust-id",
    "org-packages",
    "org-users",
    "org-teams",
    "team",
    "team-packages",
    "team-users",
    "starred",
    "search",
    "audit-bulk",
    "audit-quick",
    "audit-full",
    "keys",
    "attestations",
    "oidc",
    "hooks",
    "hook",
    "hook-id",
];

/// (method, path, body, internal package?)
fn samples() -> Vec<(&'static str, String, Vec<u8>, bool)> {
    let (publish, _) = publish_payload("@acme/x", "9.0.0", 10);
    let (public_publish, _) = publish_payload("fx-a", "9.0.0", 10);
    let doc = br#"{"name":"@acme/x","versions":{}}"#.to_vec();
    let tag = br#""1.0.0""#.to_vec();
    let audit = br#"{"fx-a":["1.0.0"]}"#.to_vec();
    let e = Vec::new;
    let s = |m: &'static str, p: &str, b: Vec<u8>, i: bool| (m, p.to_string(), b, i);
    vec![
        s("GET", "/-/ping", e(), false),
        s("GET", "/-/whoami", e(), false),
        s("GET", "/-/nproxy/v1/explain/fx-a", e(), false),
        s("GET", "/-/nproxy/v1/explain/@acme%2fx", e(), true),
        s("GET", "/fx-a", e(), false),
        s("GET", "/fx-a/-/fx-a-1.0.0.tgz", e(), false),
        s("GET", "/-/package/fx-a/dist-tags", e(), false),
        s("PUT", "/fx-a", public_publish, false),
        s(
            "PUT",
            "/fx-a/-rev/1-abc",
            br#"{"name":"fx-a","versions":{}}"#.to_vec(),
            false,
        ),
        s("DELETE", "/fx-a/-rev/1-abc", e(), false),
        s("DELETE", "/fx-a/-/fx-a-1.0.0.tgz/-rev/1-abc", e(), false),
        s("PUT", "/-/package/fx-a/dist-tags/beta", tag.clone(), false),
        s("GET", "/@acme%2fx", e(), true),
        s("GET", "/@acme/x/-/x-1.0.0.tgz", e(), true),
        s("GET", "/-/package/@acme%2fx/dist-tags", e(), true),
        s("PUT", "/@acme%2fx", publish, true),
        s("PUT", "/@acme%2fx/-rev/1-abc", doc, true),
        s("DELETE", "/@acme%2fx/-rev/1-abc", e(), true),
        s("DELETE", "/@acme/x/-/x-9.9.9.tgz/-rev/1-abc", e(), true),
        s("PUT", "/-/package/@acme%2fx/dist-tags/beta", tag, true),
        s("POST", "/-/v1/login", b"{}".to_vec(), false),
        s("GET", "/-/v1/done?sessionId=abc", e(), false),
        s(
            "PUT",
            "/-/user/org.couchdb.user:alice",
            b"{}".to_vec(),
            false,
        ),
        s(
            "PUT",
            "/-/user/org.couchdb.user:alice/-rev/1-a",
            b"{}".to_vec(),
            false,
        ),
        s("DELETE", "/-/user/token/abc", e(), false),
        s("GET", "/-/user/alice/package", e(), false),
        s("GET", "/-/npm/v1/user", e(), false),
        s("GET", "/-/npm/v1/tokens", e(), false),
        s("DELETE", "/-/npm/v1/tokens/token/abc", e(), false),
        s("GET", "/-/package/fx-a/visibility", e(), false),
        s("GET", "/-/package/@acme%2fx/visibility", e(), true),
        s("POST", "/-/package/fx-a/access", b"{}".to_vec(), false),
        s("GET", "/-/package/fx-a/collaborators", e(), false),
        s("GET", "/-/package/fx-a/trust", e(), false),
        s("DELETE", "/-/package/fx-a/trust/t1", e(), false),
        s("GET", "/-/org/acme/package", e(), false),
        s("GET", "/-/org/acme/user", e(), false),
        s("GET", "/-/org/acme/team", e(), false),
        s("DELETE", "/-/team/acme/devs", e(), false),
        s("GET", "/-/team/acme/devs/package", e(), false),
        s("GET", "/-/team/acme/devs/user", e(), false),
        s("GET", "/-/_view/starredByUser?key=%22alice%22", e(), false),
        s("GET", "/-/v1/search?text=fx", e(), false),
        s(
            "POST",
            "/-/npm/v1/security/advisories/bulk",
            audit.clone(),
            false,
        ),
        s(
            "POST",
            "/-/npm/v1/security/audits/quick",
            audit.clone(),
            false,
        ),
        s("POST", "/-/npm/v1/security/audits", audit, false),
        s("GET", "/-/npm/v1/keys", e(), false),
        s("GET", "/-/npm/v1/attestations/fx-a@1.0.0", e(), false),
        s(
            "POST",
            "/-/npm/v1/oidc/token/exchange/package/fx-a",
            e(),
            false,
        ),
        s("GET", "/-/npm/v1/hooks", e(), false),
        s("POST", "/-/npm/v1/hooks/hook", b"{}".to_vec(), false),
        s("GET", "/-/npm/v1/hooks/hook/h1", e(), false),
    ]
}

fn classify(method: &str, path: &str, internal: bool) -> (&'static str, Class) {
    let p = path.split('?').next().unwrap_or(path);
    let r = route(p).unwrap_or_else(|e| panic!("{path} does not route: {e}"));
    class_of(&r, method, internal)
}

#[test]
fn every_route_kind_has_a_sample() {
    let covered: BTreeSet<&str> = samples()
        .iter()
        .map(|(m, p, _, i)| classify(m, p, *i).0)
        .collect();
    let all: BTreeSet<&str> = ALL_KINDS.iter().copied().collect();
    assert_eq!(covered, all, "every route kind needs a sample request");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    None,
    Malformed,
    OtherOrg,
    Revoked,
    Expired,
    Proxy,
    Publish,
    Upstream,
}

#[derive(Debug, PartialEq, Eq)]
enum Want {
    Status(u16),
    /// Not refused by nproxy's authorization (any status but 401 or 403).
    Allowed,
}

fn want(class: Class, cred: Cred, public_reads: bool) -> Want {
    use Cred as C;
    let bad = matches!(cred, C::Malformed | C::OtherOrg | C::Revoked | C::Expired);
    if bad && class != Class::Open {
        return Want::Status(401);
    }
    let nproxy = matches!(cred, C::Proxy | C::Publish);
    match class {
        Class::Open | Class::Upstream | Class::Whoami => Want::Allowed,
        Class::PublicRead if nproxy || public_reads => Want::Allowed,
        Class::PublicRead => Want::Status(401),
        Class::InternalRead if nproxy => Want::Allowed,
        Class::InternalRead => Want::Status(401),
        Class::InternalWrite if cred == C::Publish => Want::Allowed,
        Class::InternalWrite if cred == C::Proxy => Want::Status(403),
        Class::InternalWrite => Want::Status(401),
        Class::PublicWrite if cred == C::Upstream => Want::Allowed,
        Class::PublicWrite => Want::Status(401),
        Class::TokenExchange => Want::Status(401),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_every_credential_both_public_read_settings() {
    let s = Stack::start(&[]).await;
    let (_, proxy) = s.org_and_token(true, &["proxy"]);
    s.ctl(&["org", "settings", "acme", "--internal-scopes", "@acme"]);
    let token = |org: &str, name: &str, extra: &[&str]| {
        let mut args = vec![
            "-o", "json", "token", "create", "--org", org, "--name", name,
        ];
        args.extend_from_slice(extra);
        let t = s.ctl(&args).json();
        (
            t["id"].as_str().expect("id").to_string(),
            t["secret"].as_str().expect("secret").to_string(),
        )
    };
    let (_, publish) = token("acme", "pub", &["--scope", "publish"]);
    let (revoked_id, revoked) = token("acme", "rev", &["--scope", "proxy"]);
    s.ctl(&["token", "revoke", "--org", "acme", &revoked_id]);
    let (_, expired) = token("acme", "exp", &["--scope", "proxy", "--expires-in", "1s"]);
    s.ctl(&["org", "create", "other", "--display-name", "Other"]);
    let (_, other) = token("other", "o", &["--scope", "publish"]);
    let dp = s.data_plane("dp", &[]).await;
    // The internal package the reads and writes are about.
    let (body, _) = publish_payload("@acme/x", "1.0.0", 10);
    let r = raw_http()
        .put(format!("{}/@acme%2fx", dp.url()))
        .bearer_auth(&publish)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status().as_u16(), 201);
    tokio::time::sleep(Duration::from_millis(1100)).await; // the expired token is now

    let creds = [
        (Cred::None, None),
        (Cred::Malformed, Some("nproxy_not-a-real-token".to_string())),
        (Cred::OtherOrg, Some(other)),
        (Cred::Revoked, Some(revoked)),
        (Cred::Expired, Some(expired)),
        (Cred::Proxy, Some(proxy.clone())),
        (Cred::Publish, Some(publish)),
        (
            Cred::Upstream,
            Some("npm_usersOwnUpstreamToken".to_string()),
        ),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for public_reads in [true, false] {
        s.ctl(&[
            "org",
            "settings",
            "acme",
            "--public-reads",
            if public_reads { "true" } else { "false" },
        ]);
        let want_anon = if public_reads { 200 } else { 401 };
        let url = format!("{}/fx-c", dp.url());
        eventually(
            "the setting reaches the data plane",
            Duration::from_secs(10),
            || async { (status(&url, None).await == want_anon).then_some(()) },
        )
        .await;
        for (method, path, body, internal) in samples() {
            let (kind, class) = classify(method, &path, internal);
            for (cred, secret) in &creds {
                let mut req = raw_http()
                    .request(
                        method.parse().expect("method"),
                        format!("{}{path}", dp.url()),
                    )
                    .header("content-type", "application/json")
                    .body(body.clone());
                if let Some(t) = secret {
                    req = req.bearer_auth(t);
                }
                let got = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                let ok = match want(class, *cred, public_reads) {
                    Want::Status(w) => got == w,
                    Want::Allowed => got != 0 && got != 401 && got != 403,
                };
                checked += 1;
                if !ok {
                    failures.push(format!(
                        "{method} {path} ({kind}, {class:?}) with {cred:?}, public reads {public_reads}: \
                         got {got}, want {:?}",
                        want(class, *cred, public_reads)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
