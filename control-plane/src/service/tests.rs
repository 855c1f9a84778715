//! `State::mutate` against a real database (SQLite and PostgreSQL) and a recording sink: what is committed,
//! recorded and published, and in which order.

use std::collections::HashMap;
use std::sync::Mutex;

use prost::Message;
use serde_json::json;

use super::*;
use crate::store::{new_id, now_ms, Backend};

/// A sink that remembers what it was asked to do.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn push(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl ConfigSink for Recorder {
    async fn publish(
        &self,
        slug: &str,
        _stamp: crate::sink::Stamp,
        snapshot: Option<Vec<u8>>,
    ) -> Result<bool, String> {
        let version = snapshot
            .map(|b| pb::OrgConfigSnapshot::decode(b.as_slice()).map(|s| s.version))
            .transpose()
            .map_err(|e| e.to_string())?;
        self.push(format!("publish {slug} {version:?}"));
        Ok(true)
    }
    async fn published_stamp(&self, _slug: &str) -> Result<Option<crate::sink::Stamp>, String> {
        Ok(None)
    }
    async fn set_audit_head(&self, _org_id: &str, seq: i64, _hash: &str) -> Result<(), String> {
        self.push(format!("head {seq}"));
        Ok(())
    }
    async fn audit_head(&self, _org_id: &str) -> Result<Option<(i64, String)>, String> {
        Ok(None)
    }
    async fn token_usage(&self, _org_id: &str) -> Result<HashMap<String, i64>, String> {
        Ok(HashMap::new())
    }
    async fn publish_advisories(&self, _p: &str, _json: Option<Vec<u8>>) -> Result<(), String> {
        Ok(())
    }
    async fn has_advisories(&self, _package: &str) -> Result<bool, String> {
        Ok(true)
    }
}

crate::store::on_both_backends!(
    a_change_commits_with_its_events_then_is_published,
    a_failed_change_leaves_nothing_behind,
    no_change_is_rolled_back_unrecorded_and_unpublished,
    a_nul_in_client_text_is_the_client_s_error,
);

async fn state(b: Backend) -> (Option<tempfile::TempDir>, Arc<Recorder>, State) {
    let (dir, db) = crate::store::test_db(b).await;
    let sink = Arc::new(Recorder::default());
    let (events, _) = broadcast::channel(16);
    let st = State {
        db,
        master_key: MasterKey::generate(),
        sink: sink.clone(),
        auth: Authenticator::new(None),
        events,
        oidc: crate::oidc::Oidc::new(std::time::Duration::from_secs(900)).expect("oidc"),
    };
    (dir, sink, st)
}

fn acme() -> OrgRow {
    OrgRow {
        id: new_id(),
        slug: "acme".into(),
        display_name: "Acme".into(),
        created_at_ms: now_ms(),
        config_version: 1,
        internal_scopes: Vec::new(),
        public_reads: true,
    }
}

async fn a_change_commits_with_its_events_then_is_published(b: Backend) {
    let (_dir, sink, st) = state(b).await;
    let mut follower = st.events.subscribe();
    let org = acme();
    let answer = st
        .mutate(&org, "admin:t", async |conn| {
            Db::insert_org(conn, &org).await?;
            Ok(Change::new(7, "org.created", json!({"slug": "acme"}))
                .then("key.created", json!({"key_id": "k"})))
        })
        .await
        .expect("mutate");
    assert_eq!(answer, 7);
    // Published after the commit: the snapshot is the committed org, then the new heads.
    assert_eq!(sink.calls(), ["publish acme Some(1)", "head 1", "head 2"]);
    let events = st.db.all_events(&org.id).await.expect("events");
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["org.created", "key.created"]);
    assert!(events.iter().all(|e| e.actor == "admin:t"));
    assert_eq!(events[1].details_json, r#"{"key_id":"k"}"#);
    let anchor = st.db.anchor(&org.id).await.expect("anchor");
    let problems = chain::verify(&org.id, &events, anchor.as_ref(), None, &st.master_key);
    assert!(problems.is_empty(), "{problems:?}");
    for want in ["org.created", "key.created"] {
        assert_eq!(follower.recv().await.expect("followed").kind, want);
    }
}

async fn a_failed_change_leaves_nothing_behind(b: Backend) {
    let (_dir, sink, st) = state(b).await;
    let org = acme();
    let err = st
        .mutate(&org, "admin:t", async |conn| -> CpResult<Change<()>> {
            Db::insert_org(conn, &org).await?;
            Err(CpError::FailedPrecondition("no".into()))
        })
        .await
        .expect_err("the change fails");
    assert!(matches!(err, CpError::FailedPrecondition(m) if m == "no"));
    assert!(matches!(
        st.db.org(&org.id).await,
        Err(CpError::NotFound(_))
    ));
    assert!(st.db.all_events(&org.id).await.expect("events").is_empty());
    assert!(sink.calls().is_empty());
}

async fn no_change_is_rolled_back_unrecorded_and_unpublished(b: Backend) {
    let (_dir, sink, st) = state(b).await;
    let org = acme();
    let answer = st
        .mutate(&org, "admin:t", async |conn| {
            Db::insert_org(conn, &org).await?;
            Ok(Change::none("as it was"))
        })
        .await
        .expect("mutate");
    assert_eq!(answer, "as it was");
    assert!(matches!(
        st.db.org(&org.id).await,
        Err(CpError::NotFound(_))
    ));
    assert!(st.db.all_events(&org.id).await.expect("events").is_empty());
    assert!(sink.calls().is_empty());
}

/// PostgreSQL refuses NUL in text; a client that sends one gets INVALID_ARGUMENT, not an
/// internal error (schemathesis found this through the HTTP API).
async fn a_nul_in_client_text_is_the_client_s_error(b: Backend) {
    let (_dir, _sink, st) = state(b).await;
    let err = st.db.org("ac\0me").await.expect_err("no such org");
    let status = tonic::Status::from(err);
    assert!(
        matches!(
            status.code(),
            tonic::Code::NotFound | tonic::Code::InvalidArgument
        ),
        "{status:?}"
    );
}
