//! `UpstreamRoutes`: admins route names (a scope, an exact name, a prefix) of their org to
//! another registry, with that registry's credential, which is sealed under the master key
//! at once and never answered to an admin again; data planes read the routes from the
//! org's snapshot and the opened credentials with their own credential only
//! (`GetUpstreamCredentials`, `auth::require_data_plane`). No credential is ever logged,
//! audited or part of a snapshot.

use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::upstream_routes_server::UpstreamRoutes;
use nproxy_proto::validate::FieldError;
use serde_json::json;
use sqlx::AnyConnection;
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};

use super::upstream_check::{self as check, Credential};
use super::{Api, Change};
use crate::auth::{require_admin, require_data_plane};
use crate::error::{CpError, CpResult};
use crate::store::{new_id, now_ms, Db, UpstreamRouteRow};

/// Routes one org may have: every data plane resolves each public name against them all.
pub(super) const MAX_PER_ORG: usize = 50;

fn route_pb(r: &UpstreamRouteRow) -> pb::UpstreamRoute {
    pb::UpstreamRoute {
        id: r.id.clone(),
        org_id: r.org_id.clone(),
        pattern: r.pattern.clone(),
        url: r.url.clone(),
        has_credential: r.credential_sealed.is_some(),
        created_at_ms: r.created_at_ms,
        version: r.version,
    }
}

/// What the audit log records of a route: never the credential, only whether there is one.
fn audited(r: &UpstreamRouteRow) -> serde_json::Value {
    json!({
        "id": r.id, "pattern": r.pattern, "url": r.url,
        "has_credential": r.credential_sealed.is_some(), "version": r.version,
    })
}

/// Refuses internal scopes that one of the org's routes covers (settings changes check it
/// in their transaction): an internal name must never be routed to any upstream.
pub(super) async fn refuse_routed_internal_scopes(
    conn: &mut AnyConnection,
    org_id: &str,
    scopes: &[String],
) -> CpResult<()> {
    let routes = Db::upstream_routes(conn, org_id).await?;
    let patterns = routes.iter().map(|r| r.pattern.as_str());
    match check::routed_internal_scope(patterns, scopes) {
        None => Ok(()),
        Some((pattern, scope)) => Err(FieldError::new(
            "internal_scopes",
            format!(
                "{scope} is routed to an upstream (route for {pattern:?}): remove the route \
                 first (nproxyctl upstream remove), internal names never leave nproxy"
            ),
        )
        .into()),
    }
}

fn same(a: Option<&Credential>, b: Option<&Credential>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => bool::from(a.expose().as_bytes().ct_eq(b.expose().as_bytes())),
        _ => false,
    }
}

