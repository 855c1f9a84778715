//! One suite for both stores: every test runs against a SQLite file and against a database
//! of its own on a real PostgreSQL server (`nproxy_test_postgres`). What `Read` promises (no
//! waiting for the writer, one consistent state per transaction), every table group's
//! queries, and, on PostgreSQL, two control planes appending to one audit chain at once.

use std::time::Duration;

use super::*;
use crate::audit::{self, NewEvent};
use crate::error::CpError;
use crate::secrets::MasterKey;

on_both_backends!(
    a_read_does_not_wait_for_an_open_write,
    a_read_sees_one_state_throughout,
    an_added_exception_answers_with_the_time_it_stored,
    a_slug_is_unique_among_live_orgs_and_free_again_after_a_delete,
    orgs_list_in_pages,
    tokens_round_trip_and_revoke,
    expired_minted_tokens_are_pruned_and_no_others,
    token_use_only_moves_forward,
    keys_round_trip_and_retire,
    rules_and_exceptions_round_trip,
    advisories_replace_their_packages_and_filter_by_package,
    an_admin_credential_is_stored_once,
    the_audit_chain_appends_filters_and_verifies,
    an_idempotency_key_records_an_event_once,
    a_failed_transaction_leaves_nothing,
);

use super::test_db as open;

fn org(slug: &str) -> OrgRow {
    OrgRow {
        id: new_id(),
        slug: slug.into(),
        display_name: slug.into(),
        created_at_ms: now_ms(),
        config_version: 1,
        internal_scopes: Vec::new(),
        public_reads: true,
    }
}

async fn with_org(db: &Db, slug: &str) -> OrgRow {
    let o = org(slug);
    let mut w = db.write().await.expect("write");
    Db::insert_org(w.conn(), &o).await.expect("insert org");
    w.commit().await.expect("commit");
    o
}

fn token(org_id: &str, name: &str, secret: &str) -> TokenRow {
    TokenRow {
        id: new_id(),
        org_id: org_id.into(),
        name: name.into(),
        sha256: crate::secrets::sha256(secret).to_vec(),
        secret_prefix: secret[..6].into(),
        scopes: vec!["read".into(), "publish".into()],
        created_at_ms: now_ms(),
        expires_at_ms: Some(now_ms() + 86_400_000),
        last_used_at_ms: None,
        revoked_at_ms: None,
        packages: Vec::new(),
    }
}

async fn append(db: &Db, mk: &MasterKey, org_id: &str, kind: &str, key: Option<&str>) -> bool {
    let mut w = db.write().await.expect("write");
    let e = audit::append(
        &mut w,
        mk,
        NewEvent {
            org_id,
            kind,
            actor: "test",
            details: serde_json::json!({"kind": kind}),
            time_ms: now_ms(),
            idempotency_key: key,
        },
    )
    .await
    .expect("append");
    w.commit().await.expect("commit");
    e.is_some()
}

async fn verify(db: &Db, mk: &MasterKey, org_id: &str) -> (usize, Vec<String>) {
    let events = db.all_events(org_id).await.expect("events");
    let anchor = db.anchor(org_id).await.expect("anchor");
    let problems = audit::verify(org_id, &events, anchor.as_ref(), None, mk);
    (events.len(), problems)
}

async fn a_read_does_not_wait_for_an_open_write(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = org("acme");
    let mut w = db.write().await.expect("write");
    Db::insert_org(w.conn(), &acme).await.expect("insert");
    // The writer lock is held and the write is not committed: a read neither waits for it
    // nor sees it.
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        let mut r = db.read().await.expect("read");
        Db::org_in(r.conn(), &acme.id).await
    })
    .await
    .expect("a read must not queue behind the writer");
    assert!(matches!(seen, Err(CpError::NotFound(_))), "{seen:?}");
    w.commit().await.expect("commit");
    let mut r = db.read().await.expect("read");
    assert_eq!(
        Db::org_in(r.conn(), &acme.id).await.expect("org").slug,
        "acme"
    );
}

