//! The pingora application: every npm request is answered here, in `request_filter`; nothing
//! is proxied by pingora itself (upstream fetches need verifying, caching and rewriting).

use std::sync::Arc;

use bytes::Bytes;

use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use nproxy_proto::v1::TokenScope;

use crate::config::Settings;
use crate::error::NpmError;
use crate::http::forward::Forwarder;
use crate::http::respond::{
    discard_unread_body, header, send_json, send_npm_error, send_small, Failure, Handled,
};
use crate::http::tenant::{self, RequestFacts};
use crate::internal::api::{needed_scope, InternalApi, Writer};
use crate::internal::cp_client::ControlPlaneClient;
use crate::internal::outbox::Outbox;
use crate::internal::store::InternalStore;
use crate::metrics::Metrics;
use crate::org::{OrgConfigs, OrgView, Principal};
use crate::public::packuments::Packuments;
use crate::public::tarballs::Tarballs;
use crate::public::upstream::Upstream;
use crate::rules::explain;
use nproxy_core::names::PackageName;
use nproxy_core::route::{self, Route};
use nproxy_core::upstream_route::{package_segment, Forwarded, Gate};
use nproxy_proto::tokens::nproxy_bearer;

pub struct App {
    /// The internal packages' npm API (publish, unpublish, dist-tags, deprecate, reads).
    pub internal_api: InternalApi,
    /// Everything nproxy relays to the upstream (the allow-listed npm endpoints).
    pub forwarder: Forwarder,
    /// Public packuments and tarballs as clients get them.
    pub public: Arc<crate::public::serve::PublicApi>,
    /// Org upstream routes' pipelines (`crate::http::routed`).
    pub routes: Arc<crate::public::routes::Routes>,
    /// `/-/v1/search`: internal packages merged with the upstream's results.
    pub search: crate::search::SearchApi,
    pub internal: Arc<InternalStore>,
    pub outbox: Option<Arc<Outbox>>,
    pub cp: Option<ControlPlaneClient>,
    pub orgs: Arc<OrgConfigs>,
    pub settings: Arc<Settings>,
    pub packuments: Arc<Packuments>,
    pub tarballs: Arc<Tarballs>,
    pub upstream: Arc<Upstream>,
    /// Registry keys, attestations (`crate::http::trust_routes`).
    pub trust: crate::trust::TrustApi,
    pub metrics: Metrics,
    /// Readiness (false while draining for a shutdown).
    pub lifecycle: Arc<crate::http::lifecycle::Lifecycle>,
}

pub struct Ctx {
    route: &'static str,
    status: u16,
    /// Names this request in the log and in a 500's body.
    request_id: String,
}

fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Unique per process and distinct across restarts and replicas.
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| format!("{:08x}", rand::random::<u32>()));
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn route_label(r: &Route) -> &'static str {
    match r {
        Route::Ping => "ping",
        Route::Whoami => "whoami",
        Route::Explain(_) => "explain",
        Route::Forwarded(u) => u.label(),
        Route::Packument(_) | Route::PackumentRev(..) => "packument",
        Route::Tarball(..) | Route::TarballRev(..) => "tarball",
        Route::DistTags(_) | Route::DistTag(..) => "dist-tags",
    }
}

/// The package a route is about, if any.
fn route_package(r: &Route) -> Option<&PackageName> {
    match r {
        Route::Packument(n)
        | Route::PackumentRev(n, _)
        | Route::Tarball(n, _)
        | Route::TarballRev(n, _, _)
        | Route::DistTags(n)
        | Route::DistTag(n, _) => Some(n),
        _ => None,
    }
}

