//! A local OpenID Connect issuer standing in for GitHub Actions' token service: discovery
//! (`/.well-known/openid-configuration`), its ES256 key (`/jwks`), and the endpoint a job
//! asks for an id token (`GET /token?audience=…` with `Authorization: Bearer <request
//! token>`, what `ACTIONS_ID_TOKEN_REQUEST_URL` / `ACTIONS_ID_TOKEN_REQUEST_TOKEN` point
//! npm at). Tokens carry GitHub's claims for a job of `acme/app`'s `publish.yml` in the
//! `release` environment. JWTs are made here with p256 (not with nproxy's code).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::npm_keys::fresh_key;

/// The audience npm asks for when its registry is on 127.0.0.1 (`npm:<hostname>`, no port).
pub const LOOPBACK_AUDIENCE: &str = "npm:127.0.0.1";

/// One request to the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The `audience` query parameter, decoded.
    pub audience: Option<String>,
    /// Whether it carried the right request token (else it was answered 401).
    pub authorized: bool,
}

#[derive(Default)]
struct State {
    token_requests: Vec<TokenRequest>,
    /// Every request: method and path with query.
    requests: Vec<(String, String)>,
}

pub struct Issuer {
    addr: SocketAddr,
    key: SigningKey,
    /// Signs tokens that claim `kid` but are not the issuer's (bad signatures).
    foreign: SigningKey,
    kid: String,
    request_token: String,
    state: Arc<Mutex<State>>,
    server: Mutex<Option<JoinSet<()>>>,
}

fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(v).unwrap_or_default(),
        )))
        .unwrap_or_default()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .to_string()
        })
    })
}

/// A compact JWS (ES256) of `claims`, signed by `key`, with `kid` in its header.
fn sign_jwt(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
    );
    let sig: Signature = key.sign(input.as_bytes());
    // Low-S form: what every verifier accepts.
    let sig = sig.normalize_s().unwrap_or(sig);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

