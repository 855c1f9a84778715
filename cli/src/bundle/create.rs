//! `nproxyctl bundle create`: every package version some lockfiles pin, fetched through a
//! connected nproxy (so the org's rules apply), verified, and written as one signed file.
//!
//! Each packument is fetched once and reduced to the pinned versions; each tarball is
//! streamed to a staging file while hashed and checked against the packument's integrity
//! (never held in memory whole). The manifest is signed by the control plane with the org's
//! active Ed25519 key; the file appears at `--out` only when complete (rename).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use nproxy_core::names::PackageName;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::keys_client::KeysClient;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha512};

use super::format::{self, Manifest, PackageEntry, VersionEntry};
use super::lockfile::Pinned;
use super::Control;

/// Largest packument and tarball taken from the registry.
const MAX_PACKUMENT: u64 = 512 * 1024 * 1024;
const MAX_TARBALL: u64 = 1024 * 1024 * 1024;

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The exporting org: its rules decide what the registry serves, its Ed25519 key signs.
    #[arg(long)]
    pub org: String,
    /// The connected nproxy's registry URL (the org's), e.g. http://127.0.0.1:4873/
    #[arg(long, env = "NPROXY_REGISTRY")]
    pub registry: String,
    /// An npm token of the org with the `proxy` scope.
    #[arg(long, env = "NPROXY_NPM_TOKEN", hide_env_values = true)]
    pub npm_token: Option<String>,
    /// package-lock.json, npm-shrinkwrap.json, pnpm-lock.yaml or yarn.lock; repeatable.
    #[arg(long = "lockfile", required = true)]
    pub lockfiles: Vec<PathBuf>,
    /// The bundle file to write (gzip'd if it ends in .gz or .tgz, or with --gzip).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub gzip: bool,
    /// Downloads at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

pub struct Created {
    pub manifest_sha256: String,
    pub key_id: String,
    pub packages: usize,
    pub versions: usize,
    pub bytes: u64,
}

/// A staged member: the file holding its bytes.
struct Staged {
    member: String,
    path: PathBuf,
}

struct Fetcher {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    dir: PathBuf,
}

impl Fetcher {
    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.get(url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The full packument (`Accept: application/json`), as the org's rules let it through.
    async fn packument(&self, name: &PackageName) -> anyhow::Result<Value> {
        let url = format!("{}/{}", self.base, name.url_encoded());
        let res = self
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{name}: cannot reach the registry: {e}"))?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            let why = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(body);
            anyhow::bail!("{name}: the registry answered {status}: {why}");
        }
        if res.content_length().is_some_and(|l| l > MAX_PACKUMENT) {
            anyhow::bail!("{name}: the packument is larger than {MAX_PACKUMENT} bytes");
        }
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("{name}: packument: {e}"))?;
            if (body.len() + chunk.len()) as u64 > MAX_PACKUMENT {
                anyhow::bail!("{name}: the packument is larger than {MAX_PACKUMENT} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("{name}: the packument is not JSON: {e}"))
    }

    /// Streams a tarball to a staging file; returns its path and sha512 / sha1 digests.
    async fn tarball(&self, what: &str, url: &str) -> anyhow::Result<(PathBuf, Vec<u8>, Vec<u8>)> {
        use tokio::io::AsyncWriteExt;
        let res = self
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| anyhow::anyhow!("{what}: tarball {url}: {e}"))?;
        let file = tempfile::Builder::new()
            .prefix("tarball-")
            .tempfile_in(&self.dir)?
            .into_temp_path()
            .keep()?;
        let mut out = tokio::fs::File::create(&file).await?;
        let (mut sha512, mut sha1) = (Sha512::new(), Sha1::new());
        let mut len = 0u64;
        let mut stream = res.bytes_stream().map_err(std::io::Error::other);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("{what}: tarball {url}: {e}"))?;
            len += chunk.len() as u64;
            if len > MAX_TARBALL {
                anyhow::bail!("{what}: the tarball is larger than {MAX_TARBALL} bytes");
            }
            sha512.update(&chunk);
            sha1.update(&chunk);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok((file, sha512.finalize().to_vec(), sha1.finalize().to_vec()))
    }
}

/// One package's work: its reduced packument and verified tarballs, staged.
struct Fetched {
    entry: PackageEntry,
    staged: Vec<Staged>,
}