/// Scheme, host and port of a stored (validated, normalized) URL.
fn origin(u: &str) -> Option<String> {
    url::Url::parse(u)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

#[tonic::async_trait]
impl UpstreamRoutes for Api {
    async fn add_upstream_route(
        &self,
        req: Request<pb::AddUpstreamRouteRequest>,
    ) -> Result<Response<pb::UpstreamRoute>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let url = check::check_url(&r.url)?;
        let credential = check::check_credential(&r.credential)?;
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let pattern = check::check_pattern(&r.pattern, &org.internal_scopes)?;
        let id = new_id();
        let version = 1;
        let row = UpstreamRouteRow {
            credential_sealed: credential
                .as_ref()
                .map(|c| check::seal(&st.master_key, &id, version, c))
                .transpose()?,
            id,
            org_id: org.id.clone(),
            pattern,
            url,
            version,
            created_at_ms: now_ms(),
        };
        drop(credential);
        st.mutate(&org, &actor, async |conn| {
            // The org's scopes as of this transaction, not as read before it.
            let fresh = Db::org_in(&mut *conn, &org.id).await?;
            check::check_pattern(&row.pattern, &fresh.internal_scopes)?;
            let existing = Db::upstream_routes(&mut *conn, &org.id).await?;
            if let Some(taken) = existing.iter().find(|e| e.pattern == row.pattern) {
                return Err(CpError::AlreadyExists(format!(
                    "upstream route {} for {:?}",
                    taken.id, row.pattern
                )));
            }
            if existing.len() >= MAX_PER_ORG {
                return Err(CpError::FailedPrecondition(format!(
                    "org {} already has {MAX_PER_ORG} upstream routes; remove one first",
                    org.slug
                )));
            }
            Db::insert_upstream_route(&mut *conn, &row).await?;
            Db::bump_config_version(conn, &org.id).await?;
            Ok(Change::new((), events::UPSTREAM_ROUTE_ADDED, audited(&row)))
        })
        .await?;
        Ok(Response::new(route_pb(&row)))
    }

    async fn update_upstream_route(
        &self,
        req: Request<pb::UpdateUpstreamRouteRequest>,
    ) -> Result<Response<pb::UpstreamRoute>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let url = r.url.as_deref().map(check::check_url).transpose()?;
        // `Some(None)`: remove the credential; `None`: keep it.
        let credential = r
            .credential
            .as_deref()
            .map(check::check_credential)
            .transpose()?;
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let mk = &st.master_key;
        let row = st
            .mutate(&org, &actor, async |conn| {
                let Some(old) = Db::upstream_route(&mut *conn, &org.id, &r.id).await? else {
                    return Err(CpError::NotFound(format!(
                        "upstream route {:?} of org {}",
                        r.id, org.slug
                    )));
                };
                let held = old
                    .credential_sealed
                    .as_deref()
                    .map(|s| check::open(mk, &old.id, old.version, s))
                    .transpose()?;
                let next_url = url.clone().unwrap_or_else(|| old.url.clone());
                let url_changed = next_url != old.url;
                // A held credential never follows the route to another origin (an admin
                // could otherwise read it there): moving it needs the credential again.
                if held.is_some() && credential.is_none() && origin(&next_url) != origin(&old.url) {
                    return Err(FieldError::new(
                        "credential",
                        "the URL moves to another origin: give the credential again (or \"\" for none)",
                    )
                    .into());
                }
                let next = match &credential {
                    Some(c) => c.clone(),
                    None => held.clone(),
                };
                let credential_changed = !same(held.as_ref(), next.as_ref());
                if !url_changed && !credential_changed {
                    return Ok(Change::none(old));
                }
                // A new version for any change: data planes refetch the credential, and the
                // credential (even an unchanged one) is sealed again, bound to it.
                let version = old.version + 1;
                let row = UpstreamRouteRow {
                    credential_sealed: next
                        .as_ref()
                        .map(|c| check::seal(mk, &old.id, version, c))
                        .transpose()?,
                    url: next_url,
                    version,
                    ..old.clone()
                };
                Db::update_upstream_route(&mut *conn, &row).await?;
                Db::bump_config_version(conn, &org.id).await?;
                let mut details = audited(&row);
                details["previous_url"] = json!(old.url);
                details["url_changed"] = json!(url_changed);
                details["credential_changed"] = json!(credential_changed);
                Ok(Change::new(row, events::UPSTREAM_ROUTE_UPDATED, details))
            })
            .await?;
        Ok(Response::new(route_pb(&row)))
    }

    async fn list_upstream_routes(
        &self,
        req: Request<pb::ListUpstreamRoutesRequest>,
    ) -> Result<Response<pb::ListUpstreamRoutesResponse>, Status> {
        require_admin(&req)?;
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        let routes = st.db.upstream_routes_of(&org.id).await?;
        Ok(Response::new(pb::ListUpstreamRoutesResponse {
            routes: routes.iter().map(route_pb).collect(),
        }))
    }

    async fn remove_upstream_route(
        &self,
        req: Request<pb::RemoveUpstreamRouteRequest>,
    ) -> Result<Response<pb::RemoveUpstreamRouteResponse>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let removed = st
            .mutate(&org, &actor, async |conn| {
                match Db::delete_upstream_route(&mut *conn, &org.id, &r.id).await? {
                    // Not (or no longer) there: nothing recorded.
                    None => Ok(Change::none(false)),
                    Some(gone) => {
                        Db::bump_config_version(conn, &org.id).await?;
                        Ok(Change::new(
                            true,
                            events::UPSTREAM_ROUTE_REMOVED,
                            audited(&gone),
                        ))
                    }
                }
            })
            .await?;
        Ok(Response::new(pb::RemoveUpstreamRouteResponse { removed }))
    }

    async fn get_upstream_credentials(
        &self,
        req: Request<pb::GetUpstreamCredentialsRequest>,
    ) -> Result<Response<pb::GetUpstreamCredentialsResponse>, Status> {
        // Data planes only: nothing an admin holds reads a stored credential back.
        require_data_plane(&req)?;
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        let routes = st.db.upstream_routes_of(&org.id).await?;
        let mut credentials = Vec::new();
        for r in &routes {
            if let Some(sealed) = &r.credential_sealed {
                let c = check::open(&st.master_key, &r.id, r.version, sealed)?;
                credentials.push(pb::UpstreamCredential {
                    route_id: r.id.clone(),
                    version: r.version,
                    credential: c.into_exposed(),
                });
            }
        }
        Ok(Response::new(pb::GetUpstreamCredentialsResponse {
            credentials,
        }))
    }
}

#[cfg(test)]
#[path = "upstream_routes_tests.rs"]
mod tests;