impl Issuer {
    /// Starts on a free loopback port with a fresh key and request token.
    pub async fn start() -> Arc<Issuer> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind issuer");
        let addr = listener.local_addr().expect("addr");
        let key = fresh_key("oidc-issuer");
        let point = key.verifying_key().to_encoded_point(false);
        // RFC 7638 thumbprint of the JWK.
        let thumb = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(point.x().map(|x| x.to_vec()).unwrap_or_default()),
            URL_SAFE_NO_PAD.encode(point.y().map(|y| y.to_vec()).unwrap_or_default()),
        );
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumb.as_bytes()));
        let request_token = format!(
            "actions-request-{}",
            hex::encode(&Sha256::digest(kid.as_bytes())[..12])
        );
        let issuer = Arc::new(Issuer {
            addr,
            key,
            foreign: fresh_key("oidc-foreign"),
            kid,
            request_token,
            state: Arc::default(),
            server: Mutex::new(None),
        });
        issuer.serve(listener);
        issuer
    }

    /// The issuer URL, exactly as tokens' `iss` carries it (no trailing slash).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What `ACTIONS_ID_TOKEN_REQUEST_URL` is set to.
    pub fn request_url(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// What `ACTIONS_ID_TOKEN_REQUEST_TOKEN` is set to.
    pub fn request_token(&self) -> &str {
        &self.request_token
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK Set (what `/jwks` serves).
    pub fn jwks(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().map(|x| x.to_vec()).unwrap_or_default()),
            "y": URL_SAFE_NO_PAD.encode(point.y().map(|y| y.to_vec()).unwrap_or_default()),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        }]})
    }

    /// The claims of a GitHub Actions job of `acme/app` (workflow `publish.yml` on `main`,
    /// environment `release`, a private repository), valid for 5 minutes from now.
    pub fn default_claims(&self, audience: &str) -> Value {
        let now = now_secs();
        let sha = "3f786850e387550fdab836ed7e6dc881de23001b";
        let workflow_ref = "acme/app/.github/workflows/publish.yml@refs/heads/main";
        json!({
            "jti": format!("jti-{now}-{}", self.state.lock().expect("state").requests.len()),
            "sub": "repo:acme/app:environment:release",
            "aud": audience,
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "sha": sha,
            "repository": "acme/app",
            "repository_id": "700001",
            "repository_owner": "acme",
            "repository_owner_id": "700000",
            "repository_visibility": "private",
            "run_id": "9100000001",
            "run_number": "7",
            "run_attempt": "1",
            "actor": "release-bot",
            "actor_id": "700002",
            "event_name": "push",
            "workflow": "publish",
            "workflow_ref": workflow_ref,
            "workflow_sha": sha,
            "job_workflow_ref": workflow_ref,
            "job_workflow_sha": sha,
            "environment": "release",
            "runner_environment": "github-hosted",
            "iss": self.issuer(),
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        })
    }

    fn claims_with(&self, overrides: &Value) -> Value {
        let mut claims = self.default_claims(LOOPBACK_AUDIENCE);
        if let (Some(c), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        claims
    }

    /// A signed id token: the default claims (audience `npm:127.0.0.1`) with `overrides`
    /// merged over them (a `null` removes a claim).
    pub fn mint(&self, overrides: Value) -> String {
        sign_jwt(&self.key, &self.kid, &self.claims_with(&overrides))
    }

    /// `mint`, but signed by another key under the same `kid`: a bad signature.
    pub fn mint_with_foreign_key(&self, overrides: Value) -> String {
        sign_jwt(&self.foreign, &self.kid, &self.claims_with(&overrides))
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().expect("state").token_requests.clone()
    }

    pub fn token_request_count(&self) -> usize {
        self.state.lock().expect("state").token_requests.len()
    }

    /// How many requests for `path` (without query) arrived.
    pub fn count(&self, path: &str) -> usize {
        self.state
            .lock()
            .expect("state")
            .requests
            .iter()
            .filter(|(_, p)| p.split('?').next() == Some(path))
            .count()
    }

    pub fn stop(&self) {
        if let Some(mut set) = self.server.lock().expect("server").take() {
            set.abort_all();
        }
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let mut set = JoinSet::new();
        let issuer = self.clone();
        let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
        set.spawn(async move {
            let _keep = conns.clone();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let issuer = issuer.clone();
                conns.lock().expect("conns").spawn(async move {
                    let svc = service_fn(move |req| {
                        let issuer = issuer.clone();
                        async move { Ok::<_, Infallible>(issuer.handle(req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        *self.server.lock().expect("server") = Some(set);
    }

    fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        self.state.lock().expect("state").requests.push((
            req.method().to_string(),
            req.uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| path.clone()),
        ));
        if req.method() != http::Method::GET {
            return json_response(405, &json!({"message": "method not allowed"}));
        }
        match path.as_str() {
            "/.well-known/openid-configuration" => json_response(
                200,
                &json!({
                    "issuer": self.issuer(),
                    "jwks_uri": format!("{}/jwks", self.issuer()),
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                        "repository", "repository_owner", "workflow_ref", "job_workflow_ref",
                        "environment", "sha", "run_id", "repository_visibility"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                    "scopes_supported": ["openid"],
                }),
            ),
            "/jwks" => json_response(200, &self.jwks()),
            "/token" => {
                let want = format!("Bearer {}", self.request_token);
                let authorized = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == want);
                let audience = query_param(&query, "audience");
                self.state
                    .lock()
                    .expect("state")
                    .token_requests
                    .push(TokenRequest {
                        audience: audience.clone(),
                        authorized,
                    });
                if !authorized {
                    return json_response(401, &json!({"message": "bad request token"}));
                }
                let mut claims = self.default_claims(audience.as_deref().unwrap_or("sigstore"));
                if audience.is_none() {
                    // GitHub's default audience is the repository owner's URL.
                    if let Some(c) = claims.as_object_mut() {
                        c.insert("aud".into(), json!("https://github.test/acme"));
                    }
                }
                let jwt = sign_jwt(&self.key, &self.kid, &claims);
                json_response(200, &json!({"count": 1, "value": jwt}))
            }
            _ => json_response(404, &json!({"message": "not found"})),
        }
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The claims of a JWT, decoded without any check (for tests' own assertions).
pub fn claims_of(jwt: &str) -> Option<Map<String, Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    /// Checks a JWT's ES256 signature against a JWKS the way a relying party would.
    fn verifies(jwt: &str, jwks: &Value) -> bool {
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("header b64"))
                .expect("header json");
        let Some(jwk) = jwks["keys"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["kid"] == header["kid"]))
        else {
            return false;
        };
        let mut point = vec![4u8];
        for c in ["x", "y"] {
            point.extend(
                URL_SAFE_NO_PAD
                    .decode(jwk[c].as_str().expect("coordinate"))
                    .expect("b64"),
            );
        }
        let vk = VerifyingKey::from_sec1_bytes(&point).expect("point");
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).expect("sig b64"))
            .expect("64-byte signature");
        vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .is_ok()
    }

    #[tokio::test]
    async fn the_issuer_serves_discovery_keys_and_github_like_tokens() {
        let issuer = Issuer::start().await;
        let http = crate::http();
        let conf: Value = http
            .get(format!(
                "{}/.well-known/openid-configuration",
                issuer.issuer()
            ))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        assert_eq!(conf["issuer"], issuer.issuer());
        let jwks: Value = http
            .get(conf["jwks_uri"].as_str().expect("jwks_uri"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        assert_eq!(jwks, issuer.jwks());

        let refused = http
            .get(format!("{}?audience=npm:127.0.0.1", issuer.request_url()))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("token");
        assert_eq!(refused.status().as_u16(), 401);
        let got: Value = http
            .get(format!("{}?audience=npm%3A127.0.0.1", issuer.request_url()))
            .bearer_auth(issuer.request_token())
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        let jwt = got["value"].as_str().expect("value");
        assert!(verifies(jwt, &jwks));
        let claims = claims_of(jwt).expect("claims");
        assert_eq!(claims["aud"], "npm:127.0.0.1");
        assert_eq!(claims["iss"], json!(issuer.issuer()));
        assert_eq!(claims["repository"], "acme/app");
        assert_eq!(claims["repository_visibility"], "private");
        let reqs = issuer.token_requests();
        assert_eq!(reqs.len(), 2);
        assert!(!reqs[0].authorized && reqs[1].authorized);
        assert_eq!(reqs[1].audience.as_deref(), Some("npm:127.0.0.1"));

        let minted = issuer.mint(json!({"repository": "evil/app", "environment": null}));
        assert!(verifies(&minted, &jwks));
        let c = claims_of(&minted).expect("claims");
        assert_eq!(c["repository"], "evil/app");
        assert!(!c.contains_key("environment"));
        assert_eq!(c["aud"], LOOPBACK_AUDIENCE);
        assert!(!verifies(&issuer.mint_with_foreign_key(json!({})), &jwks));
    }
}