async fn fetch_package(
    f: &Fetcher,
    name: PackageName,
    wanted: BTreeMap<semver::Version, Option<String>>,
) -> anyhow::Result<Fetched> {
    let doc = f.packument(&name).await?;
    let keep: BTreeSet<String> = wanted.keys().map(ToString::to_string).collect();
    let reduced = format::reduce(&doc, &keep).map_err(|e| {
        anyhow::anyhow!(
            "{name}: {e} in what the registry serves (unpublished, or blocked by the org's rules)"
        )
    })?;
    drop(doc);
    let internal = reduced["versions"]
        .as_object()
        .is_some_and(|vs| vs.values().any(|m| m.get("_nproxy").is_some()));
    let mut staged = Vec::new();
    let mut versions = Vec::new();
    for (version, lock_integrity) in &wanted {
        let what = format!("{name}@{version}");
        let dist = &reduced["versions"][version.to_string()]["dist"];
        let integrity = dist["integrity"].as_str().and_then(format::sha512_of_sri);
        let shasum = dist["shasum"].as_str().and_then(|s| hex::decode(s).ok());
        if let (Some(want), Some(lock)) = (
            &integrity,
            lock_integrity.as_deref().and_then(format::sha512_of_sri),
        ) {
            anyhow::ensure!(
                *want == lock,
                "{what}: the lockfile's integrity differs from the registry's \
                 (the lockfile was made against other bytes)"
            );
        }
        // Only the registry's own URLs get the token; anything else is rebuilt on it.
        let file = nproxy_core::names::TarballFile::for_version(&name, version);
        let url = match dist["tarball"].as_str() {
            Some(u) if u.starts_with(&format!("{}/", f.base)) => u.to_string(),
            _ => format!("{}/{}/-/{}", f.base, name.as_str(), file.as_str()),
        };
        let (path, sha512, sha1) = f.tarball(&what, &url).await?;
        match (&integrity, &shasum) {
            (Some(want), _) => anyhow::ensure!(
                *want == sha512,
                "{what}: the tarball does not match the packument's integrity"
            ),
            (None, Some(want)) => anyhow::ensure!(
                *want == sha1,
                "{what}: the tarball does not match the packument's shasum"
            ),
            (None, None) => anyhow::bail!("{what}: the packument gives no integrity or shasum"),
        }
        let member = format::tarball_member(&name, version);
        staged.push(Staged {
            member: member.clone(),
            path,
        });
        versions.push(VersionEntry {
            version: version.to_string(),
            integrity: format::sri_sha512(&sha512),
            tarball: member,
        });
    }
    let bytes = serde_json::to_vec(&reduced)?;
    let member = format::packument_member(&name);
    let path = f.dir.join(format!(
        "packument-{}.json",
        nproxy_common::hash::sha256_hex(name.as_str().as_bytes())
    ));
    std::fs::write(&path, &bytes)?;
    staged.push(Staged {
        member: member.clone(),
        path,
    });
    Ok(Fetched {
        entry: PackageEntry {
            name: name.as_str().to_string(),
            packument: member,
            packument_sha512: hex::encode(Sha512::digest(&bytes)),
            internal,
            versions,
        },
        staged,
    })
}

/// The pins grouped by package, names and versions validated.
fn group(
    pinned: &Pinned,
) -> anyhow::Result<BTreeMap<String, BTreeMap<semver::Version, Option<String>>>> {
    let mut out: BTreeMap<String, BTreeMap<semver::Version, Option<String>>> = BTreeMap::new();
    for (k, integrity) in &pinned.packages {
        PackageName::parse(&k.name)
            .map_err(|e| anyhow::anyhow!("{}: not a package name: {e}", k.name))?;
        let v = semver::Version::parse(&k.version)
            .map_err(|e| anyhow::anyhow!("{}@{}: not a version: {e}", k.name, k.version))?;
        out.entry(k.name.clone())
            .or_default()
            .insert(v, integrity.clone());
    }
    Ok(out)
}