impl App {
    async fn handle(&self, session: &mut Session, ctx: &mut Ctx) -> Handled {
        let req = session.req_header();
        // Health checks come before tenancy: a balancer asks by address, not by org host.
        if let Some((status, body)) =
            crate::http::lifecycle::health_answer(req.uri.path(), &self.lifecycle)
        {
            ctx.route = "health";
            let body = Bytes::from_static(body.as_bytes());
            return send_small(session, status, "application/json", body).await;
        }
        let req = session.req_header();
        let method = req.method.clone();
        // Borrowed from the request: nothing below writes to the session before their
        // last use (copies only where a value outlives that, e.g. the credential).
        let path = req.uri.path();
        let query = req.uri.query();
        let host = header(session, "host").or_else(|| req.uri.host());
        let fwd_host = header(session, "x-forwarded-host");
        let fwd_proto = header(session, "x-forwarded-proto");
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let facts = RequestFacts {
            host,
            forwarded_host: fwd_host,
            forwarded_proto: fwd_proto,
            client_ip,
            path,
        };
        // Trusted publishing's exchange reaches the host's root whatever the org's path.
        if let Some(name) = Self::root_oidc_exchange(path) {
            ctx.route = "oidc";
            let org = self.root_exchange_org(&facts);
            let host = tenant::public_host_name(&self.settings, &facts)?;
            return self
                .oidc_exchange(session, org.as_ref(), &name, &host)
                .await;
        }
        let tenant = tenant::resolve(&self.settings, &facts)?;
        let route = route::route(&tenant.path).map_err(NpmError::from)?;
        let read_only = matches!(method, http::Method::GET | http::Method::HEAD);
        ctx.route = route_label(&route);
        if matches!(route, Route::Ping) {
            if !read_only {
                return Err(NpmError::MethodNotAllowed.into());
            }
            return send_small(session, 200, "application/json", Bytes::from_static(b"{}")).await;
        }
        let authorization = header(session, "authorization").map(str::to_string);
        let view = self
            .orgs
            .view_for(&tenant.org, authorization.as_deref())
            .await?;
        let wants_write = query.is_some_and(|q| q.split('&').any(|kv| kv == "write=true"));
        // Internal packages: the org's own storage, a token always required.
        if let (OrgView::Configured(cfg), Some(name)) = (&view, route_package(&route)) {
            if cfg.is_internal(name) {
                let needed = needed_scope(&method);
                let grant = view.authorize_internal(authorization.as_deref(), needed, name)?;
                self.orgs.record_use(&cfg.org_id, &grant.token_id);
                let secret = nproxy_bearer(authorization.as_deref()).unwrap_or("");
                let writer = Writer::new(&grant, secret);
                return match (route, method) {
                    (Route::Packument(n), http::Method::GET | http::Method::HEAD) => {
                        self.internal_api
                            .internal_packument(session, cfg, &n, &tenant.base_url, wants_write)
                            .await
                    }
                    (Route::Packument(n), http::Method::PUT) => {
                        self.internal_api
                            .internal_put(session, cfg, &n, None, &writer)
                            .await
                    }
                    (Route::PackumentRev(n, rev), http::Method::PUT) => {
                        self.internal_api
                            .internal_put(session, cfg, &n, rev.as_deref(), &writer)
                            .await
                    }
                    (Route::PackumentRev(n, rev), http::Method::DELETE) => {
                        self.internal_api
                            .internal_delete_package(session, cfg, &n, rev.as_deref(), &writer)
                            .await
                    }
                    (Route::Tarball(n, f), http::Method::GET | http::Method::HEAD) => {
                        self.internal_api
                            .internal_tarball(session, cfg, &n, &f)
                            .await
                    }
                    (Route::TarballRev(n, f, _), http::Method::DELETE) => {
                        self.internal_api
                            .internal_delete_tarball(session, cfg, &n, &f)
                            .await
                    }
                    (Route::DistTags(n), http::Method::GET) => {
                        self.internal_api.internal_dist_tags(session, cfg, &n).await
                    }
                    (Route::DistTag(n, tag), http::Method::PUT | http::Method::DELETE) => {
                        self.internal_api
                            .internal_dist_tag_change(session, cfg, &n, &tag, &writer)
                            .await
                    }
                    _ => Err(NpmError::MethodNotAllowed.into()),
                };
            }
        }
        self.refuse_routed(
            &view,
            &route,
            read_only,
            wants_write,
            authorization.as_deref(),
        )?;
        match route {
            Route::Whoami => match (&view, nproxy_bearer(authorization.as_deref())) {
                (OrgView::Configured(_), Some(_)) => {
                    let principal = view.authorize(authorization.as_deref(), TokenScope::Proxy)?;
                    let Principal::Token(grant) = principal else {
                        return Err(NpmError::Unauthorized("not logged in".into()).into());
                    };
                    let body = serde_json::json!({"username": grant.name});
                    send_json(session, 200, &body).await
                }
                // Someone else's token (or none): the upstream knows who that is.
                _ => self.forwarder.forward(session, method, "/-/whoami").await,
            },
            // An internal name is the org's own: no rules apply and nothing is asked of the
            // upstream about it.
            Route::Explain(name)
                if read_only
                    && matches!(&view, OrgView::Configured(cfg) if cfg.is_internal(&name)) =>
            {
                view.authorize_internal(authorization.as_deref(), TokenScope::Proxy, &name)?;
                send_json(session, 200, &explain::internal(&name)).await
            }
            Route::Explain(name) if read_only => {
                self.authorize_public(&view, authorization.as_deref())?;
                let Some(policy) = self.policy(&view, &name).await? else {
                    return Err(NpmError::NotFound(
                        "this registry has no rules (no org config)".into(),
                    )
                    .into());
                };
                let public = self.public_for(&view, &name).await?;
                let v = public.packuments.verdict(&name, &policy).await;
                let v = v.map_err(NpmError::from)?;
                send_json(session, 200, &explain::public(&name, &v, &policy)).await
            }
            Route::Forwarded(Forwarded::OidcExchange(name)) => {
                let host = tenant::public_host_name(&self.settings, &facts)?;
                self.oidc_exchange(session, Some(&tenant.org), &name, &host)
                    .await
            }
            Route::Forwarded(Forwarded::Keys) if read_only => {
                self.registry_keys(session, &view, authorization.as_deref())
                    .await
            }
            Route::Forwarded(Forwarded::Attestations(name, version)) if read_only => {
                self.attestations(session, &view, authorization.as_deref(), &name, &version)
                    .await
            }
            Route::Forwarded(Forwarded::Search) if read_only => {
                self.search
                    .answer(session, &view, authorization.as_deref())
                    .await
            }
            Route::Forwarded(u) => {
                if !u.allows(&method) {
                    return Err(NpmError::MethodNotAllowed.into());
                }
                match u.gate() {
                    // Logging in needs no nproxy token (it is how users get credentials), and
                    // the user's upstream account is the upstream's to authenticate; a
                    // presented nproxy token must still be a valid one.
                    Gate::Anyone | Gate::UpstreamAccount => {
                        view.check_presented(authorization.as_deref())?;
                    }
                    Gate::PublicRead => {
                        self.authorize_public(&view, authorization.as_deref())?;
                    }
                }
                // Internal names never leave nproxy.
                if let (OrgView::Configured(cfg), Some(name)) = (&view, u.package()) {
                    if cfg.is_internal(name) {
                        return Err(
                            NpmError::NotFound(format!("{name} is not on the upstream")).into()
                        );
                    }
                }
                let path = u.upstream_path(query);
                if u == Forwarded::AuditBulk {
                    return crate::rules::audit::bulk(
                        session,
                        &view,
                        &path,
                        &self.orgs,
                        &self.upstream,
                    )
                    .await;
                }
                self.forwarder
                    .forward_account(session, method, &path, &tenant.base_url)
                    .await
            }
            // `?write=true` prepares a write (deprecate, unpublish, owner): the client needs
            // the upstream's own current document and `_rev`, not nproxy's merged copy.
            Route::Packument(ref name) if read_only && wants_write => {
                self.authorize_public(&view, authorization.as_deref())?;
                let path = format!("/{}?write=true", package_segment(name));
                self.forwarder.forward(session, method, &path).await
            }
            Route::Packument(name) if read_only => {
                self.authorize_public(&view, authorization.as_deref())?;
                let policy = self.policy(&view, &name).await?;
                let public = self.public_for(&view, &name).await?;
                (public.packument(session, &name, &tenant.base_url, policy.as_ref())).await
            }
            Route::Tarball(name, file) if read_only => {
                self.authorize_public(&view, authorization.as_deref())?;
                self.refuse_blocked(&view, &name, &file.version().to_string())
                    .await?;
                let public = self.public_for(&view, &name).await?;
                public.tarball(session, &name, &file).await
            }
            Route::DistTags(ref name) if read_only => {
                self.authorize_public(&view, authorization.as_deref())?;
                let path = format!("/-/package/{}/dist-tags", package_segment(name));
                self.forwarder.forward(session, method, &path).await
            }
            // Writes to public packages belong to the upstream: its own token (never an
            // nproxy one, which is stripped) authenticates them there.
            Route::Packument(ref name)
            | Route::PackumentRev(ref name, _)
            | Route::TarballRev(ref name, ..)
            | Route::DistTag(ref name, _)
                if matches!(method, http::Method::PUT | http::Method::DELETE) =>
            {
                // The upstream authenticates these with the user's own token there; without
                // one nothing is relayed (nproxy tokens never leave for the upstream).
                view.check_presented(authorization.as_deref())?;
                let upstream_credential = authorization
                    .as_deref()
                    .is_some_and(|a| nproxy_bearer(Some(a)).is_none() && !a.trim().is_empty());
                if !upstream_credential {
                    return Err(NpmError::Unauthorized(format!(
                        "{name} is a public package: writes to it go to the upstream registry and \
                         need your token there (nproxy tokens are never sent upstream)"
                    ))
                    .into());
                }
                let path = route.upstream_path().ok_or(NpmError::MethodNotAllowed)?;
                self.forwarder
                    .forward_write(session, method, &path, name)
                    .await
            }
            _ => Err(NpmError::MethodNotAllowed.into()),
        }
    }

