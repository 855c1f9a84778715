//! Tests of forwarded routing, methods and rebuilt upstream paths, hostile paths first.

use http::Method;

use super::*;
use crate::names::PackageName;

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