async fn a_read_sees_one_state_throughout(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = org("acme");
    let mut w = db.write().await.expect("write");
    Db::insert_org(w.conn(), &acme).await.expect("insert");
    w.commit().await.expect("commit");

    let mut r = db.read().await.expect("read");
    assert!(
        Db::org_in(r.conn(), &acme.id)
            .await
            .expect("org")
            .public_reads
    );
    let mut w = db.write().await.expect("write");
    Db::update_settings(w.conn(), &acme.id, &[], false)
        .await
        .expect("update");
    w.commit().await.expect("commit");
    // Committed after this transaction's first read: invisible to it.
    let same = Db::org_in(r.conn(), &acme.id).await.expect("org");
    assert!(same.public_reads);
    assert_eq!(same.config_version, 1);
    drop(r);
    let mut r = db.read().await.expect("read");
    let now = Db::org_in(r.conn(), &acme.id).await.expect("org");
    assert!(!now.public_reads);
    assert_eq!(now.config_version, 2);
}

async fn an_added_exception_answers_with_the_time_it_stored(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = org("acme");
    let mut w = db.write().await.expect("write");
    Db::insert_org(w.conn(), &acme).await.expect("insert");
    let answered = Db::add_exception(w.conn(), "x1", &acme.id, "left-pad", "1.0.0", "ok")
        .await
        .expect("add");
    w.commit().await.expect("commit");
    // Later than any clock reading the service could take afterwards would be.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut r = db.read().await.expect("read");
    let listed = Db::exceptions(r.conn(), &acme.id).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].4, answered, "the answer and the stored row agree");
}

async fn a_slug_is_unique_among_live_orgs_and_free_again_after_a_delete(b: Backend) {
    let (_dir, db) = open(b).await;
    let first = with_org(&db, "acme").await;
    let mut w = db.write().await.expect("write");
    let again = Db::insert_org(w.conn(), &org("acme")).await;
    assert!(matches!(again, Err(CpError::AlreadyExists(_))), "{again:?}");
    drop(w);
    let mut w = db.write().await.expect("write");
    Db::delete_org(w.conn(), &first.id).await.expect("delete");
    w.commit().await.expect("commit");
    assert!(matches!(db.org("acme").await, Err(CpError::NotFound(_))));
    let dead = db.dead_slugs().await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "acme");
    // Deleting bumped the version: the removal outranks the last published config.
    assert_eq!(dead[0].1.version, first.config_version + 1);
    let second = with_org(&db, "acme").await;
    assert_eq!(db.org("acme").await.expect("org").id, second.id);
    assert!(db.dead_slugs().await.expect("dead").is_empty());
    // The history of the deleted one is still addressable by its id.
    assert_eq!(db.any_org_id(&first.id).await.expect("any"), first.id);
    assert_eq!(db.any_org_id("acme").await.expect("any"), second.id);
}

async fn orgs_list_in_pages(b: Backend) {
    let (_dir, db) = open(b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(with_org(&db, &format!("org{i}")).await.id);
    }
    ids.sort();
    let page1 = db.list_orgs("", 3).await.expect("page 1");
    let page2 = db
        .list_orgs(&page1.last().expect("a row").id, 3)
        .await
        .expect("page 2");
    let listed: Vec<String> = page1.iter().chain(&page2).map(|o| o.id.clone()).collect();
    assert_eq!(listed, ids);
    assert_eq!(db.all_live_orgs().await.expect("all").len(), 5);
}