    pub(crate) fn authorize_public(
        &self,
        view: &OrgView,
        authorization: Option<&str>,
    ) -> Result<(), NpmError> {
        let principal = view.authorize(authorization, TokenScope::Proxy)?;
        if let (OrgView::Configured(cfg), Principal::Token(grant)) = (view, &principal) {
            self.orgs.record_use(&cfg.org_id, &grant.token_id);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ProxyHttp for App {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            route: "unrouted",
            status: 0,
            request_id: new_request_id(),
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Every request is answered in request_filter; reaching here is a bug.
        Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "nproxy answers every request itself",
        ))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        // pingora keeps an HTTP/1.1 connection open forever between requests unless told:
        // an idle client gets this long, then the connection is closed. While draining,
        // every answer closes its connection (`Connection: close`): a load balancer then
        // holds no idle connection to this process that could break under a request sent
        // just as the listeners close.
        if self.lifecycle.ready() {
            session.set_keepalive(Some(self.settings.keepalive_idle.as_secs()));
        } else {
            session.set_keepalive(None);
        }
        match self.handle(session, ctx).await {
            Ok(()) => {
                ctx.status = session
                    .response_written()
                    .map(|r| r.status.as_u16())
                    .unwrap_or(200);
                Ok(true)
            }
            Err(Failure::Npm(e)) if session.response_written().is_none() => {
                ctx.status = e.status();
                if e.status() >= 500 {
                    tracing::warn!(request_id = %ctx.request_id, path = %session.req_header().uri.path(), status = e.status(), error = %e, "request failed");
                }
                if matches!(e.status(), 401 | 403 | 404 | 405) {
                    discard_unread_body(session).await;
                }
                send_npm_error(session, &e, &ctx.request_id).await?;
                Ok(true)
            }
            Err(Failure::Npm(e)) => Err(pingora::Error::explain(
                pingora::ErrorType::InternalError,
                e.to_string(),
            )),
            Err(Failure::Abort(why)) => {
                ctx.status = 0;
                tracing::warn!(path = %session.req_header().uri, reason = %why, "response cut off");
                Err(pingora::Error::explain(
                    pingora::ErrorType::InternalError,
                    why,
                ))
            }
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut Ctx,
    ) -> FailToProxy
    where
        Ctx: Send + Sync,
    {
        // Once headers are out, writing an error would only corrupt the stream: close instead.
        if session.response_written().is_none() {
            tracing::warn!(request_id = %ctx.request_id, error = %e, "request failed");
            let _ =
                send_npm_error(session, &NpmError::Internal(e.to_string()), &ctx.request_id).await;
        }
        FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, ctx: &mut Ctx) {
        let status = if e.is_some() && ctx.status == 0 {
            0
        } else {
            ctx.status
        };
        self.metrics.request(ctx.route, status);
        tracing::debug!(method = %session.req_header().method, path = %session.req_header().uri, status, route = ctx.route, "request");
    }
}
