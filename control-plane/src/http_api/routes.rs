//! The routes under `/api/v1`, each one gRPC call: the path and method pick it, the query or
//! body fill its request, its answer is written as JSON. `{orgId}` is the org's id or slug,
//! as every gRPC call's `org` is.

use http::{Method, StatusCode};
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::audit_server::Audit;
use nproxy_proto::v1::keys_server::Keys;
use nproxy_proto::v1::orgs_server::Orgs;
use nproxy_proto::v1::rules_service_server::RulesService;
use nproxy_proto::v1::tokens_server::Tokens;
use nproxy_proto::v1::trusted_publishers_server::TrustedPublishers;
use nproxy_proto::v1::upstream_routes_server::UpstreamRoutes;
use serde_json::{json, Value};

use super::json::{self, Obj, Query};
use super::{ApiError, Ctx, Reply};
use crate::service::Api;

const PREFIX: &str = "/api/v1/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    OpenApi,
    Orgs,
    Org(String),
    Settings(String),
    Tokens(String),
    RevokeToken(String, String),
    Keys(String),
    RotateKey(String),
    Rules(String),
    Exceptions(String),
    Exception(String, String),
    AuditEvents(String),
    AuditVerify(String),
    Publishers(String),
    Publisher(String, String),
    Upstreams(String),
    Upstream(String, String),
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

impl Route {
    /// The route a path names (segments percent-decoded); 404 for anything else.
    pub(crate) fn parse(path: &str) -> Result<Route, ApiError> {
        let rest = path.strip_prefix(PREFIX).ok_or_else(not_found)?;
        let mut segs = Vec::new();
        for raw in rest.split('/') {
            let seg = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request("the path is not UTF-8"))?;
            if seg.is_empty() {
                return Err(not_found());
            }
            if seg.contains('\0') {
                // No id or slug holds one, and PostgreSQL text refuses it.
                return Err(ApiError::bad_request(
                    "the path must not contain NUL characters",
                ));
            }
            segs.push(seg.into_owned());
        }
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let o = |i: usize| segs[i].clone();
        Ok(match s.as_slice() {
            ["openapi.json"] => Route::OpenApi,
            ["orgs"] => Route::Orgs,
            ["orgs", _] => Route::Org(o(1)),
            ["orgs", _, "settings"] => Route::Settings(o(1)),
            ["orgs", _, "tokens"] => Route::Tokens(o(1)),
            ["orgs", _, "tokens", _, "revoke"] => Route::RevokeToken(o(1), o(3)),
            ["orgs", _, "keys"] => Route::Keys(o(1)),
            ["orgs", _, "keys", "rotate"] => Route::RotateKey(o(1)),
            ["orgs", _, "rules"] => Route::Rules(o(1)),
            ["orgs", _, "exceptions"] => Route::Exceptions(o(1)),
            ["orgs", _, "exceptions", _] => Route::Exception(o(1), o(3)),
            ["orgs", _, "audit", "events"] => Route::AuditEvents(o(1)),
            ["orgs", _, "audit", "verify"] => Route::AuditVerify(o(1)),
            ["orgs", _, "trusted-publishers"] => Route::Publishers(o(1)),
            ["orgs", _, "trusted-publishers", _] => Route::Publisher(o(1), o(3)),
            ["orgs", _, "upstreams"] => Route::Upstreams(o(1)),
            ["orgs", _, "upstreams", _] => Route::Upstream(o(1), o(3)),
            _ => return Err(not_found()),
        })
    }

    /// The `Allow` header: the methods this route answers.
    pub(crate) fn allow(&self) -> &'static str {
        match self {
            Route::OpenApi | Route::Keys(_) | Route::AuditEvents(_) | Route::AuditVerify(_) => {
                "GET"
            }
            Route::Orgs
            | Route::Tokens(_)
            | Route::Exceptions(_)
            | Route::Publishers(_)
            | Route::Upstreams(_) => "GET, POST",
            Route::Upstream(..) => "PUT, DELETE",
            Route::Org(_) => "GET, DELETE",
            Route::Settings(_) | Route::Rules(_) => "GET, PUT",
            Route::RevokeToken(..) | Route::RotateKey(_) => "POST",
            Route::Exception(..) | Route::Publisher(..) => "DELETE",
        }
    }

    pub(crate) fn allows(&self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }

    /// Calls that carry a JSON body.
    pub(crate) fn takes_body(&self, method: &Method) -> bool {
        *method == Method::PUT
            || (*method == Method::POST
                && !matches!(self, Route::RevokeToken(..) | Route::RotateKey(_)))
    }
}