async fn tokens_round_trip_and_revoke(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = with_org(&db, "acme").await;
    let t = token(&acme.id, "ci", "nproxy_secret_one");
    let mut w = db.write().await.expect("write");
    Db::insert_token(w.conn(), &t).await.expect("insert");
    // The same secret twice is refused by the unique hash.
    let mut dup = token(&acme.id, "ci2", "nproxy_secret_one");
    dup.id = new_id();
    assert!(Db::insert_token(w.conn(), &dup).await.is_err());
    drop(w);
    let mut w = db.write().await.expect("write");
    Db::insert_token(w.conn(), &t).await.expect("insert");
    w.commit().await.expect("commit");
    let mut r = db.read().await.expect("read");
    let got = Db::token(r.conn(), &acme.id, &t.id).await.expect("token");
    assert_eq!(got.sha256, t.sha256, "bytes come back as stored");
    assert_eq!(got.scopes, t.scopes);
    assert_eq!(got.expires_at_ms, t.expires_at_ms);
    assert_eq!(got.revoked_at_ms, None);
    assert_eq!(
        Db::live_tokens(r.conn(), &acme.id)
            .await
            .expect("live")
            .len(),
        1
    );
    drop(r);
    let mut w = db.write().await.expect("write");
    Db::revoke_token(w.conn(), &t.id).await.expect("revoke");
    w.commit().await.expect("commit");
    let mut r = db.read().await.expect("read");
    assert!(Db::token(r.conn(), &acme.id, &t.id)
        .await
        .expect("token")
        .revoked_at_ms
        .is_some());
    assert!(Db::live_tokens(r.conn(), &acme.id)
        .await
        .expect("live")
        .is_empty());
}

async fn token_use_only_moves_forward(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = with_org(&db, "acme").await;
    let t = token(&acme.id, "ci", "nproxy_secret_two");
    let mut w = db.write().await.expect("write");
    Db::insert_token(w.conn(), &t).await.expect("insert");
    w.commit().await.expect("commit");
    for ms in [2_000, 1_000] {
        let used = std::collections::HashMap::from([(t.id.clone(), ms)]);
        db.record_token_use(&acme.id, &used).await.expect("use");
    }
    let mut r = db.read().await.expect("read");
    let got = Db::token(r.conn(), &acme.id, &t.id).await.expect("token");
    assert_eq!(got.last_used_at_ms, Some(2_000));
}

async fn keys_round_trip_and_retire(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = with_org(&db, "acme").await;
    let k = KeyRow {
        key_id: "k1".into(),
        org_id: acme.id.clone(),
        algorithm: "ecdsa-p256".into(),
        public_key: vec![0, 1, 2, 255],
        private_key_sealed: vec![9; 60],
        created_at_ms: now_ms(),
        retired_at_ms: None,
    };
    let mut w = db.write().await.expect("write");
    Db::insert_key(w.conn(), &k).await.expect("insert");
    w.commit().await.expect("commit");
    let keys = db.keys_of(&acme.id).await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].public_key, k.public_key);
    assert_eq!(keys[0].private_key_sealed, k.private_key_sealed);
    assert_eq!(keys[0].algorithm, "ecdsa-p256");
    let mut w = db.write().await.expect("write");
    Db::retire_keys(w.conn(), &acme.id).await.expect("retire");
    w.commit().await.expect("commit");
    assert!(db.keys_of(&acme.id).await.expect("keys")[0]
        .retired_at_ms
        .is_some());
}

async fn rules_and_exceptions_round_trip(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = with_org(&db, "acme").await;
    let mut w = db.write().await.expect("write");
    assert_eq!(Db::rules(w.conn(), &acme.id).await.expect("rules"), None);
    Db::set_rules(w.conn(), &acme.id, &[8, 1, 0, 255])
        .await
        .expect("set");
    Db::add_exception(w.conn(), "e1", &acme.id, "left-pad", "1.0.0", "ok")
        .await
        .expect("add");
    w.commit().await.expect("commit");
    let mut w = db.write().await.expect("write");
    assert_eq!(
        Db::rules(w.conn(), &acme.id).await.expect("rules"),
        Some(vec![8, 1, 0, 255])
    );
    let dup = Db::add_exception(w.conn(), "e2", &acme.id, "left-pad", "1.0.0", "again").await;
    assert!(dup.is_err(), "one exception per package version");
    drop(w);
    let mut w = db.write().await.expect("write");
    let removed = Db::remove_exception(w.conn(), &acme.id, "e1")
        .await
        .expect("remove");
    assert_eq!(removed, ("left-pad".to_string(), "1.0.0".to_string()));
    w.commit().await.expect("commit");
    let mut r = db.read().await.expect("read");
    assert!(Db::exceptions(r.conn(), &acme.id)
        .await
        .expect("list")
        .is_empty());
}

