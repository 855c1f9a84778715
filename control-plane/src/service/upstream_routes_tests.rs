//! The upstream route RPCs against a real database (SQLite and PostgreSQL): who may call
//! what, what is refused, and that a credential comes back only to a data plane — never in
//! a listing, a snapshot, an audit event or the SQLite file in clear.

use std::sync::Arc;

use nproxy_proto::v1::orgs_server::Orgs;
use nproxy_proto::v1::upstream_routes_server::UpstreamRoutes;
use prost::Message;
use tonic::{Code, Request};

use super::*;
use crate::auth::{Authenticator, Caller};
use crate::oidc::Oidc;
use crate::secrets::MasterKey;
use crate::service::{Api, State};
use crate::sink::NoSink;
use crate::store::{Backend, OrgRow};

const SECRET: &str = "vendor-s3cret-4f2a9c";
const SECRET_2: &str = "vendor-r0tated-77b1e0";

crate::store::on_both_backends!(
    routes_are_admin_managed_audited_and_versioned,
    only_a_data_plane_reads_credentials_back,
    invalid_routes_are_refused_naming_the_field,
    credentials_stay_out_of_snapshots_events_and_the_database,
);

fn caller<T>(c: Caller, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.extensions_mut().insert(c);
    r
}

fn admin<T>(msg: T) -> Request<T> {
    caller(Caller::Admin { name: "t".into() }, msg)
}

fn dp<T>(msg: T) -> Request<T> {
    caller(Caller::DataPlane, msg)
}

struct Fixture {
    dir: Option<tempfile::TempDir>,
    api: Api,
    org: OrgRow,
}

async fn fixture(b: Backend) -> Fixture {
    let (dir, db) = crate::store::test_db(b).await;
    let (events, _) = tokio::sync::broadcast::channel(16);
    let st = State {
        db,
        master_key: MasterKey::generate(),
        sink: Arc::new(NoSink),
        auth: Authenticator::new(None),
        events,
        oidc: Oidc::new(std::time::Duration::from_secs(900)).expect("oidc"),
    };
    let org = OrgRow {
        id: new_id(),
        slug: "acme".into(),
        display_name: "Acme".into(),
        created_at_ms: now_ms(),
        config_version: 1,
        internal_scopes: vec!["@acme".into()],
        public_reads: true,
    };
    let mut w = st.db.write().await.expect("write");
    Db::insert_org(w.conn(), &org).await.expect("insert org");
    w.commit().await.expect("commit");
    Fixture {
        dir,
        api: Api(Arc::new(st)),
        org,
    }
}

fn add(pattern: &str, url: &str, credential: &str) -> pb::AddUpstreamRouteRequest {
    pb::AddUpstreamRouteRequest {
        org: "acme".into(),
        pattern: pattern.into(),
        url: url.into(),
        credential: credential.into(),
    }
}

fn update(id: &str, url: Option<&str>, credential: Option<&str>) -> pb::UpdateUpstreamRouteRequest {
    pb::UpdateUpstreamRouteRequest {
        org: "acme".into(),
        id: id.into(),
        url: url.map(Into::into),
        credential: credential.map(Into::into),
    }
}

impl Fixture {
    fn st(&self) -> &State {
        &self.api.0
    }

    async fn config_version(&self) -> i64 {
        self.st()
            .db
            .org(&self.org.id)
            .await
            .expect("org")
            .config_version
    }

    async fn kinds(&self) -> Vec<String> {
        let events = self.st().db.all_events(&self.org.id).await.expect("events");
        events.into_iter().map(|e| e.kind).collect()
    }

    async fn credentials(&self) -> Vec<pb::UpstreamCredential> {
        self.api
            .get_upstream_credentials(dp(pb::GetUpstreamCredentialsRequest { org: "acme".into() }))
            .await
            .expect("credentials")
            .into_inner()
            .credentials
    }
}

