//! The store against a real SQLite file: what `Read` promises (no waiting for the writer,
//! one consistent state per transaction).

use std::time::Duration;

use super::*;
use crate::error::CpError;

async fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("cp.db")).await.expect("open");
    (dir, db)
}

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

#[tokio::test]
async fn a_read_does_not_wait_for_an_open_write() {
    let (_dir, db) = open().await;
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

#[tokio::test]
async fn a_read_sees_one_state_throughout() {
    let (_dir, db) = open().await;
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

#[tokio::test]
async fn an_added_exception_answers_with_the_time_it_stored() {
    let (_dir, db) = open().await;
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
