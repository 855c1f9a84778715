//! A local upstream registry standing in for the public one: serves fixture packuments and
//! tarballs over real HTTP, records every request, and can be stopped, restarted, made to
//! hold tarball answers back, made to serve corrupt bytes, or made to forget versions.
//!
//! It signs like the public registry: every version it serves carries `dist.signatures`
//! (ECDSA P-256 over `<name>@<version>:<integrity>`, with its own key, served at
//! `GET /-/npm/v1/keys`), and every fixture version has a provenance attestation
//! (`dist.attestations`, served at `GET /-/npm/v1/attestations/<name>@<version>`).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::fixtures::{self, FixturePackage};
use crate::npm_keys::{signed_message, NpmKey};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as received.
    pub path: String,
    pub headers: http::HeaderMap,
    /// The first 64 KiB of the body.
    pub body: Bytes,
}

/// A canned answer: status, JSON body, extra response headers.
type Canned = (u16, Value, Vec<(String, String)>);

#[derive(Default)]
struct State {
    packuments: HashMap<String, Value>,
    tarballs: HashMap<String, Bytes>,
    /// Tarball paths served with their last byte flipped.
    corrupt: HashSet<String>,
    requests: Vec<Recorded>,
    /// Canned answers for other paths (search, audit): status, JSON body, extra headers.
    canned: HashMap<String, Canned>,
    /// `GET /-/v1/search` over these result objects, matched and paged (`search_fixture`).
    search: Option<Vec<Value>>,
    /// `GET /-/npm/v1/attestations/<name>@<version>` answers, by `name@version`.
    attestations: HashMap<String, Value>,
    /// Signatures already made, by signed message (signing is done once, when first served).
    signatures: HashMap<String, String>,
    /// Versions (`name@version`) whose signature is not a valid one.
    sig_modes: HashMap<String, SigMode>,
    /// When set, every request must carry `Authorization: Bearer <this>` (else 401), like
    /// a vendor's private registry.
    required_bearer: Option<String>,
}

/// What a version's `dist.signatures` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigMode {
    /// A valid signature by the registry's key (the default).
    Valid,
    /// A signature by the registry's key over another message (npm: EINTEGRITYSIGNATURE).
    Invalid,
    /// No `dist.signatures` at all.
    Missing,
}

pub struct Registry {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// The registry's signing key (npm format).
    key: NpmKey,
    /// `true` while tarball answers are held back.
    hold: watch::Sender<bool>,
    server: Mutex<Option<JoinSet<()>>>,
}

fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

impl Registry {
    /// Starts on a free loopback port with the given packages.
    pub async fn start(packages: &[FixturePackage]) -> Arc<Registry> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind registry");
        let addr = listener.local_addr().expect("addr");
        let (hold, _) = watch::channel(false);
        let reg = Arc::new(Registry {
            addr,
            state: Arc::default(),
            key: NpmKey::generate("fixture-registry"),
            hold,
            server: Mutex::new(None),
        });
        for p in packages {
            reg.publish(p);
        }
        reg.serve(listener);
        reg
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds or replaces a package (each version with a provenance attestation).
    pub fn publish(&self, p: &FixturePackage) {
        let mut doc = p.packument(&self.url());
        let mut s = self.state.lock().expect("state");
        for (v, fv) in &p.versions {
            s.tarballs
                .insert(p.tarball_path(v), fv.tarball.bytes.clone());
            doc["versions"][v]["dist"]["attestations"] = serde_json::json!({
                "url": format!("{}{}", self.url(), attestations_path(&p.name, v)),
                "provenance": {"predicateType": fixtures::SLSA_PROVENANCE_V1},
            });
            s.attestations.insert(
                format!("{}@{v}", p.name),
                attestations_answer(&p.name, v, &fv.tarball.bytes),
            );
        }
        s.packuments.insert(p.name.clone(), doc);
    }

    /// The registry's signing key: its `keyid()` is in every `dist.signatures` it serves.
    pub fn npm_key(&self) -> &NpmKey {
        &self.key
    }

    pub fn keyid(&self) -> String {
        self.key.keyid()
    }