async fn routes_are_admin_managed_audited_and_versioned(b: Backend) {
    let f = fixture(b).await;
    let api = &f.api;
    let refused = [
        api.add_upstream_route(dp(add("@vendor", "https://v.test", "")))
            .await
            .map(|_| ()),
        api.list_upstream_routes(dp(pb::ListUpstreamRoutesRequest { org: "acme".into() }))
            .await
            .map(|_| ()),
        api.update_upstream_route(dp(update("x", Some("https://v.test"), None)))
            .await
            .map(|_| ()),
        api.remove_upstream_route(dp(pb::RemoveUpstreamRouteRequest {
            org: "acme".into(),
            id: "x".into(),
        }))
        .await
        .map(|_| ()),
    ];
    for r in refused {
        assert_eq!(r.expect_err("admin only").code(), Code::PermissionDenied);
    }

    let v0 = f.config_version().await;
    let route = api
        .add_upstream_route(admin(add(" @vendor ", "https://Vendor.Test/npm/", SECRET)))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(route.pattern, "@vendor");
    assert_eq!(route.url, "https://vendor.test/npm");
    assert_eq!((route.has_credential, route.version), (true, 1));
    assert_eq!(route.org_id, f.org.id);
    assert_eq!(
        f.config_version().await,
        v0 + 1,
        "data planes get a new snapshot"
    );

    // Same URL, same credential: nothing changes, nothing recorded.
    let same = api
        .update_upstream_route(admin(update(
            &route.id,
            Some("https://vendor.test/npm"),
            Some(SECRET),
        )))
        .await
        .expect("no-op update")
        .into_inner();
    assert_eq!(same.version, 1);
    assert_eq!(f.config_version().await, v0 + 1);
    // Another origin without the credential again: refused (the held credential would
    // follow the route to a host the admin chose, and be readable there).
    let away = api
        .update_upstream_route(admin(update(&route.id, Some("https://mirror.test"), None)))
        .await
        .expect_err("another origin needs the credential again");
    assert_eq!(away.code(), tonic::Code::InvalidArgument, "{away:?}");
    // A new path on the same origin: a new version, the credential kept (sealed again).
    let moved = api
        .update_upstream_route(admin(update(
            &route.id,
            Some("https://vendor.test/v2"),
            None,
        )))
        .await
        .expect("url")
        .into_inner();
    assert_eq!(
        (moved.url.as_str(), moved.version),
        ("https://vendor.test/v2", 2)
    );
    assert!(moved.has_credential);
    let held = f.credentials().await;
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].version, held[0].credential.as_str()), (2, SECRET));
    // A new credential, then none.
    let rotated = api
        .update_upstream_route(admin(update(&route.id, None, Some(SECRET_2))))
        .await
        .expect("credential")
        .into_inner();
    assert_eq!(rotated.version, 3);
    assert_eq!(f.credentials().await[0].credential, SECRET_2);
    let bare = api
        .update_upstream_route(admin(update(&route.id, None, Some(""))))
        .await
        .expect("no credential")
        .into_inner();
    assert_eq!((bare.version, bare.has_credential), (4, false));
    assert!(f.credentials().await.is_empty());
    assert_eq!(f.config_version().await, v0 + 4);

    let listed = api
        .list_upstream_routes(admin(pb::ListUpstreamRoutesRequest { org: "acme".into() }))
        .await
        .expect("list")
        .into_inner()
        .routes;
    assert_eq!(listed, vec![bare.clone()]);
    let missing = api
        .update_upstream_route(admin(update("nope", Some("https://v.test"), None)))
        .await
        .expect_err("unknown route");
    assert_eq!(missing.code(), Code::NotFound);

    let remove = |id: &str| {
        admin(pb::RemoveUpstreamRouteRequest {
            org: "acme".into(),
            id: id.into(),
        })
    };
    let gone = api.remove_upstream_route(remove(&route.id)).await;
    assert!(gone.expect("remove").into_inner().removed);
    let again = api.remove_upstream_route(remove(&route.id)).await;
    assert!(!again.expect("remove").into_inner().removed);
    assert_eq!(f.config_version().await, v0 + 5);
    assert_eq!(
        f.kinds().await,
        [
            "upstream_route.added",
            "upstream_route.updated",
            "upstream_route.updated",
            "upstream_route.updated",
            "upstream_route.removed",
        ]
    );
    let events = f.st().db.all_events(&f.org.id).await.expect("events");
    let details: serde_json::Value =
        serde_json::from_str(&events[0].details_json).expect("details");
    assert_eq!(
        details,
        json!({"id": route.id, "pattern": "@vendor", "url": "https://vendor.test/npm",
               "has_credential": true, "version": 1})
    );
    let anchor = f.st().db.anchor(&f.org.id).await.expect("anchor");
    let problems = crate::audit::verify(
        &f.org.id,
        &events,
        anchor.as_ref(),
        None,
        &f.st().master_key,
    );
    assert!(problems.is_empty(), "{problems:?}");
}