pub async fn run(args: &CreateArgs, cp: &Control) -> anyhow::Result<Created> {
    let pinned = super::read_lockfiles(&args.lockfiles)?;
    let groups = group(&pinned)?;
    anyhow::ensure!(!groups.is_empty(), "the lockfiles pin no registry package");
    // The key that will sign, named in the manifest before it is signed.
    let keys = KeysClient::with_interceptor(cp.channel.clone(), cp.auth.clone())
        .list_keys(pb::ListKeysRequest {
            org: args.org.clone(),
        })
        .await?
        .into_inner()
        .keys;
    let key = keys
        .iter()
        .rev()
        .find(|k| k.algorithm == "ed25519" && k.status == pb::KeyStatus::Active as i32)
        .ok_or_else(|| anyhow::anyhow!("org {} has no active Ed25519 key", args.org))?;
    let out_dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".nproxy-bundle-")
        .tempdir_in(&out_dir)?;
    nproxy_common::tls::install_crypto_provider();
    let fetcher = Fetcher {
        http: reqwest::Client::builder().build()?,
        base: args.registry.trim_end_matches('/').to_string(),
        token: args.npm_token.clone(),
        dir: staging.path().to_path_buf(),
    };
    let mut fetched: Vec<Fetched> = futures::stream::iter(groups)
        .map(|(name, wanted)| {
            let fetcher = &fetcher;
            async move {
                let name = PackageName::parse(&name)
                    .map_err(|e| anyhow::anyhow!("{name}: not a package name: {e}"))?;
                fetch_package(fetcher, name, wanted).await
            }
        })
        .buffer_unordered(args.concurrency.clamp(1, 64))
        .try_collect()
        .await?;
    fetched.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
    let manifest = Manifest {
        format: format::FORMAT.into(),
        format_version: format::FORMAT_VERSION,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        org: args.org.clone(),
        key_id: key.key_id.clone(),
        packages: fetched.iter().map(|f| f.entry.clone()).collect(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let message = format::signed_message(&manifest_bytes);
    let signed = KeysClient::with_interceptor(cp.channel.clone(), cp.auth.clone())
        .sign(pb::SignRequest {
            org: args.org.clone(),
            payload: message.clone().into_bytes(),
        })
        .await?
        .into_inner();
    anyhow::ensure!(
        signed.key_id == key.key_id,
        "the org's key changed while the bundle was built (rotated?): run the command again"
    );
    super::trust::verify(&key.public_key, message.as_bytes(), &signed.signature)
        .map_err(|e| anyhow::anyhow!("the control plane's signature does not verify: {e}"))?;
    let gzip = args.gzip
        || args
            .out
            .extension()
            .is_some_and(|e| e == "gz" || e == "tgz");
    let staged: Vec<Staged> = fetched.into_iter().flat_map(|f| f.staged).collect();
    let bytes = write_tar(
        &args.out,
        &out_dir,
        gzip,
        &manifest_bytes,
        &signed.signature,
        &staged,
    )?;
    Ok(Created {
        manifest_sha256: message,
        key_id: key.key_id.clone(),
        packages: manifest.packages.len(),
        versions: manifest.packages.iter().map(|p| p.versions.len()).sum(),
        bytes,
    })
}

/// Writes the tar (manifest, signature, then every member in manifest order) next to `out`,
/// then renames it into place. Returns its size.
fn write_tar(
    out: &Path,
    dir: &Path,
    gzip: bool,
    manifest: &[u8],
    signature: &[u8],
    staged: &[Staged],
) -> anyhow::Result<u64> {
    let tmp = tempfile::Builder::new()
        .prefix(".nproxy-bundle-")
        .tempfile_in(dir)?;
    let file = std::io::BufWriter::new(tmp.as_file().try_clone()?);
    let sink = if gzip {
        Sink::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ))
    } else {
        Sink::Plain(file)
    };
    let mut tar = tar::Builder::new(sink);
    let mut add = |member: &str, len: u64, data: &mut dyn std::io::Read| -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(len);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, member, data)?;
        Ok(())
    };
    add(format::MANIFEST, manifest.len() as u64, &mut &manifest[..])?;
    add(
        format::SIGNATURE,
        signature.len() as u64,
        &mut &signature[..],
    )?;
    // Packuments first (small), then tarballs.
    let (docs, tgzs): (Vec<&Staged>, Vec<&Staged>) = staged
        .iter()
        .partition(|s| s.member.starts_with("packuments/"));
    for s in docs.into_iter().chain(tgzs) {
        let mut f = std::fs::File::open(&s.path)?;
        let len = f.metadata()?.len();
        add(&s.member, len, &mut f)?;
    }
    tar.into_inner()?.finish()?;
    tmp.as_file().sync_all()?;
    let size = tmp.as_file().metadata()?.len();
    tmp.persist(out)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", out.display(), e.error))?;
    Ok(size)
}

/// Where the tar goes: the file, or gzip into the file.
enum Sink {
    Plain(std::io::BufWriter<std::fs::File>),
    Gzip(flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gzip(w) => w.flush(),
        }
    }
}

impl Sink {
    /// Ends the gzip stream (if any) and flushes everything to the file.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w.finish()?.flush(),
        }
    }
}
