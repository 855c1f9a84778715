use nproxy_proto::v1 as pb;
use nproxy_proto::v1::data_plane_server::DataPlane;
use tonic::{Request, Response, Status};

use super::{Api, State};
use crate::auth::require_any;
use crate::error::CpResult;
use crate::snapshot;
use crate::store::Db;

#[tonic::async_trait]
impl DataPlane for Api {
    async fn get_org_config(
        &self,
        req: Request<pb::GetOrgConfigRequest>,
    ) -> Result<Response<pb::OrgConfigSnapshot>, Status> {
        require_any(&req)?;
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        // The org row again inside the read transaction: its config version must describe
        // the tokens, keys and rules read with it, even if a change commits in between.
        let mut r = st.db.read().await?;
        let org = Db::org_in(r.conn(), &org.id).await?;
        let snap = snapshot::build(r.conn(), &org).await?;
        Ok(Response::new(snap))
    }
}

/// How long an expired trusted-publishing token stays listed.
const MINTED_TOKEN_KEEP_MS: i64 = 24 * 3600 * 1000;

/// Writes every org whose published snapshot is missing or outdated, and removes deleted
/// ones, so a flushed or restarted Redis recovers by itself. Returns how many were written.
pub async fn reconcile_once(st: &State) -> CpResult<usize> {
    let mut written = 0;
    // Trusted publishing mints a token per CI publish; a day after expiry it goes (the audit
    // log keeps its record).
    // A failure here must not stop Redis being repaired below.
    match st
        .db
        .prune_minted_tokens(nproxy_common::time::now_ms() - MINTED_TOKEN_KEEP_MS)
        .await
    {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "deleted expired trusted-publishing tokens"),
        Err(e) => tracing::warn!(error = %e, "cannot delete expired trusted-publishing tokens"),
    }
    for org in st.db.all_live_orgs().await? {
        // Token use reported to Redis outlives a flush once it is in the database.
        if let Ok(used) = st.sink.token_usage(&org.id).await {
            st.db.record_token_use(&org.id, &used).await?;
        }
        let published = match st.sink.published_stamp(&org.slug).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: cannot read Redis");
                return Ok(written);
            }
        };
        if published == Some(org.stamp()) {
            continue;
        }
        let (stamp, bytes) = st.snapshot_bytes(&org.id).await?;
        match st.sink.publish(&org.slug, stamp, bytes).await {
            Ok(true) => written += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(org = %org.slug, error = %e, "reconcile: cannot publish");
                return Ok(written);
            }
        }
    }
    for (slug, stamp) in st.db.dead_slugs().await? {
        if matches!(st.sink.published_stamp(&slug).await, Ok(Some(p)) if p < stamp) {
            if let Ok(true) = st.sink.publish(&slug, stamp, None).await {
                written += 1;
            }
        }
    }
    // Advisories too: a flushed Redis must not silently stop malware blocking.
    for package in st.db.advised_packages().await? {
        if matches!(st.sink.has_advisories(&package).await, Ok(false)) {
            st.publish_advisories(&package).await?;
            written += 1;
        }
    }
    if written > 0 {
        tracing::info!(written, "reconcile: republished org config");
    }
    Ok(written)
}