async fn advisories_replace_their_packages_and_filter_by_package(b: Backend) {
    let (_dir, db) = open(b).await;
    let mut w = db.write().await.expect("write");
    let pkgs = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Db::upsert_advisory(
        w.conn(),
        "GHSA-1",
        "{}",
        "one",
        "high",
        &pkgs(&["a", "b", "b"]),
    )
    .await
    .expect("upsert");
    Db::upsert_advisory(w.conn(), "GHSA-2", "{}", "two", "low", &pkgs(&["c"]))
        .await
        .expect("upsert");
    // Imported again: its package list is replaced, not merged.
    Db::upsert_advisory(
        w.conn(),
        "GHSA-1",
        "{\"v\":2}",
        "one'",
        "critical",
        &pkgs(&["b", "d"]),
    )
    .await
    .expect("upsert again");
    w.commit().await.expect("commit");
    let all = db.advisories(None).await.expect("all");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, "GHSA-1");
    assert_eq!(all[0].1, "{\"v\":2}");
    assert_eq!(all[0].3, "critical");
    assert_eq!(all[0].4, pkgs(&["b", "d"]));
    let about_c = db.advisories(Some("c")).await.expect("about c");
    assert_eq!(about_c.len(), 1);
    assert_eq!(about_c[0].0, "GHSA-2");
    assert_eq!(
        db.advised_packages().await.expect("packages"),
        pkgs(&["b", "c", "d"])
    );
}

async fn an_admin_credential_is_stored_once(b: Backend) {
    let (_dir, db) = open(b).await;
    let h = crate::secrets::sha256("nproxy_admin_secret");
    db.insert_admin("first", &h).await.expect("insert");
    db.insert_admin("again", &h).await.expect("insert again");
    let admins = db.admin_credentials().await.expect("admins");
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].name, "first");
    assert_eq!(admins[0].sha256, h.to_vec());
}

async fn the_audit_chain_appends_filters_and_verifies(b: Backend) {
    let (_dir, db) = open(b).await;
    let mk = MasterKey::generate();
    let acme = with_org(&db, "acme").await;
    for kind in [
        "org.created",
        "token.created",
        "token.revoked",
        "token.created",
    ] {
        assert!(append(&db, &mk, &acme.id, kind, None).await);
    }
    let (n, problems) = verify(&db, &mk, &acme.id).await;
    assert_eq!(n, 4);
    assert!(problems.is_empty(), "{problems:?}");
    let q = AuditQuery {
        org_id: acme.id.clone(),
        kind: "token.created".into(),
        since_ms: 0,
        until_ms: 0,
    };
    let created = db.events(&q, 0, 10).await.expect("events");
    assert_eq!(
        created.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 4]
    );
    let after = db.events(&q, 2, 10).await.expect("events after 2");
    assert_eq!(after.len(), 1);
    let none = db
        .events(
            &AuditQuery {
                until_ms: 1,
                ..q.clone()
            },
            0,
            10,
        )
        .await
        .expect("events before 1 ms");
    assert!(none.is_empty());
    // Editing a row in the database is caught.
    sqlx::query("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
        .execute(&db.pool)
        .await
        .expect("tamper");
    let (_, problems) = verify(&db, &mk, &acme.id).await;
    assert!(!problems.is_empty());
}

