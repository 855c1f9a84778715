//! Everything a bundle claims, checked before anything is written: the signature over the
//! manifest against the trusted keys, the manifest's shape (member paths derived from names,
//! nothing missing, nothing extra), every packument's sha512, every tarball's integrity, and
//! that each packument lists exactly its bundled versions with those hashes.

use std::collections::{BTreeMap, BTreeSet};

use nproxy_core::names::PackageName;
use serde_json::Value;

use super::format::{self, Manifest};
use super::stage::Staged;
use super::trust::{self, TrustedKey};

/// One bundled package, checked.
pub struct Package {
    pub name: PackageName,
    /// Its packument member.
    pub packument: String,
    pub internal: bool,
    /// Version → (sha512 digest, sha1 digest, tarball member).
    pub versions: BTreeMap<semver::Version, (Vec<u8>, Vec<u8>, String)>,
}

pub struct Verified {
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub signer: String,
    pub packages: Vec<Package>,
}

/// The signature, then the manifest's shape, then every member. A signature that does not
/// verify stops at once; otherwise every problem is listed, each naming its package.
pub fn verify(staged: &Staged, keys: &[TrustedKey]) -> Result<Verified, Vec<String>> {
    let manifest_sha256 = format::signed_message(&staged.manifest);
    let signer = keys
        .iter()
        .find(|k| trust::verify(&k.raw, manifest_sha256.as_bytes(), &staged.signature).is_ok())
        .ok_or_else(|| {
            vec![
                "the signature does not verify against the trusted key(s): manifest.json \
                  was changed, or another key signed it"
                    .to_string(),
            ]
        })?;
    let manifest: Manifest = serde_json::from_slice(&staged.manifest)
        .map_err(|e| vec![format!("manifest.json is not a bundle manifest: {e}")])?;
    if manifest.format != format::FORMAT || manifest.format_version != format::FORMAT_VERSION {
        return Err(vec![format!(
            "format {:?} version {} is not one this nproxyctl reads ({} version {})",
            manifest.format,
            manifest.format_version,
            format::FORMAT,
            format::FORMAT_VERSION
        )]);
    }
    if manifest.key_id != signer.key_id {
        return Err(vec![format!(
            "the manifest names key {} but was signed by {}",
            manifest.key_id, signer.key_id
        )]);
    }
    let mut problems = Vec::new();
    let mut packages = Vec::new();
    let mut referenced = BTreeSet::new();
    let mut names = BTreeSet::new();
    for entry in &manifest.packages {
        let what = &entry.name;
        let Ok(name) = PackageName::parse(what) else {
            problems.push(format!("{what:?} is not a package name"));
            continue;
        };
        if !names.insert(name.as_str().to_string()) {
            problems.push(format!("{what}: listed twice"));
            continue;
        }
        if entry.packument != format::packument_member(&name) {
            problems.push(format!(
                "{what}: unexpected packument path {:?}",
                entry.packument
            ));
            continue;
        }
        referenced.insert(entry.packument.clone());
        let mut versions = BTreeMap::new();
        for v in &entry.versions {
            let Ok(version) = semver::Version::parse(&v.version) else {
                problems.push(format!("{what}@{}: not a version", v.version));
                continue;
            };
            if v.tarball != format::tarball_member(&name, &version) {
                problems.push(format!("{what}@{version}: unexpected tarball path"));
                continue;
            }
            let Some(want) = format::sha512_of_sri(&v.integrity) else {
                problems.push(format!("{what}@{version}: integrity is not sha512"));
                continue;
            };
            referenced.insert(v.tarball.clone());
            match staged.members.get(&v.tarball) {
                None => problems.push(format!("{what}@{version}: its tarball is missing")),
                Some(m) if m.sha512 != want => problems.push(format!(
                    "{what}@{version}: the tarball does not match its integrity {}",
                    v.integrity
                )),
                Some(m) => {
                    if versions
                        .insert(version.clone(), (want, m.sha1.clone(), v.tarball.clone()))
                        .is_some()
                    {
                        problems.push(format!("{what}@{version}: listed twice"));
                    }
                }
            }
        }
        let package = Package {
            name,
            packument: entry.packument.clone(),
            internal: entry.internal,
            versions,
        };
        if let Err(p) = check_packument(staged, &package, &entry.packument_sha512) {
            problems.push(format!("{what}: {p}"));
        }
        packages.push(package);
    }
    for extra in staged.members.keys().filter(|m| !referenced.contains(*m)) {
        problems.push(format!("member {extra} is not in the manifest"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Verified {
        manifest_sha256,
        signer: signer.key_id.clone(),
        manifest,
        packages,
    })
}

/// The packument member: its sha512, its name, exactly the bundled versions, and each
/// version's `dist` hashes matching the bundled tarball.
fn check_packument(staged: &Staged, p: &Package, sha512_hex: &str) -> Result<(), String> {
    let m = staged
        .members
        .get(&p.packument)
        .ok_or("its packument is missing")?;
    if hex::encode(&m.sha512) != sha512_hex.to_ascii_lowercase() {
        return Err("the packument does not match its sha512 in the manifest".into());
    }
    let bytes = std::fs::read(&m.path).map_err(|e| format!("reading the packument: {e}"))?;
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the packument is not JSON: {e}"))?;
    if doc["name"].as_str().is_some_and(|n| n != p.name.as_str()) {
        return Err(format!("the packument is named {}", doc["name"]));
    }
    let listed: BTreeSet<String> = doc["versions"]
        .as_object()
        .ok_or("the packument has no versions")?
        .keys()
        .cloned()
        .collect();
    let bundled: BTreeSet<String> = p.versions.keys().map(ToString::to_string).collect();
    if listed != bundled {
        return Err(format!(
            "the packument lists versions {listed:?}, the bundle carries {bundled:?}"
        ));
    }
    for (version, (sha512, sha1, _)) in &p.versions {
        let dist = &doc["versions"][version.to_string()]["dist"];
        let ok = match (
            dist["integrity"].as_str().and_then(format::sha512_of_sri),
            dist["shasum"].as_str().and_then(|s| hex::decode(s).ok()),
        ) {
            (Some(i), _) => i == *sha512,
            (None, Some(s)) => s == *sha1,
            (None, None) => false,
        };
        if !ok {
            return Err(format!(
                "{version}: the packument's dist integrity does not match the tarball"
            ));
        }
    }
    Ok(())
}