fn required(o: &mut Obj, key: &str) -> Result<String, ApiError> {
    // Absent is empty: the gRPC validation says what is wrong with it.
    Ok(o.string(key)?.unwrap_or_default())
}

fn token_scopes(names: Vec<String>) -> Result<Vec<i32>, ApiError> {
    names
        .iter()
        .map(|n| {
            pb::TokenScope::from_label(n)
                .map(|s| s as i32)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "scopes: {n:?} is not a token scope (proxy or publish)"
                    ))
                })
        })
        .collect()
}

/// Calls the service for `route` and `method` (already checked to match).
pub(crate) async fn dispatch(
    api: &Api,
    ctx: &Ctx,
    route: Route,
    method: &Method,
    q: Query,
    body: Option<Obj>,
) -> Result<Reply, ApiError> {
    let mut b = body.unwrap_or_else(Obj::empty);
    let is_get = *method == Method::GET;
    Ok(match route {
        Route::OpenApi => return Err(not_found()),
        Route::Orgs if is_get => {
            let r = pb::ListOrgsRequest {
                page_size: q.u32("pageSize")?,
                page_token: q.string("pageToken")?,
            };
            let r = api.list_orgs(ctx.request(r)).await?.into_inner();
            let orgs: Vec<Value> = r.orgs.iter().map(json::org).collect();
            Reply::ok(json!({"orgs": orgs, "nextPageToken": r.next_page_token}))
        }
        Route::Orgs => {
            let r = pb::CreateOrgRequest {
                slug: required(&mut b, "slug")?,
                display_name: b.string("displayName")?.unwrap_or_default(),
            };
            b.finish()?;
            Reply::created(json::org(
                &api.create_org(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Org(org) if is_get => {
            let r = pb::GetOrgRequest { org };
            Reply::ok(json::org(&api.get_org(ctx.request(r)).await?.into_inner()))
        }
        Route::Org(org) => {
            api.delete_org(ctx.request(pb::DeleteOrgRequest { org }))
                .await?;
            Reply::no_content()
        }
        Route::Settings(org) if is_get => {
            let r = pb::GetSettingsRequest { org };
            Reply::ok(json::settings(
                &api.get_settings(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Settings(org) => {
            let r = pb::UpdateSettingsRequest {
                org,
                internal_scopes: b
                    .strings("internalScopes")?
                    .map(|scopes| pb::ScopeList { scopes }),
                public_reads: b.boolean("publicReads")?,
            };
            b.finish()?;
            Reply::ok(json::settings(
                &api.update_settings(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Tokens(org) if is_get => {
            let r = pb::ListTokensRequest {
                org,
                page_size: q.u32("pageSize")?,
                page_token: q.string("pageToken")?,
                include_revoked: q.boolean("includeRevoked")?,
            };
            let r = api.list_tokens(ctx.request(r)).await?.into_inner();
            let tokens: Vec<Value> = r.tokens.iter().map(json::token).collect();
            Reply::ok(json!({"tokens": tokens, "nextPageToken": r.next_page_token}))
        }
        Route::Tokens(org) => {
            let r = pb::CreateTokenRequest {
                org,
                name: required(&mut b, "name")?,
                scopes: token_scopes(b.strings("scopes")?.unwrap_or_default())?,
                expires_at_ms: b.i64("expiresAtMs")?,
            };
            b.finish()?;
            let r = api.create_token(ctx.request(r)).await?.into_inner();
            let token = r.token.as_ref().map(json::token).unwrap_or(Value::Null);
            Reply::created(json!({"token": token, "secret": r.secret}))
        }
        Route::RevokeToken(org, token_id) => {
            let r = pb::RevokeTokenRequest { org, token_id };
            Reply::ok(json::token(
                &api.revoke_token(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Keys(org) => {
            let r = api
                .list_keys(ctx.request(pb::ListKeysRequest { org }))
                .await?
                .into_inner();
            let keys: Vec<Value> = r.keys.iter().map(json::key).collect();
            Reply::ok(json!({ "keys": keys }))
        }
        Route::RotateKey(org) => {
            let r = pb::RotateKeyRequest { org };
            Reply::ok(json::key(
                &api.rotate_key(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Rules(org) if is_get => {
            let r = pb::GetRulesRequest { org };
            Reply::ok(json::rules(
                &api.get_rules(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Rules(org) => {
            let r = pb::SetRulesRequest {
                org,
                rules: Some(json::rules_from(b)?),
            };
            Reply::ok(json::rules(
                &api.set_rules(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Exceptions(org) if is_get => {
            let r = api
                .list_exceptions(ctx.request(pb::ListExceptionsRequest { org }))
                .await?
                .into_inner();
            let list: Vec<Value> = r.exceptions.iter().map(json::exception).collect();
            Reply::ok(json!({ "exceptions": list }))
        }
        Route::Exceptions(org) => {
            let r = pb::AddExceptionRequest {
                org,
                package: required(&mut b, "package")?,
                version: required(&mut b, "version")?,
                reason: b.string("reason")?.unwrap_or_default(),
            };
            b.finish()?;
            Reply::created(json::exception(
                &api.add_exception(ctx.request(r)).await?.into_inner(),
            ))
        }
        Route::Exception(org, id) => {
            let r = pb::RemoveExceptionRequest { org, id };
            api.remove_exception(ctx.request(r)).await?;
            Reply::no_content()
        }
        Route::AuditEvents(org) => {
            let r = pb::ListEventsRequest {
                org,
                r#type: q.string("type")?,
                since_ms: q.i64("sinceMs")?,
                until_ms: q.i64("untilMs")?,
                page_size: q.u32("pageSize")?,
                page_token: q.string("pageToken")?,
            };
            let r = api.list_events(ctx.request(r)).await?.into_inner();
            let events: Vec<Value> = r.events.iter().map(json::event).collect();
            Reply::ok(json!({"events": events, "nextPageToken": r.next_page_token}))
        }
        Route::AuditVerify(org) => {
            let r = pb::VerifyChainRequest { org };
            let r = api.verify_chain(ctx.request(r)).await?.into_inner();
            Reply::ok(
                json!({"ok": r.ok, "eventsChecked": r.events_checked, "problems": r.problems}),
            )
        }
        Route::Publishers(org) if is_get => {
            let r = pb::ListTrustedPublishersRequest { org };
            let r = api
                .list_trusted_publishers(ctx.request(r))
                .await?
                .into_inner();
            let list: Vec<Value> = r.publishers.iter().map(json::publisher).collect();
            Reply::ok(json!({ "publishers": list }))
        }
        Route::Publishers(org) => {
            let r = pb::AddTrustedPublisherRequest {
                org,
                issuer: required(&mut b, "issuer")?,
                package: required(&mut b, "package")?,
                claims: b.string_map("claims")?.unwrap_or_default(),
            };
            b.finish()?;
            Reply::created(json::publisher(
                &api.add_trusted_publisher(ctx.request(r))
                    .await?
                    .into_inner(),
            ))
        }
        Route::Publisher(org, id) => {
            let r = pb::RemoveTrustedPublisherRequest { org, id };
            let r = api
                .remove_trusted_publisher(ctx.request(r))
                .await?
                .into_inner();
            Reply::ok(json!({"removed": r.removed}))
        }
        // Upstream routes: a credential goes in (write-only), never comes back out.
        Route::Upstreams(org) if is_get => {
            let r = pb::ListUpstreamRoutesRequest { org };
            let r = api.list_upstream_routes(ctx.request(r)).await?.into_inner();
            let list: Vec<Value> = r.routes.iter().map(json::upstream_route).collect();
            Reply::ok(json!({ "routes": list }))
        }
        Route::Upstreams(org) => {
            let r = pb::AddUpstreamRouteRequest {
                org,
                pattern: required(&mut b, "pattern")?,
                url: required(&mut b, "url")?,
                credential: b.string("credential")?.unwrap_or_default(),
            };
            b.finish()?;
            let route = api.add_upstream_route(ctx.request(r)).await?.into_inner();
            Reply::created(json::upstream_route(&route))
        }
        Route::Upstream(org, id) if *method == Method::PUT => {
            let r = pb::UpdateUpstreamRouteRequest {
                org,
                id,
                url: b.string("url")?,
                credential: b.string("credential")?,
            };
            b.finish()?;
            let route = api
                .update_upstream_route(ctx.request(r))
                .await?
                .into_inner();
            Reply::ok(json::upstream_route(&route))
        }
        Route::Upstream(org, id) => {
            let r = pb::RemoveUpstreamRouteRequest { org, id };
            let r = api
                .remove_upstream_route(ctx.request(r))
                .await?
                .into_inner();
            Reply::ok(json!({"removed": r.removed}))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_routes_and_org_ids_are_decoded() {
        assert_eq!(
            Route::parse("/api/v1/orgs/acme/settings").expect("settings"),
            Route::Settings("acme".into())
        );
        assert_eq!(
            Route::parse("/api/v1/orgs/a%2Fb/tokens/t1/revoke").expect("revoke"),
            Route::RevokeToken("a/b".into(), "t1".into())
        );
        for missing in [
            "/api/v1",
            "/api/v1/",
            "/api/v1/orgs/",
            "/api/v1/orgs//settings",
            "/api/v2/orgs",
            "/api/v1/orgs/acme/nope",
        ] {
            let e = Route::parse(missing).expect_err(missing);
            assert_eq!(e.status, StatusCode::NOT_FOUND, "{missing}");
        }
        let nul = Route::parse("/api/v1/orgs/a%00/settings").expect_err("a NUL");
        assert_eq!(nul.status, StatusCode::BAD_REQUEST);
        let s = Route::Settings("acme".into());
        assert!(s.allows(&Method::PUT) && s.allows(&Method::GET));
        assert!(!s.allows(&Method::POST) && !s.allows(&Method::HEAD));
        assert!(s.takes_body(&Method::PUT));
        assert!(!Route::RotateKey("a".into()).takes_body(&Method::POST));
    }

    /// The OpenAPI document describes exactly the routes and methods served.
    #[test]
    fn the_openapi_document_lists_every_route_and_method() {
        let doc: Value = serde_json::from_str(super::super::OPENAPI_JSON).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut routes = std::collections::HashSet::new();
        for (path, item) in paths {
            let concrete = format!("/api/v1{path}")
                .replace("{orgId}", "acme")
                .replace("{tokenId}", "t")
                .replace("{exceptionId}", "e")
                .replace("{publisherId}", "p")
                .replace("{routeId}", "r");
            let route = Route::parse(&concrete).expect(path);
            let mut documented: Vec<String> = item
                .as_object()
                .expect("path item")
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            documented.sort();
            let mut served: Vec<String> = route.allow().split(", ").map(str::to_string).collect();
            served.sort();
            assert_eq!(documented, served, "{path}");
            routes.insert(std::mem::discriminant(&route));
        }
        assert_eq!(routes.len(), 17, "one path per route");
    }
}