async fn an_idempotency_key_records_an_event_once(b: Backend) {
    let (_dir, db) = open(b).await;
    let mk = MasterKey::generate();
    let acme = with_org(&db, "acme").await;
    assert!(append(&db, &mk, &acme.id, "package.blocked", Some("k1")).await);
    assert!(!append(&db, &mk, &acme.id, "package.blocked", Some("k1")).await);
    assert!(append(&db, &mk, &acme.id, "package.blocked", Some("k2")).await);
    let (n, problems) = verify(&db, &mk, &acme.id).await;
    assert_eq!(n, 2);
    assert!(problems.is_empty(), "{problems:?}");
}

async fn a_failed_transaction_leaves_nothing(b: Backend) {
    let (_dir, db) = open(b).await;
    let mk = MasterKey::generate();
    let acme = org("acme");
    {
        let mut w = db.write().await.expect("write");
        Db::insert_org(w.conn(), &acme).await.expect("insert");
        audit::append(
            &mut w,
            &mk,
            NewEvent {
                org_id: &acme.id,
                kind: "org.created",
                actor: "test",
                details: serde_json::json!({}),
                time_ms: now_ms(),
                idempotency_key: None,
            },
        )
        .await
        .expect("append");
        // Dropped without commit.
    }
    assert!(matches!(db.org("acme").await, Err(CpError::NotFound(_))));
    assert!(db.all_events(&acme.id).await.expect("events").is_empty());
    assert!(db.anchor(&acme.id).await.expect("anchor").is_none());
}

/// Two control planes on one PostgreSQL database, appending to one org's chain at once: the
/// head row lock keeps it one unbroken chain (a process mutex could not: there are two).
#[tokio::test]
async fn two_stores_on_one_postgres_database_keep_one_chain() {
    let url = nproxy_test_postgres::database_url();
    let a = std::sync::Arc::new(Db::open(&url).await.expect("open a"));
    let b = std::sync::Arc::new(Db::open(&url).await.expect("open b"));
    let mk = MasterKey::generate();
    let acme = with_org(&a, "acme").await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (mk, org_id) = (mk.clone(), acme.id.clone());
        tasks.push(tokio::spawn(async move {
            append(&db, &mk, &org_id, "token.created", None).await
        }));
    }
    for t in tasks {
        assert!(t.await.expect("task"));
    }
    let (n, problems) = verify(&a, &mk, &acme.id).await;
    assert_eq!(n, 100);
    assert!(problems.is_empty(), "{problems:?}");
}

async fn expired_minted_tokens_are_pruned_and_no_others(b: Backend) {
    let (_dir, db) = open(b).await;
    let acme = with_org(&db, "acme").await;
    let mut old_minted = token(&acme.id, "oidc a", "nproxy_secret_old");
    old_minted.packages = vec!["@acme/app".into()];
    old_minted.expires_at_ms = Some(1_000);
    let mut fresh_minted = token(&acme.id, "oidc b", "nproxy_secret_new");
    fresh_minted.packages = vec!["@acme/app".into()];
    let mut old_plain = token(&acme.id, "ci", "nproxy_secret_ci1");
    old_plain.expires_at_ms = Some(1_000);
    let mut w = db.write().await.expect("write");
    for t in [&old_minted, &fresh_minted, &old_plain] {
        Db::insert_token(w.conn(), t).await.expect("insert");
    }
    w.commit().await.expect("commit");
    assert_eq!(db.prune_minted_tokens(2_000).await.expect("prune"), 1);
    assert_eq!(db.prune_minted_tokens(2_000).await.expect("prune"), 0);
    let mut r = db.read().await.expect("read");
    let left: Vec<String> = Db::live_tokens(r.conn(), &acme.id)
        .await
        .expect("live")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&"oidc a".to_string()), "{left:?}");
}