async fn only_a_data_plane_reads_credentials_back(b: Backend) {
    let f = fixture(b).await;
    let with = f
        .api
        .add_upstream_route(admin(add("@vendor", "https://v.test", SECRET)))
        .await
        .expect("add")
        .into_inner();
    f.api
        .add_upstream_route(admin(add("tool-*", "http://127.0.0.1:4873", "")))
        .await
        .expect("add without a credential");
    let denied = f
        .api
        .get_upstream_credentials(admin(pb::GetUpstreamCredentialsRequest {
            org: "acme".into(),
        }))
        .await
        .expect_err("an admin never reads a credential back");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(!denied.message().contains(SECRET));
    let held = f.credentials().await;
    assert_eq!(held.len(), 1, "only routes with a credential");
    assert_eq!(held[0].route_id, with.id);
    assert_eq!((held[0].version, held[0].credential.as_str()), (1, SECRET));
    // By the org's id as well as its slug.
    let by_id = f
        .api
        .get_upstream_credentials(dp(pb::GetUpstreamCredentialsRequest {
            org: f.org.id.clone(),
        }))
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(by_id.credentials, held);

    // A sealed credential moved onto another route's row does not open.
    let mut w = f.st().db.write().await.expect("write");
    sqlx::query("UPDATE upstream_routes SET credential_sealed = (SELECT credential_sealed FROM upstream_routes WHERE id = $1) WHERE pattern = $2")
        .bind(&with.id)
        .bind("tool-*")
        .execute(&mut *w.conn())
        .await
        .expect("move the sealed bytes");
    w.commit().await.expect("commit");
    let moved = f
        .api
        .get_upstream_credentials(dp(pb::GetUpstreamCredentialsRequest { org: "acme".into() }))
        .await
        .expect_err("bound to its route");
    assert_eq!(moved.code(), Code::Internal);
    assert!(!moved.message().contains(SECRET));
}

async fn invalid_routes_are_refused_naming_the_field(b: Backend) {
    let f = fixture(b).await;
    let api = &f.api;
    for (req, field) in [
        (add("Vendor", "https://v.test", ""), "pattern"),
        (add("@acme", "https://v.test", ""), "pattern"),
        (add("@acme/app-*", "https://v.test", ""), "pattern"),
        (add("@vendor", "http://v.test", ""), "url"),
        (add("@vendor", "https://u:p@v.test", ""), "url"),
        (add("@vendor", "https://v.test/?x=1", ""), "url"),
        (add("@vendor", "https://v.test", "two words"), "credential"),
        (
            add("@vendor", "https://v.test", &"x".repeat(4097)),
            "credential",
        ),
    ] {
        let e = api.add_upstream_route(admin(req)).await.expect_err(field);
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(&format!("{field}:")), "{e:?}");
    }
    api.add_upstream_route(admin(add("@vendor", "https://v.test", "")))
        .await
        .expect("add");
    let twice = api
        .add_upstream_route(admin(add("@vendor", "https://other.test", "")))
        .await
        .expect_err("one route per pattern");
    assert_eq!(twice.code(), Code::AlreadyExists);
    for i in 1..MAX_PER_ORG {
        api.add_upstream_route(admin(add(&format!("@v{i}"), "https://v.test", "")))
            .await
            .expect("under the bound");
    }
    let full = api
        .add_upstream_route(admin(add("@one-too-many", "https://v.test", "")))
        .await
        .expect_err("bounded");
    assert_eq!(full.code(), Code::FailedPrecondition);
    let id = &f.st().db.upstream_routes_of(&f.org.id).await.expect("list")[0].id;
    let bad = api
        .update_upstream_route(admin(update(id, Some("ftp://v.test"), None)))
        .await
        .expect_err("url");
    assert!(bad.message().starts_with("url:"), "{bad:?}");

    // An internal scope a route covers is refused by the settings too.
    let settings = |scopes: &[&str]| {
        admin(pb::UpdateSettingsRequest {
            org: "acme".into(),
            internal_scopes: Some(pb::ScopeList {
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            }),
            public_reads: None,
        })
    };
    let routed = api
        .update_settings(settings(&["@acme", "@v7"]))
        .await
        .expect_err("routed scope");
    assert_eq!(routed.code(), Code::InvalidArgument);
    assert!(
        routed.message().starts_with("internal_scopes:"),
        "{routed:?}"
    );
    api.update_settings(settings(&["@acme", "@tools"]))
        .await
        .expect("an unrouted scope");
}