    /// `GET /-/npm/v1/keys`'s answer.
    pub fn keys_document(&self) -> Value {
        serde_json::json!({"keys": [self.key.key_entry(None)]})
    }

    /// A packument exactly as it is served now (with its signatures).
    pub fn served_packument(&self, name: &str) -> Option<Value> {
        let mut doc = self
            .state
            .lock()
            .expect("state")
            .packuments
            .get(name)
            .cloned()?;
        sign_versions(&self.state, &self.key, &mut doc);
        Some(doc)
    }

    /// The attestations answer served for `name@version`, if any.
    pub fn attestations(&self, name: &str, version: &str) -> Option<Value> {
        self.state
            .lock()
            .expect("state")
            .attestations
            .get(&format!("{name}@{version}"))
            .cloned()
    }

    /// Serves an attestation for `name@version` whose subject is the digest of other bytes
    /// than the version's tarball (a lie npm rejects with EATTESTATIONSUBJECT).
    pub fn mismatch_attestation(&self, name: &str, version: &str) {
        self.state.lock().expect("state").attestations.insert(
            format!("{name}@{version}"),
            attestations_answer(name, version, b"not the tarball of this version"),
        );
    }

    /// Makes `name@version`'s signature invalid or missing (or valid again).
    pub fn signature_mode(&self, name: &str, version: &str, mode: SigMode) {
        self.state
            .lock()
            .expect("state")
            .sig_modes
            .insert(format!("{name}@{version}"), mode);
    }

    /// How many attestation requests for `name@version` arrived (any spelling of a scoped
    /// name: `@scope/name` or `@scope%2fname`).
    pub fn attestation_requests(&self, name: &str, version: &str) -> usize {
        let want = attestations_path(name, version);
        self.state
            .lock()
            .expect("state")
            .requests
            .iter()
            .filter(|r| {
                r.method == "GET" && decode(r.path.split('?').next().unwrap_or_default()) == want
            })
            .count()
    }

    /// Removes one version from the packument and deletes its tarball, as an unpublish would.
    pub fn unpublish_version(&self, p: &FixturePackage, version: &str) {
        let mut s = self.state.lock().expect("state");
        if let Some(doc) = s.packuments.get_mut(&p.name) {
            if let Some(vs) = doc.get_mut("versions").and_then(Value::as_object_mut) {
                vs.remove(version);
            }
            if let Some(t) = doc.get_mut("time").and_then(Value::as_object_mut) {
                t.remove(version);
            }
        }
        s.tarballs.remove(&p.tarball_path(version));
        s.attestations.remove(&format!("{}@{version}", p.name));
    }

    /// Forgets a whole package: its packument and every tarball answer 404.
    pub fn remove_package(&self, p: &FixturePackage) {
        let mut s = self.state.lock().expect("state");
        s.packuments.remove(&p.name);
        for v in p.versions.keys() {
            s.tarballs.remove(&p.tarball_path(v));
        }
    }

    /// Serves this tarball path with corrupted bytes (same length).
    pub fn corrupt(&self, tarball_path: &str) {
        self.state
            .lock()
            .expect("state")
            .corrupt
            .insert(tarball_path.to_string());
    }

    pub fn uncorrupt(&self, tarball_path: &str) {
        self.state
            .lock()
            .expect("state")
            .corrupt
            .remove(tarball_path);
    }

    pub fn canned(&self, path: &str, status: u16, body: Value) {
        self.canned_with(path, status, body, &[]);
    }

    /// A canned answer with response headers (e.g. `www-authenticate`).
    pub fn canned_with(&self, path: &str, status: u16, body: Value, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.state
            .lock()
            .expect("state")
            .canned
            .insert(path.to_string(), (status, body, headers));
    }

    /// Answers `GET /-/v1/search` from these result objects (`search_fixture::object`).
    pub fn search_results(&self, objects: Vec<Value>) {
        self.state.lock().expect("state").search = Some(objects);
    }

    /// From now on every request needs `Authorization: Bearer <credential>`.
    pub fn require_bearer(&self, credential: &str) {
        self.state.lock().expect("state").required_bearer = Some(credential.to_string());
    }

