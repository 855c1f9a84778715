//! `nproxyctl verify <name>@<version>`: checks a published internal version end to end. The
//! packument and the tarball come over the registry's HTTP API (as npm gets them); the
//! public keys come from the control plane over gRPC, never from the packument, so a
//! tampered packument can't vouch for itself.

use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use nproxy_proto::tokens::BearerAuth;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::keys_client::KeysClient;
use serde_json::Value;
use sha2::{Digest, Sha512};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// `<name>@<version>`, e.g. `@acme/utils@1.0.0`.
    spec: String,
    /// The org the package belongs to (its keys are fetched from the control plane).
    #[arg(long)]
    org: String,
    /// Registry URL (the data plane), e.g. http://127.0.0.1:4873/
    #[arg(long, env = "NPROXY_REGISTRY")]
    registry: String,
    /// An npm token with the `proxy` scope for reading the package.
    #[arg(long, env = "NPROXY_NPM_TOKEN", hide_env_values = true)]
    npm_token: Option<String>,
}

fn split_spec(spec: &str) -> anyhow::Result<(&str, &str)> {
    let at = spec
        .rfind('@')
        .filter(|i| *i > 0)
        .ok_or_else(|| anyhow::anyhow!("{spec:?} must be <name>@<version>"))?;
    Ok((&spec[..at], &spec[at + 1..]))
}

impl VerifyArgs {
    pub fn spec(&self) -> &str {
        &self.spec
    }
}

pub struct Verified {
    pub key_id: String,
    pub integrity: String,
}

pub async fn run(
    args: &VerifyArgs,
    channel: tonic::transport::Channel,
    admin: BearerAuth,
) -> anyhow::Result<Verified> {
    let (name, version) = split_spec(&args.spec)?;
    nproxy_common::tls::install_crypto_provider();
    let http = reqwest::Client::builder().build()?;
    let base = args.registry.trim_end_matches('/');
    let encoded = name.replacen('/', "%2f", 1);
    let get = |url: String| {
        let mut r = http.get(url);
        if let Some(t) = &args.npm_token {
            r = r.bearer_auth(t);
        }
        r
    };
    let doc: Value = get(format!("{base}/{encoded}"))
        .header("accept", "application/json")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let m = doc["versions"]
        .get(version)
        .ok_or_else(|| anyhow::anyhow!("{name}@{version} is not in the registry"))?;
    let integrity = m["dist"]["integrity"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{name}@{version} has no dist.integrity"))?
        .to_string();
    let tarball = m["dist"]["tarball"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{name}@{version} has no dist.tarball"))?;
    let bytes = get(tarball.to_string())
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let actual = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes))
    );
    anyhow::ensure!(
        actual == integrity,
        "INTEGRITY MISMATCH: the tarball hashes to {actual}, the packument says {integrity}"
    );
    let sig = m["_nproxy"]["signatures"]
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| anyhow::anyhow!("{name}@{version} carries no nproxy signature"))?;
    let key_id = sig["keyid"].as_str().unwrap_or_default().to_string();
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(sig["sig"].as_str().unwrap_or_default())
        .map_err(|_| anyhow::anyhow!("the signature is not base64"))?;
    let keys = KeysClient::with_interceptor(channel, admin)
        .list_keys(pb::ListKeysRequest {
            org: args.org.clone(),
        })
        .await?
        .into_inner()
        .keys;
    let key = keys.iter().find(|k| k.key_id == key_id).ok_or_else(|| {
        anyhow::anyhow!(
            "SIGNATURE INVALID: key {key_id} is not one of {}'s keys",
            args.org
        )
    })?;
    let vk = VerifyingKey::from_bytes(
        &key.public_key
            .clone()
            .try_into()
            .map_err(|_| anyhow::anyhow!("the control plane returned a malformed key"))?,
    )?;
    let signature = Signature::from_slice(&sig_bytes)
        .map_err(|_| anyhow::anyhow!("SIGNATURE INVALID: malformed signature"))?;
    let message = format!("{name}@{version}:{integrity}");
    vk.verify(message.as_bytes(), &signature).map_err(|_| {
        anyhow::anyhow!(
            "SIGNATURE INVALID: {name}@{version} was not signed by {key_id} over its integrity"
        )
    })?;
    Ok(Verified { key_id, integrity })
}
