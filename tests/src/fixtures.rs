//! Generated fixture packages: real gzip'd tarballs with real integrity hashes, and the
//! packuments an npm registry would serve for them, with publish times in the past.

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha512};

#[derive(Clone)]
pub struct Tarball {
    pub bytes: Bytes,
    pub integrity: String,
    pub shasum: String,
}

impl Tarball {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let integrity = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes))
        );
        let shasum = hex::encode(Sha1::digest(&bytes));
        Self {
            bytes: Bytes::from(bytes),
            integrity,
            shasum,
        }
    }
}

#[derive(Clone)]
pub struct FixtureVersion {
    pub version: String,
    pub dependencies: BTreeMap<String, String>,
    pub tarball: Tarball,
    pub published: String,
    /// Extra manifest fields (e.g. a long description to make the packument big).
    pub extra: Map<String, Value>,
}

#[derive(Clone)]
pub struct FixturePackage {
    pub name: String,
    pub versions: BTreeMap<String, FixtureVersion>,
    pub latest: String,
}

/// The part of a name after its scope.
pub fn unscoped(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Deterministic filler that gzip can't shrink much, so tarball sizes are what we ask for.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect()
}

pub fn make_tarball(
    name: &str,
    version: &str,
    deps: &BTreeMap<String, String>,
    filler_bytes: usize,
) -> Tarball {
    let manifest = json!({
        "name": name,
        "version": version,
        "main": "index.js",
        "dependencies": deps,
        "license": "MIT",
    });
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_500_000_000);
        h.set_cksum();
        tar.append_data(&mut h, path, data).expect("tar append");
    };
    add(
        "package/package.json",
        serde_json::to_string_pretty(&manifest)
            .expect("json")
            .as_bytes(),
    );
    add(
        "package/index.js",
        format!("module.exports = {{ name: {name:?}, version: {version:?} }};\n").as_bytes(),
    );
    if filler_bytes > 0 {
        let seed = name.len() as u64 * 1_000_003 + version.len() as u64 + filler_bytes as u64;
        add("package/data.bin", &filler(seed, filler_bytes));
    }
    let tar_bytes = tar.into_inner().expect("tar finish");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).expect("gzip");
    Tarball::from_bytes(gz.finish().expect("gzip finish"))
}

impl FixturePackage {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            versions: BTreeMap::new(),
            latest: String::new(),
        }
    }

    /// Adds a version (published on `day` days after 2020-01-01), making it `latest`.
    pub fn version(mut self, version: &str, deps: &[(&str, &str)], filler_bytes: usize) -> Self {
        let deps: BTreeMap<String, String> = deps
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let n = self.versions.len();
        let published = format!(
            "2020-{:02}-{:02}T00:00:00.000Z",
            1 + (n / 28) % 12,
            1 + n % 28
        );
        let tarball = make_tarball(&self.name, version, &deps, filler_bytes);
        self.versions.insert(
            version.to_string(),
            FixtureVersion {
                version: version.to_string(),
                dependencies: deps,
                tarball,
                published,
                extra: Map::new(),
            },
        );
        self.latest = version.to_string();
        self
    }

    /// Sets a version's publish time (ISO 8601), e.g. to make it look brand new.
    pub fn published_at(mut self, version: &str, iso: &str) -> Self {
        if let Some(v) = self.versions.get_mut(version) {
            v.published = iso.to_string();
        }
        self
    }

    /// Adds extra manifest fields to a version (scripts, license, deprecated, …).
    pub fn with(mut self, version: &str, key: &str, value: Value) -> Self {
        if let Some(v) = self.versions.get_mut(version) {
            v.extra.insert(key.to_string(), value);
        }
        self
    }

    pub fn tarball_file(&self, version: &str) -> String {
        format!("{}-{}.tgz", unscoped(&self.name), version)
    }

    /// The path of a version's tarball relative to a registry root.
    pub fn tarball_path(&self, version: &str) -> String {
        format!("/{}/-/{}", self.name, self.tarball_file(version))
    }

    /// The packument as a registry at `base` serves it.
    pub fn packument(&self, base: &str) -> Value {
        let mut versions = Map::new();
        let mut time = Map::new();
        time.insert("created".into(), json!("2020-01-01T00:00:00.000Z"));
        let mut modified = String::from("2020-01-01T00:00:00.000Z");
        for (v, fv) in &self.versions {
            let mut m = Map::new();
            m.insert("name".into(), json!(self.name));
            m.insert("version".into(), json!(v));
            m.insert("main".into(), json!("index.js"));
            m.insert("license".into(), json!("MIT"));
            m.insert("dependencies".into(), json!(fv.dependencies));
            m.insert(
                "_npmUser".into(),
                json!({"name": "fixture-publisher", "email": "fixtures@example.test"}),
            );
            m.insert(
                "dist".into(),
                json!({
                    "tarball": format!("{base}{}", self.tarball_path(v)),
                    "integrity": fv.tarball.integrity,
                    "shasum": fv.tarball.shasum,
                }),
            );
            for (k, x) in &fv.extra {
                m.insert(k.clone(), x.clone());
            }
            versions.insert(v.clone(), Value::Object(m));
            time.insert(v.clone(), json!(fv.published));
            if fv.published > modified {
                modified = fv.published.clone();
            }
        }
        time.insert("modified".into(), json!(modified));
        json!({
            "_id": self.name,
            "_rev": "1-fixture1",
            "name": self.name,
            "description": format!("fixture package {}", self.name),
            "dist-tags": {"latest": self.latest},
            "versions": versions,
            "time": time,
            "readme": "A fixture.",
            "license": "MIT",
        })
    }
}

