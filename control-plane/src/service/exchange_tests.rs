//! The trusted publishing RPCs against a real database and a local OIDC issuer (ES256 keys
//! served over loopback HTTP): what an exchange mints, records and publishes, and each way
//! it refuses.

use std::sync::Arc;
use std::time::Duration;

use nproxy_proto::v1::trusted_publishers_server::TrustedPublishers;
use prost::Message;
use tonic::{Code, Request};

use super::*;
use crate::auth::{Authenticator, Caller};
use crate::oidc::test_issuer::{Issuer, TestKey};
use crate::oidc::Oidc;
use crate::secrets::MasterKey;
use crate::service::Api;
use crate::sink::NoSink;
use crate::store::Backend;

const AUD: &str = "npm:registry.test";

crate::store::on_both_backends!(
    an_exchange_mints_a_token_for_the_package_that_the_snapshot_and_audit_log_show,
    an_unknown_issuer_is_unauthenticated_and_never_fetched,
    a_wrong_claim_is_denied_naming_the_claim_not_the_required_value,
    a_wrong_audience_or_signature_is_unauthenticated,
    packages_without_a_trusted_publisher_are_denied,
    two_orgs_trusting_the_same_job_are_ambiguous_unless_the_request_names_one,
    publishers_are_admin_managed_and_audited,
    a_minted_token_expires_after_the_configured_ttl,
);

struct Fixture {
    _dir: Option<tempfile::TempDir>,
    api: Api,
    key: TestKey,
    issuer: Issuer,
}

fn caller<T>(c: Caller, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.extensions_mut().insert(c);
    r
}

fn admin<T>(msg: T) -> Request<T> {
    caller(Caller::Admin { name: "t".into() }, msg)
}

async fn fixture(b: Backend, ttl: Duration) -> Fixture {
    let (dir, db) = crate::store::test_db(b).await;
    let (events, _) = tokio::sync::broadcast::channel(16);
    let st = State {
        db,
        master_key: MasterKey::generate(),
        sink: Arc::new(NoSink),
        auth: Authenticator::new(None),
        events,
        oidc: Oidc::new(ttl).expect("oidc"),
    };
    let key = TestKey::new("k1");
    let issuer = Issuer::start(vec![key.jwk()]).await;
    Fixture {
        _dir: dir,
        api: Api(Arc::new(st)),
        key,
        issuer,
    }
}

impl Fixture {
    fn st(&self) -> &State {
        &self.api.0
    }

    async fn org(&self, slug: &str, scopes: &[&str]) -> OrgRow {
        let o = OrgRow {
            id: new_id(),
            slug: slug.into(),
            display_name: slug.into(),
            created_at_ms: now_ms(),
            config_version: 1,
            internal_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            public_reads: true,
        };
        let mut w = self.st().db.write().await.expect("write");
        Db::insert_org(w.conn(), &o).await.expect("insert org");
        w.commit().await.expect("commit");
        o
    }

    async fn trust(
        &self,
        org: &str,
        package: &str,
        claims: &[(&str, &str)],
    ) -> pb::TrustedPublisher {
        self.api
            .add_trusted_publisher(admin(pb::AddTrustedPublisherRequest {
                org: org.into(),
                issuer: self.issuer.url(),
                package: package.into(),
                claims: claims
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }))
            .await
            .expect("add trusted publisher")
            .into_inner()
    }

    /// A GitHub-like id token from the local issuer, with `changes` applied.
    fn id_token(&self, changes: Value) -> String {
        let now = now_ms() / 1000;
        let mut c = json!({
            "iss": self.issuer.url(), "aud": AUD, "iat": now, "nbf": now, "exp": now + 300,
            "sub": "repo:acme/app:ref:refs/tags/v1.0.0", "repository": "acme/app",
            "repository_owner": "acme", "ref": "refs/tags/v1.0.0", "run_id": "42",
            "workflow_ref": "acme/app/.github/workflows/release.yml@refs/tags/v1.0.0",
            "runner_environment": "github-hosted",
        });
        if let (Some(c), Value::Object(changes)) = (c.as_object_mut(), changes) {
            c.extend(changes);
        }
        self.key.jwt(&c)
    }