async fn credentials_stay_out_of_snapshots_events_and_the_database(b: Backend) {
    let f = fixture(b).await;
    let route = f
        .api
        .add_upstream_route(admin(add("@vendor", "https://v.test", SECRET)))
        .await
        .expect("add")
        .into_inner();
    f.api
        .update_upstream_route(admin(update(&route.id, None, Some(SECRET_2))))
        .await
        .expect("rotate");
    f.api
        .add_upstream_route(admin(add("vendor-sdk", "http://localhost:4873", "")))
        .await
        .expect("add");

    let (_, bytes) = f.st().snapshot_bytes(&f.org.id).await.expect("snapshot");
    let bytes = bytes.expect("a live org");
    let snap = pb::OrgConfigSnapshot::decode(bytes.as_slice()).expect("decode");
    let entries: Vec<_> = snap
        .upstream_routes
        .iter()
        .map(|e| {
            (
                e.pattern.as_str(),
                e.url.as_str(),
                e.has_credential,
                e.version,
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("@vendor", "https://v.test", true, 2),
            ("vendor-sdk", "http://localhost:4873", false, 1),
        ]
    );
    assert_eq!(snap.upstream_routes[0].id, route.id);
    let listed = f
        .api
        .list_upstream_routes(admin(pb::ListUpstreamRoutesRequest { org: "acme".into() }))
        .await
        .expect("list")
        .into_inner();
    let routes = f.st().db.upstream_routes_of(&f.org.id).await.expect("rows");
    let events = f.st().db.all_events(&f.org.id).await.expect("events");
    assert_eq!(events.len(), 3);
    let events_json: Vec<String> = events.iter().map(|e| e.details_json.clone()).collect();
    let shown = [
        String::from_utf8_lossy(&bytes).into_owned(),
        format!("{listed:?}"),
        format!("{routes:?}"),
        format!("{events:?}"),
        events_json.join("\n"),
    ];
    for s in [SECRET, SECRET_2] {
        for (i, text) in shown.iter().enumerate() {
            assert!(!text.contains(s), "credential in output {i}: {text}");
        }
    }
    // The SQLite file (and its WAL) holds only sealed bytes.
    if let Some(dir) = &f.dir {
        let (mut read, mut seen_route) = (0, false);
        for name in ["cp.db", "cp.db-wal", "cp.db-journal"] {
            let Ok(data) = std::fs::read(dir.path().join(name)) else {
                continue;
            };
            read += data.len();
            for s in [SECRET, SECRET_2] {
                let found = data.windows(s.len()).any(|w| w == s.as_bytes());
                assert!(!found, "{s} in clear in {name}");
            }
            seen_route |= data.windows(7).any(|w| w == b"@vendor");
        }
        assert!(read > 0 && seen_route, "the route's row was read");
    }
}