/// The standard set: unscoped and scoped packages with dependencies between them, a
/// several-MB packument, and tarballs of a few sizes.
pub fn standard() -> Vec<FixturePackage> {
    let mut big = FixturePackage::new("fx-big");
    for i in 0..400 {
        big = big.version(&format!("1.0.{i}"), &[], 0);
        if let Some(v) = big.versions.get_mut(&format!("1.0.{i}")) {
            // ~10 KB of description per version: a packument of about 4 MB.
            v.extra.insert(
                "description".into(),
                json!(format!(
                    "version {i} {}",
                    "lorem ipsum dolor sit amet ".repeat(380)
                )),
            );
        }
    }
    vec![
        FixturePackage::new("@fx/b")
            .version("1.0.0", &[], 100)
            .version("1.0.1", &[], 200),
        FixturePackage::new("fx-a")
            .version("1.0.0", &[("@fx/b", "^1.0.0")], 1_000)
            .version("1.1.0", &[("@fx/b", "^1.0.0")], 2_000)
            .version("2.0.0", &[("@fx/b", "^1.0.0"), ("fx-c", "^1.0.0")], 80_000),
        FixturePackage::new("fx-c").version("1.0.0", &[], 50),
        big,
    ]
}

/// Packages whose names are only valid for old packages, as the public registry still
/// serves them: `JSONStream` and `jsonstream` are two different packages (different bytes),
/// `Base64` has capitals, `fx-legacy-app` depends on `JSONStream` and `Base64` (npm keeps
/// one `node_modules` entry per case-folded name, so no real project needs both spellings).
pub fn legacy() -> Vec<FixturePackage> {
    vec![
        FixturePackage::new("JSONStream")
            .version("1.3.4", &[], 300)
            .version("1.3.5", &[], 400),
        FixturePackage::new("jsonstream").version("1.3.5", &[], 900),
        FixturePackage::new("Base64").version("1.1.0", &[], 100),
        FixturePackage::new("fx-legacy-app").version(
            "1.0.0",
            &[("JSONStream", "^1.3.0"), ("Base64", "^1.0.0")],
            10,
        ),
    ]
}

/// An `npm publish` request body for `name@version` (as npm builds it) and its tarball.
pub fn publish_payload(name: &str, version: &str, filler_bytes: usize) -> (Vec<u8>, Tarball) {
    let t = make_tarball(name, version, &BTreeMap::new(), filler_bytes);
    let body = json!({
        "_id": name, "name": name, "description": "published by a test",
        "dist-tags": {"latest": version},
        "versions": {version: {
            "name": name, "version": version, "main": "index.js",
            "dist": {"integrity": t.integrity, "shasum": t.shasum,
                     "tarball": format!("http://ignored.test/{name}/-/{}-{version}.tgz", unscoped(name))},
        }},
        "access": null,
        "_attachments": {format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(&t.bytes),
            "length": t.bytes.len(),
        }},
    });
    (serde_json::to_vec(&body).expect("json"), t)
}

/// The predicate type of SLSA provenance v1, as npm's `--provenance` publishes it.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// npm's package URL of a version (`npa.toPurl`): `pkg:npm/%40scope/name@1.0.0`.
pub fn purl(name: &str, version: &str) -> String {
    let name = match name.strip_prefix('@') {
        Some(rest) => format!("%40{rest}"),
        None => name.to_string(),
    };
    format!("pkg:npm/{name}@{version}")
}

/// Lower-case hex of the sha512 of some bytes (an attestation subject's digest).
pub fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// The in-toto statement of a provenance attestation for `name@version` whose subject is
/// the sha512 of `subject_bytes` (the tarball, for a true one).
pub fn attestation_statement(name: &str, version: &str, subject_bytes: &[u8]) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": purl(name, version), "digest": {"sha512": sha512_hex(subject_bytes)}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {},
    })
}

/// A Sigstore bundle as npm's `--provenance` produces it (a DSSE envelope around the
/// statement; certificate and log entry are plausible bytes, not verifiable ones).
pub fn provenance_bundle(name: &str, version: &str, subject_bytes: &[u8]) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let statement = attestation_statement(name, version, subject_bytes);
    let payload = serde_json::to_vec(&statement).expect("json");
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(format!("certificate for {name}@{version}").as_bytes())},
            "tlogEntries": [{
                "logIndex": "123456",
                "logId": {"keyId": b64(b"fixture transparency log")},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": "1700000000",
                "inclusionPromise": {"signedEntryTimestamp": b64(b"fixture timestamp")},
                "canonicalizedBody": b64(b"{}"),
            }],
        },
        "dsseEnvelope": {
            "payload": b64(&payload),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "MEUCIQDfixtureFixtureFixtureFixtureFixtureFixtureFixtureAiEAfixture", "keyid": ""}],
        },
    })
}

/// `publish_payload` with a provenance attachment as npm's libnpmpublish sends it with
/// `--provenance`: `<name>-<version>.sigstore` whose `data` is the bundle's JSON text (not
/// base64). The subject is the tarball's sha512, or that of `subject_bytes` when given (a
/// lie). Returns the body, the tarball and the bundle.
pub fn publish_payload_with_provenance(
    name: &str,
    version: &str,
    filler_bytes: usize,
    subject_bytes: Option<&[u8]>,
) -> (Vec<u8>, Tarball, Value) {
    let (body, t) = publish_payload(name, version, filler_bytes);
    let bundle = provenance_bundle(name, version, subject_bytes.unwrap_or(&t.bytes));
    let text = serde_json::to_string(&bundle).expect("json");
    let mut doc: Value = serde_json::from_slice(&body).expect("json");
    doc["_attachments"][format!("{name}-{version}.sigstore")] = json!({
        "content_type": bundle["mediaType"],
        "data": text,
        "length": text.len(),
    });
    (serde_json::to_vec(&doc).expect("json"), t, bundle)
}