    /// Holds every tarball answer until `release` (or `hold(false)`).
    pub fn hold_tarballs(&self, on: bool) {
        self.hold.send_replace(on);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("state").requests.clone()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.state
            .lock()
            .expect("state")
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.split('?').next() == Some(path))
            .count()
    }

    pub fn tarball_requests(&self) -> usize {
        self.state
            .lock()
            .expect("state")
            .requests
            .iter()
            .filter(|r| r.path.ends_with(".tgz"))
            .count()
    }

    /// Stops answering: the port refuses connections until `restart`.
    pub fn stop(&self) {
        if let Some(mut set) = self.server.lock().expect("server").take() {
            set.abort_all();
        }
    }

    pub async fn restart(self: &Arc<Self>) {
        self.stop();
        let listener = TcpListener::bind(self.addr).await.expect("rebind registry");
        self.serve(listener);
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) {
        let mut set = JoinSet::new();
        let reg = self.clone();
        let conns: Arc<Mutex<JoinSet<()>>> = Arc::default();
        let conns2 = conns.clone();
        set.spawn(async move {
            // Connections die with the accept loop: dropping the set aborts them.
            let _keep = conns2;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let reg = reg.clone();
                _keep.lock().expect("conns").spawn(async move {
                    let svc = service_fn(move |req| {
                        let reg = reg.clone();
                        async move { Ok::<_, Infallible>(reg.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        *self.server.lock().expect("server") = Some(set);
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone());
        let headers = req.headers().clone();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.state.lock().expect("state").requests.push(Recorded {
            method: method.clone(),
            path: path_and_query.clone(),
            headers: headers.clone(),
            body: body.slice(..body.len().min(64 * 1024)),
        });
        let required = self.state.lock().expect("state").required_bearer.clone();
        if let Some(want) = required {
            let got = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if got != Some(want.as_str()) {
                return json_response(401, &serde_json::json!({"error": "unauthorized"}));
            }
        }
        let canned = self.state.lock().expect("state").canned.get(&path).cloned();
        if let Some((status, body, extra)) = canned {
            let mut r = json_response(status, &body);
            for (k, v) in extra {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(&v),
                ) {
                    r.headers_mut().insert(k, v);
                }
            }
            return r;
        }
        let search = self.state.lock().expect("state").search.clone();
        if let (Some(all), "/-/v1/search") = (search, path.as_str()) {
            return json_response(200, &crate::search_fixture::answer(&all, &path_and_query));
        }
        if method != "GET" && method != "HEAD" {
            return self.write(&method, &path, &body);
        }
        if path == "/-/npm/v1/keys" {
            return json_response(200, &self.keys_document());
        }
        if let Some(spec) = path.strip_prefix("/-/npm/v1/attestations/") {
            let spec = decode(spec);
            let answer = self
                .state
                .lock()
                .expect("state")
                .attestations
                .get(&spec)
                .cloned();
            return match answer {
                Some(a) => json_response(200, &a),
                None => json_response(404, &serde_json::json!({"error": "not found"})),
            };
        }
        if let Some(name) = path
            .strip_prefix("/-/package/")
            .map(decode)
            .and_then(|p| p.strip_suffix("/dist-tags").map(str::to_string))
        {
            let s = self.state.lock().expect("state");
            return match s.packuments.get(&name) {
                Some(doc) => json_response(200, &doc["dist-tags"]),
                None => json_response(404, &serde_json::json!({"error": "not found"})),
            };
        }
        if path.ends_with(".tgz") {
            let mut rx = self.hold.subscribe();
            while *rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
            let (bytes, corrupt) = {
                let s = self.state.lock().expect("state");
                (s.tarballs.get(&path).cloned(), s.corrupt.contains(&path))
            };
            return match bytes {
                Some(b) => {
                    let b = if corrupt {
                        let mut v = b.to_vec();
                        if let Some(last) = v.last_mut() {
                            *last ^= 0xff;
                        }
                        Bytes::from(v)
                    } else {
                        b
                    };
                    Response::builder()
                        .header("content-type", "application/octet-stream")
                        .header("content-length", b.len())
                        .body(Full::new(b))
                        .unwrap_or_default()
                }
                None => json_response(404, &serde_json::json!({"error": "not found"})),
            };
        }
        let name = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
            .decode_utf8_lossy()
            .to_string();
        let doc = self
            .state
            .lock()
            .expect("state")
            .packuments
            .get(&name)
            .cloned();
        match doc {
            Some(mut doc) => {
                // Signing is done once per version, off the async threads (a first GET of
                // a 400-version packument signs 400 times).
                let (state, key) = (self.state.clone(), self.key.clone());
                doc = tokio::task::spawn_blocking(move || {
                    sign_versions(&state, &key, &mut doc);
                    doc
                })
                .await
                .unwrap_or_default();
                let body = serde_json::to_vec(&doc).unwrap_or_default();
                let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..8]));
                let inm = headers.get("if-none-match").and_then(|v| v.to_str().ok());
                if inm == Some(etag.as_str()) {
                    return Response::builder()
                        .status(StatusCode::NOT_MODIFIED)
                        .header("etag", etag)
                        .body(Full::new(Bytes::new()))
                        .unwrap_or_default();
                }
                Response::builder()
                    .header("content-type", "application/json")
                    .header("etag", etag)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_default()
            }
            None => json_response(404, &serde_json::json!({"error": "not found"})),
        }
    }
}

/// The path of a version's attestations (`/-/npm/v1/attestations/<name>@<version>`).
pub fn attestations_path(name: &str, version: &str) -> String {
    format!("/-/npm/v1/attestations/{name}@{version}")
}

/// `GET /-/npm/v1/attestations/<name>@<version>`'s answer: one SLSA provenance
/// attestation whose subject is the sha512 of `subject_bytes`.
fn attestations_answer(name: &str, version: &str, subject_bytes: &[u8]) -> Value {
    serde_json::json!({"attestations": [{
        "predicateType": fixtures::SLSA_PROVENANCE_V1,
        "bundle": fixtures::provenance_bundle(name, version, subject_bytes),
    }]})
}

/// Sets `dist.signatures` on every version of `doc` that has a `dist.integrity`, as the
/// public registry serves them (signatures made once, then remembered).
fn sign_versions(state: &Mutex<State>, key: &NpmKey, doc: &mut Value) {
    let name = doc["name"].as_str().unwrap_or_default().to_string();
    let keyid = key.keyid();
    let Some(versions) = doc.get_mut("versions").and_then(Value::as_object_mut) else {
        return;
    };
    for (v, m) in versions.iter_mut() {
        let Some(integrity) = m["dist"]["integrity"].as_str().map(str::to_string) else {
            continue;
        };
        let id = format!("{name}@{v}");
        let mode = state
            .lock()
            .expect("state")
            .sig_modes
            .get(&id)
            .copied()
            .unwrap_or(SigMode::Valid);
        let message = match mode {
            SigMode::Missing => {
                if let Some(d) = m.get_mut("dist").and_then(Value::as_object_mut) {
                    d.remove("signatures");
                }
                continue;
            }
            SigMode::Valid => signed_message(&name, v, &integrity),
            SigMode::Invalid => signed_message(&name, v, &format!("{integrity}-forged")),
        };
        let cached = state
            .lock()
            .expect("state")
            .signatures
            .get(&message)
            .cloned();
        let sig = match cached {
            Some(sig) => sig,
            None => {
                let sig = key.sign_b64(&message);
                state
                    .lock()
                    .expect("state")
                    .signatures
                    .insert(message, sig.clone());
                sig
            }
        };
        m["dist"]["signatures"] = serde_json::json!([{"keyid": keyid, "sig": sig}]);
    }
}

fn decode(p: &str) -> String {
    percent_encoding::percent_decode_str(p)
        .decode_utf8_lossy()
        .to_string()
}

fn bump_rev(doc: &mut Value) {
    let n = doc["_rev"]
        .as_str()
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1);
    doc["_rev"] = Value::String(format!("{}-fixture{}", n + 1, n + 1));
}

impl Registry {
    /// The write half of the registry protocol, enough for npm, pnpm and yarn: publish,
    /// whole-document updates (deprecate, one-version unpublish), package and tarball
    /// deletes, dist-tags. Anyone may write (tests check what reached it, not auth).
    fn write(&self, method: &str, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let ok = |v: Value| json_response(200, &v);
        let not_found = || json_response(404, &serde_json::json!({"error": "not found"}));
        let sent: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let url = self.url();
        let mut s = self.state.lock().expect("state");
        if let Some(rest) = path.strip_prefix("/-/package/") {
            let rest = decode(rest);
            let Some((name, tag)) = rest.split_once("/dist-tags/") else {
                return not_found();
            };
            let Some(doc) = s.packuments.get_mut(name) else {
                return not_found();
            };
            match (method, sent.as_str()) {
                ("PUT", Some(v)) => doc["dist-tags"][tag] = Value::String(v.to_string()),
                ("DELETE", _) => {
                    if let Some(t) = doc["dist-tags"].as_object_mut() {
                        t.remove(tag);
                    }
                }
                _ => return json_response(400, &serde_json::json!({"error": "bad dist-tag"})),
            }
            bump_rev(doc);
            return ok(doc["dist-tags"].clone());
        }
        let decoded = decode(path.trim_start_matches('/'));
        let (target, rev) = match decoded.split_once("/-rev/") {
            Some((t, r)) => (t.to_string(), Some(r.to_string())),
            None => (decoded, None),
        };
        if let Some((name, _file)) = target.split_once("/-/") {
            // The end of a one-version unpublish: the bytes go.
            if method == "DELETE" {
                let p = format!("/{target}");
                let existed = s.tarballs.remove(&p).is_some();
                let _ = name;
                return if existed {
                    ok(serde_json::json!({"ok": true}))
                } else {
                    not_found()
                };
            }
            return not_found();
        }
        let name = target;
        if method == "DELETE" {
            if rev.is_none() || s.packuments.remove(&name).is_none() {
                return not_found();
            }
            let prefix = format!("/{name}/-/");
            s.tarballs.retain(|k, _| !k.starts_with(&prefix));
            return ok(serde_json::json!({"ok": true}));
        }
        if method != "PUT" {
            return json_response(405, &serde_json::json!({"error": "method not allowed"}));
        }
        let attachments = sent["_attachments"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let now = "2021-06-01T00:00:00.000Z";
        if attachments.is_empty() {
            // A whole document sent back (deprecate, one-version unpublish).
            let Some(doc) = s.packuments.get_mut(&name) else {
                return not_found();
            };
            for key in ["versions", "dist-tags"] {
                if let Some(v) = sent.get(key) {
                    doc[key] = v.clone();
                }
            }
            bump_rev(doc);
            return ok(serde_json::json!({"ok": true, "id": name, "rev": doc["_rev"]}));
        }
        let mut doc = s.packuments.get(&name).cloned().unwrap_or_else(|| {
            serde_json::json!({"_id": name, "name": name, "_rev": "1-fixture1",
                               "dist-tags": {}, "versions": {},
                               "time": {"created": now, "modified": now}})
        });
        for (v, manifest) in sent["versions"].as_object().cloned().unwrap_or_default() {
            if doc["versions"].get(&v).is_some() {
                return json_response(
                    403,
                    &serde_json::json!({"error": "You cannot publish over the previously published versions"}),
                );
            }
            let file = format!("{}-{v}.tgz", crate::fixtures::unscoped(&name));
            let mut m = manifest.clone();
            m["dist"]["tarball"] = Value::String(format!("{url}/{name}/-/{file}"));
            doc["versions"][&v] = m;
            doc["time"][&v] = Value::String(now.into());
            doc["time"]["modified"] = Value::String(now.into());
        }
        for (tag, v) in sent["dist-tags"].as_object().cloned().unwrap_or_default() {
            doc["dist-tags"][&tag] = v;
        }
        for (file, a) in attachments {
            let Some(data) = a["data"].as_str() else {
                continue;
            };
            let Ok(bytes) =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data)
            else {
                return json_response(400, &serde_json::json!({"error": "bad attachment"}));
            };
            // npm names it `<full name>-<version>.tgz`: `@fx/pub-1.0.0.tgz` → `pub-1.0.0.tgz`.
            let file = file.rsplit('/').next().unwrap_or(&file).to_string();
            s.tarballs
                .insert(format!("/{name}/-/{file}"), Bytes::from(bytes));
        }
        bump_rev(&mut doc);
        let rev = doc["_rev"].clone();
        s.packuments.insert(name.clone(), doc);
        json_response(
            201,
            &serde_json::json!({"ok": true, "id": name, "rev": rev}),
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npm_keys::{keyid_of_spki_b64, verify_npm_signature};
    use base64::Engine;

    #[tokio::test]
    async fn the_fixture_registry_signs_and_attests_like_the_public_one() {
        let packages = crate::fixtures::standard();
        let reg = Registry::start(&packages).await;
        let http = crate::http();
        let keys: Value = http
            .get(format!("{}/-/npm/v1/keys", reg.url()))
            .send()
            .await
            .expect("keys")
            .json()
            .await
            .expect("json");
        assert_eq!(keys, reg.keys_document());
        let key = &keys["keys"][0];
        assert_eq!(key["keytype"], "ecdsa-sha2-nistp256");
        assert_eq!(key["scheme"], "ecdsa-sha2-nistp256");
        assert!(key["expires"].is_null());
        let spki = key["key"].as_str().expect("key");
        assert_eq!(keyid_of_spki_b64(spki), Some(reg.keyid()));

        let doc: Value = http
            .get(format!("{}/@fx%2fb", reg.url()))
            .send()
            .await
            .expect("packument")
            .json()
            .await
            .expect("json");
        for (v, m) in doc["versions"].as_object().expect("versions") {
            let dist = &m["dist"];
            let sigs = dist["signatures"].as_array().expect("signatures");
            assert_eq!(sigs.len(), 1);
            assert_eq!(sigs[0]["keyid"], json_str(&reg.keyid()));
            let message = format!("@fx/b@{v}:{}", dist["integrity"].as_str().expect("sri"));
            assert!(verify_npm_signature(
                spki,
                &message,
                sigs[0]["sig"].as_str().expect("sig")
            ));
            assert_eq!(
                dist["attestations"]["url"],
                json_str(&format!("{}/-/npm/v1/attestations/@fx/b@{v}", reg.url()))
            );
        }

        let fx_b = packages
            .iter()
            .find(|p| p.name == "@fx/b")
            .expect("fixture");
        for path in [
            "/-/npm/v1/attestations/@fx/b@1.0.1",
            "/-/npm/v1/attestations/@fx%2fb@1.0.1",
        ] {
            let a: Value = http
                .get(format!("{}{path}", reg.url()))
                .send()
                .await
                .expect("attestations")
                .json()
                .await
                .expect("json");
            assert_eq!(Some(&a), reg.attestations("@fx/b", "1.0.1").as_ref());
            let bundle = &a["attestations"][0]["bundle"];
            let payload = base64::engine::general_purpose::STANDARD
                .decode(bundle["dsseEnvelope"]["payload"].as_str().expect("payload"))
                .expect("b64");
            let statement: Value = serde_json::from_slice(&payload).expect("statement");
            assert_eq!(statement["subject"][0]["name"], "pkg:npm/%40fx/b@1.0.1");
            assert_eq!(
                statement["subject"][0]["digest"]["sha512"],
                json_str(&crate::fixtures::sha512_hex(
                    &fx_b.versions["1.0.1"].tarball.bytes
                ))
            );
        }
        assert_eq!(reg.attestation_requests("@fx/b", "1.0.1"), 2);
        reg.mismatch_attestation("@fx/b", "1.0.1");
        assert_ne!(
            reg.attestations("@fx/b", "1.0.1").expect("still served")["attestations"][0]["bundle"]
                ["dsseEnvelope"]["payload"],
            doc_payload(&fx_b.name, "1.0.1", &fx_b.versions["1.0.1"].tarball.bytes)
        );
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_string())
    }

    fn doc_payload(name: &str, version: &str, bytes: &[u8]) -> Value {
        crate::fixtures::provenance_bundle(name, version, bytes)["dsseEnvelope"]["payload"].clone()
    }
}