    async fn exchange(
        &self,
        org: &str,
        package: &str,
        id_token: String,
    ) -> Result<pb::ExchangeOidcTokenResponse, tonic::Status> {
        self.api
            .exchange_oidc_token(caller(
                Caller::DataPlane,
                pb::ExchangeOidcTokenRequest {
                    org: org.into(),
                    package: package.into(),
                    id_token,
                    audience: AUD.into(),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    async fn snapshot(&self, org: &OrgRow) -> pb::OrgConfigSnapshot {
        let (_, bytes) = self.st().snapshot_bytes(&org.id).await.expect("snapshot");
        pb::OrgConfigSnapshot::decode(bytes.expect("live org").as_slice()).expect("decode")
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code) -> String {
    let s = r.expect_err("refused");
    assert_eq!(s.code(), code, "{}", s.message());
    s.message().to_string()
}

async fn an_exchange_mints_a_token_for_the_package_that_the_snapshot_and_audit_log_show(
    b: Backend,
) {
    let f = fixture(b, Duration::from_secs(900)).await;
    let acme = f.org("acme", &["@acme"]).await;
    let p = f
        .trust(
            "acme",
            "@acme/*",
            &[("repository", "acme/app"), ("ref", "refs/tags/v*")],
        )
        .await;
    let before = now_ms();
    // No org named: found by the package's scope.
    let r = f
        .exchange("", "@acme/app", f.id_token(json!({})))
        .await
        .expect("exchanged");
    assert_eq!(r.org_slug, "acme");
    assert!(
        crate::secrets::looks_like_api_token(&r.token),
        "{}",
        r.token
    );
    assert!((before + 900_000..=now_ms() + 900_000).contains(&r.expires_at_ms));

    let snap = f.snapshot(&acme).await;
    let entry = snap
        .tokens
        .iter()
        .find(|t| t.sha256 == sha256(&r.token).to_vec())
        .expect("the minted token is in the org's snapshot");
    assert_eq!(entry.packages, ["@acme/app"]);
    assert_eq!(entry.scopes, [TokenScope::Publish as i32]);
    assert_eq!(entry.expires_at_ms, Some(r.expires_at_ms));
    assert_eq!(entry.name, "oidc acme/app");

    let events = f.st().db.all_events(&acme.id).await.expect("events");
    let last = events.last().expect("recorded");
    assert_eq!(last.kind, events::TOKEN_CREATED);
    assert_eq!(last.actor, format!("trusted-publisher:{}", p.id));
    let d: Value = serde_json::from_str(&last.details_json).expect("json");
    assert_eq!(d["via"], "trusted-publishing");
    assert_eq!(d["issuer"], f.issuer.url());
    assert_eq!(d["publisher_id"], p.id);
    assert_eq!(d["token_id"], entry.token_id);
    assert_eq!(d["packages"], json!(["@acme/app"]));
    assert_eq!(d["run_id"], "42");
    assert_eq!(
        d["workflow_ref"],
        "acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
    );
    assert_eq!(d["sub"], "repo:acme/app:ref:refs/tags/v1.0.0");
    assert!(
        d.get("runner_environment").is_none(),
        "only identity claims"
    );
    assert!(!last.details_json.contains(&r.token), "never the secret");

    // Naming the org works too; a second exchange uses the cached keys.
    let fetched = f.issuer.requests();
    f.exchange("acme", "@acme/lib", f.id_token(json!({})))
        .await
        .expect("exchanged for another package of the scope");
    assert_eq!(f.issuer.requests(), fetched);
}

async fn an_unknown_issuer_is_unauthenticated_and_never_fetched(b: Backend) {
    let f = fixture(b, Duration::from_secs(900)).await;
    f.org("acme", &["@acme"]).await;
    f.trust("acme", "@acme/app", &[("repository", "acme/app")])
        .await;
    let stranger = Issuer::start(vec![f.key.jwk()]).await;
    let m = refused(
        f.exchange(
            "acme",
            "@acme/app",
            f.id_token(json!({"iss": stranger.url()})),
        )
        .await,
        Code::Unauthenticated,
    );
    assert!(m.contains("is not trusted"), "{m}");
    assert_eq!(
        stranger.requests(),
        0,
        "an untrusted issuer is never fetched"
    );
    assert_eq!(f.issuer.requests(), 0);
}

async fn a_wrong_claim_is_denied_naming_the_claim_not_the_required_value(b: Backend) {
    let f = fixture(b, Duration::from_secs(900)).await;
    let acme = f.org("acme", &["@acme"]).await;
    f.trust(
        "acme",
        "@acme/app",
        &[("repository", "acme/monorepo"), ("environment", "release")],
    )
    .await;
    let m = refused(
        f.exchange(
            "acme",
            "@acme/app",
            f.id_token(json!({"repository": "evil/app"})),
        )
        .await,
        Code::PermissionDenied,
    );
    assert!(m.contains(r#"repository ("evil/app")"#), "{m}");
    assert!(m.contains("environment (missing)"), "{m}");
    assert!(!m.contains("monorepo") && !m.contains("release"), "{m}");
    let snap = f.snapshot(&acme).await;
    assert!(snap.tokens.is_empty(), "nothing minted");
}

async fn a_wrong_audience_or_signature_is_unauthenticated(b: Backend) {
    let f = fixture(b, Duration::from_secs(900)).await;
    let acme = f.org("acme", &["@acme"]).await;
    f.trust("acme", "@acme/app", &[("repository", "acme/app")])
        .await;
    let m = refused(
        f.exchange(
            "acme",
            "@acme/app",
            f.id_token(json!({"aud": "npm:elsewhere.test"})),
        )
        .await,
        Code::Unauthenticated,
    );
    assert!(m.contains("audience"), "{m}");
    let impostor = TestKey::new("k1");
    let now = now_ms() / 1000;
    let forged = impostor.jwt(&json!({
        "iss": f.issuer.url(), "aud": AUD, "exp": now + 300, "repository": "acme/app",
    }));
    let m = refused(
        f.exchange("acme", "@acme/app", forged).await,
        Code::Unauthenticated,
    );
    assert!(m.contains("signature"), "{m}");
    let expired = f.id_token(json!({"exp": now - 120, "iat": now - 600, "nbf": now - 600}));
    let m = refused(
        f.exchange("acme", "@acme/app", expired).await,
        Code::Unauthenticated,
    );
    assert!(m.contains("expired"), "{m}");
    assert!(f.snapshot(&acme).await.tokens.is_empty());
}

async fn packages_without_a_trusted_publisher_are_denied(b: Backend) {
    let f = fixture(b, Duration::from_secs(900)).await;
    f.org("acme", &["@acme"]).await;
    f.org("tools", &["@tools"]).await;
    f.trust("acme", "@acme/app", &[("repository", "acme/app")])
        .await;
    for (org, package) in [("", "@acme/other"), ("", "@nobody/app"), ("", "lodash")] {
        let m = refused(
            f.exchange(org, package, f.id_token(json!({}))).await,
            Code::PermissionDenied,
        );
        assert_eq!(m, format!("no trusted publisher for {package}"));
    }
    let m = refused(
        f.exchange("tools", "@acme/app", f.id_token(json!({})))
            .await,
        Code::PermissionDenied,
    );
    assert!(m.contains("not an internal scope of org tools"), "{m}");
    let s = f
        .exchange("acme", "not a name", f.id_token(json!({})))
        .await
        .expect_err("invalid");
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(f.issuer.requests(), 0, "nothing verified, nothing fetched");
}

async fn two_orgs_trusting_the_same_job_are_ambiguous_unless_the_request_names_one(b: Backend) {
    let f = fixture(b, Duration::from_secs(900)).await;
    let one = f.org("one", &["@acme"]).await;
    f.org("two", &["@acme"]).await;
    f.trust("one", "@acme/app", &[("repository", "acme/app")])
        .await;
    f.trust("two", "@acme/*", &[("repository_owner", "acme")])
        .await;
    let m = refused(
        f.exchange("", "@acme/app", f.id_token(json!({}))).await,
        Code::PermissionDenied,
    );
    assert!(m.contains("ambiguous") && m.contains("one, two"), "{m}");
    let r = f
        .exchange("one", "@acme/app", f.id_token(json!({})))
        .await
        .expect("the named org decides");
    assert_eq!(r.org_slug, "one");
    assert_eq!(f.snapshot(&one).await.tokens.len(), 1);
}

async fn publishers_are_admin_managed_and_audited(b: Backend) {
    let f = fixture(b, Duration::from_secs(900)).await;
    let acme = f.org("acme", &["@acme"]).await;
    let req = |issuer: &str, package: &str| pb::AddTrustedPublisherRequest {
        org: "acme".into(),
        issuer: issuer.into(),
        package: package.into(),
        claims: [("repository".to_string(), "acme/app".to_string())].into(),
    };
    let s = f
        .api
        .add_trusted_publisher(caller(Caller::DataPlane, req(&f.issuer.url(), "@acme/app")))
        .await
        .expect_err("data planes make no admin calls");
    assert_eq!(s.code(), Code::PermissionDenied);
    for (issuer, package, field) in [
        ("http://issuer.test", "@acme/app", "issuer"),
        ("https://issuer.test/?a=b", "@acme/app", "issuer"),
        ("https://issuer.test", "@other/app", "package"),
        ("https://issuer.test", "app", "package"),
    ] {
        let s = f
            .api
            .add_trusted_publisher(admin(req(issuer, package)))
            .await
            .expect_err("invalid");
        assert_eq!(s.code(), Code::InvalidArgument, "{issuer} {package}");
        assert!(s.message().starts_with(field), "{}", s.message());
    }
    let p = f
        .trust("acme", "@acme/app", &[("repository", "acme/app")])
        .await;
    let again = f
        .api
        .add_trusted_publisher(admin(req(&f.issuer.url(), "@acme/app")))
        .await
        .expect_err("duplicate");
    assert_eq!(again.code(), Code::AlreadyExists);
    let list = f
        .api
        .list_trusted_publishers(admin(pb::ListTrustedPublishersRequest {
            org: "acme".into(),
        }))
        .await
        .expect("list")
        .into_inner()
        .publishers;
    assert_eq!(list, vec![p.clone()]);
    let remove = |id: &str| {
        f.api
            .remove_trusted_publisher(admin(pb::RemoveTrustedPublisherRequest {
                org: "acme".into(),
                id: id.into(),
            }))
    };
    assert!(remove(&p.id).await.expect("remove").into_inner().removed);
    assert!(!remove(&p.id).await.expect("remove").into_inner().removed);
    let kinds: Vec<String> = f
        .st()
        .db
        .all_events(&acme.id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            events::TRUSTED_PUBLISHER_ADDED,
            events::TRUSTED_PUBLISHER_REMOVED
        ]
    );
    let m = refused(
        f.exchange("acme", "@acme/app", f.id_token(json!({}))).await,
        Code::PermissionDenied,
    );
    assert_eq!(m, "no trusted publisher for @acme/app");
}

async fn a_minted_token_expires_after_the_configured_ttl(b: Backend) {
    let f = fixture(b, Duration::from_secs(1)).await;
    let acme = f.org("acme", &["@acme"]).await;
    f.trust("acme", "@acme/app", &[("repository", "acme/app")])
        .await;
    let before = now_ms();
    let r = f
        .exchange("", "@acme/app", f.id_token(json!({})))
        .await
        .expect("exchanged");
    assert!((before + 1000..=now_ms() + 1000).contains(&r.expires_at_ms));
    assert_eq!(f.snapshot(&acme).await.tokens.len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        f.snapshot(&acme).await.tokens.is_empty(),
        "expired tokens leave the snapshot"
    );
}
