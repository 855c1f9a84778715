//! The JSON/HTTP admin API (`http_listen`): routes under `/api/v1` mapped one to one to the
//! gRPC services. Each request is authenticated by the gRPC interceptor's own
//! `Authenticator::intercept` and handed to the service trait methods of `Api` as a
//! `tonic::Request` carrying the caller, so `require_admin`, validation and auditing are
//! the gRPC ones; a `tonic::Status` becomes an HTTP status and `{"error": …}`. The OpenAPI
//! document (`openapi.json`, embedded) is served at `/api/v1/openapi.json`.

mod json;
mod routes;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Caller;
use crate::service::Api;

/// The OpenAPI 3 document describing exactly these routes.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Largest request body taken (every body of this API is a small JSON object).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// After the drain: how long requests under way get to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves the API on `listener` until `stop` turns true (or its sender is dropped), then
/// closes the listener and idle connections and lets requests under way finish.
pub(crate) async fn serve(api: Api, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let api = api.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(handle(&api, req).await) }
                    });
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "admin HTTP connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    tracing::warn!(error = %e, "admin HTTP API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = async { let _ = stop.wait_for(|v| *v).await; } => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin HTTP API: requests still under way after the grace period");
    }
}

/// An answer that is not a success: its status and the message of `{"error": …}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    allow: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The gRPC status codes the services answer with, as HTTP. A server-side failure's message
/// stays in the log under a request id; the client gets only the id (as the data plane's
/// 500s). Validation messages name the field as this API spells it (`internalScopes`).
impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let status = match s.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            // Their messages are written for the client (an unreachable OIDC issuer, …).
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => {
                let id = uuid::Uuid::now_v7().simple().to_string();
                tracing::error!(request_id = %id, code = ?s.code(), error = %s.message(), "admin HTTP API: internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error (request id {id})"),
                );
            }
        };
        let message = if status == StatusCode::BAD_REQUEST {
            json::field_names_as_sent(s.message())
        } else {
            s.message().to_string()
        };
        ApiError::new(status, message)
    }
}

/// Who called, as the gRPC interceptor identified them, and the credential they sent.
pub(crate) struct Ctx {
    caller: Caller,
    authorization: tonic::metadata::MetadataMap,
}

impl Ctx {
    /// A gRPC request for the service methods, as the interceptor would have passed it on.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        *req.metadata_mut() = self.authorization.clone();
        req.extensions_mut().insert(self.caller.clone());
        req
    }
}

/// The gRPC interceptor's check of `Authorization: Bearer <token>`, unchanged.
fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Ctx, ApiError> {
    let mut only_auth = HeaderMap::new();
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        only_auth.insert(http::header::AUTHORIZATION, v.clone());
    }
    let authorization = tonic::metadata::MetadataMap::from_headers(only_auth);
    let mut probe = tonic::Request::new(());
    *probe.metadata_mut() = authorization.clone();
    let probe = api.0.auth.intercept(probe)?;
    let caller = crate::auth::caller(&probe)?;
    Ok(Ctx {
        caller,
        authorization,
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The request body: declared too large → 413 at once; read with a limit and a deadline.
async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request("the body could not be read")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// A successful answer: a status and a JSON body (none for 204).
pub(crate) struct Reply {
    status: StatusCode,
    body: Option<Bytes>,
}

impl Reply {
    pub(crate) fn ok(body: serde_json::Value) -> Self {
        Reply {
            status: StatusCode::OK,
            body: Some(Bytes::from(serde_json::to_vec(&body).unwrap_or_default())),
        }
    }

    pub(crate) fn created(body: serde_json::Value) -> Self {
        Reply {
            status: StatusCode::CREATED,
            ..Reply::ok(body)
        }
    }

    pub(crate) fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

fn respond(status: StatusCode, body: Option<Bytes>) -> Response<Full<Bytes>> {
    let json = body.is_some();
    let mut r = Response::new(Full::new(body.unwrap_or_default()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if json {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    r
}

fn error_response(e: ApiError) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&serde_json::json!({ "error": e.message })).unwrap_or_default();
    let mut r = respond(e.status, Some(Bytes::from(body)));
    if let Some(allow) = e.allow {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    r
}

async fn handle(api: &Api, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    match answer(api, parts, body).await {
        Ok(reply) => respond(reply.status, reply.body),
        Err(e) => {
            // Server errors were logged with their detail where they became an `ApiError`.
            tracing::debug!(%method, %path, status = %e.status, error = %e.message, "admin HTTP API refused a request");
            error_response(e)
        }
    }
}

/// Route → method → (the document, unauthenticated) → credential → body → the service.
async fn answer(api: &Api, parts: http::request::Parts, body: Incoming) -> Result<Reply, ApiError> {
    let route = routes::Route::parse(parts.uri.path())?;
    if !route.allows(&parts.method) {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed here (allowed: {})",
                parts.method,
                route.allow()
            ),
        );
        e.allow = Some(route.allow());
        return Err(e);
    }
    if route == routes::Route::OpenApi {
        return Ok(Reply {
            status: StatusCode::OK,
            body: Some(Bytes::from_static(OPENAPI_JSON.as_bytes())),
        });
    }
    let ctx = authenticate(api, &parts.headers)?;
    let input = if route.takes_body(&parts.method) {
        // Every call with a body is an admin call: the data plane's credential is refused
        // before its body is looked at, as over gRPC.
        crate::auth::require_admin(&ctx.request(()))?;
        if !is_json(&parts.headers) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ));
        }
        Some(json::Obj::parse(&read_body(&parts.headers, body).await?)?)
    } else {
        None
    };
    let query = json::Query::parse(parts.uri.query());
    routes::dispatch(api, &ctx, route, &parts.method, query, input).await
}
