//! For tests: an OIDC issuer on a loopback port (discovery document and JWK set over plain
//! HTTP/1.1, counted) and ES256 keys that sign id tokens.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct TestKey {
    pub kid: String,
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl TestKey {
    pub fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");
        TestKey {
            kid: kid.into(),
            pair,
            rng,
        }
    }

    /// The uncompressed public point.
    pub fn point(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub fn jwk(&self) -> Value {
        let p = self.point();
        json!({
            "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]),
        })
    }

    /// A compact JWT of `claims` with the usual ES256 header.
    pub fn jwt(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A compact JWT with any header, signed with this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.pair.sign(&self.rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

#[derive(Default)]
struct State {
    keys_body: String,
    jwks_uri: Option<String>,
    discovery_issuer: Option<String>,
    requests: usize,
}

/// The issuer; stops when dropped.
pub struct Issuer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Issuer {
    pub async fn start(keys: Vec<Value>) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let (status, body) = answer(&st, addr, &path);
                    let res = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(res.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        let issuer = Issuer { addr, state, task };
        issuer.set_keys(keys);
        issuer
    }

    /// The issuer URL, as tokens' `iss` spells it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.with(|s| s.requests)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        self.set_keys_raw(json!({ "keys": keys }).to_string());
    }

    pub fn set_keys_raw(&self, body: String) {
        self.with(|s| s.keys_body = body);
    }

    pub fn set_jwks_uri(&self, uri: &str) {
        self.with(|s| s.jwks_uri = Some(uri.into()));
    }

    pub fn set_discovery_issuer(&self, iss: &str) {
        self.with(|s| s.discovery_issuer = Some(iss.into()));
    }
}

fn answer(st: &Mutex<State>, addr: SocketAddr, path: &str) -> (&'static str, String) {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    s.requests += 1;
    let base = format!("http://127.0.0.1:{}", addr.port());
    match path {
        "/.well-known/openid-configuration" => (
            "200 OK",
            json!({
                "issuer": s.discovery_issuer.clone().unwrap_or_else(|| base.clone()),
                "jwks_uri": s.jwks_uri.clone().unwrap_or_else(|| format!("{base}/keys")),
            })
            .to_string(),
        ),
        "/keys" => ("200 OK", s.keys_body.clone()),
        _ => ("404 Not Found", "{}".into()),
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
