//! Reading a bundle for import: every member streamed to a staging file next to the store
//! (hashed on the way, bounded in size), the manifest and its signature kept in memory.
//! Nothing here is trusted yet: `verify.rs` decides.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha512};
use tempfile::TempPath;

use super::format::{MANIFEST, SIGNATURE};

const MAX_MANIFEST: u64 = 64 * 1024 * 1024;
const MAX_SIGNATURE: u64 = 1024;
const MAX_PACKUMENT: u64 = 512 * 1024 * 1024;
const MAX_TARBALL: u64 = 1024 * 1024 * 1024;

/// One member's bytes, staged, with their digests.
pub struct Member {
    pub path: TempPath,
    pub sha512: Vec<u8>,
    pub sha1: Vec<u8>,
}

pub struct Staged {
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
    /// By member path.
    pub members: BTreeMap<String, Member>,
}

/// A member path the format allows: `manifest.json`, `manifest.sig`, or a `packuments/` or
/// `tarballs/` path made of store-key segments (`Key::parse`'s alphabet: no `..`, no
/// uppercase, nothing a file system could reinterpret).
fn check_path(p: &str) -> Result<(), String> {
    if p == MANIFEST || p == SIGNATURE {
        return Ok(());
    }
    let allowed = (p.starts_with("packuments/") || p.starts_with("tarballs/"))
        && nproxy_data_plane::store::Key::parse(p).is_some();
    if allowed {
        Ok(())
    } else {
        Err(format!("unexpected member {p:?}"))
    }
}

fn limit(p: &str) -> u64 {
    match p {
        MANIFEST => MAX_MANIFEST,
        SIGNATURE => MAX_SIGNATURE,
        _ if p.starts_with("packuments/") => MAX_PACKUMENT,
        _ => MAX_TARBALL,
    }
}

/// Reads the bundle (a tar, or a gzip'd tar) into `staging`. Blocking.
pub fn extract(bundle: &Path, staging: &Path) -> Result<Staged, String> {
    let file = std::fs::File::open(bundle)
        .map_err(|e| format!("cannot open {}: {e}", bundle.display()))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 2];
    let gzip = reader
        .get_mut()
        .read_exact(&mut magic)
        .is_ok_and(|()| magic == [0x1f, 0x8b]);
    use std::io::Seek;
    reader
        .rewind()
        .map_err(|e| format!("cannot read {}: {e}", bundle.display()))?;
    let source: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(source);
    let mut staged = Staged {
        manifest: Vec::new(),
        signature: Vec::new(),
        members: BTreeMap::new(),
    };
    let mut seen = std::collections::BTreeSet::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar file: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a valid tar file: {e}"))?;
        let path = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .ok_or("a member's name is not UTF-8")?;
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular) {
            return Err(format!("member {path:?} is not a regular file"));
        }
        check_path(&path)?;
        if !seen.insert(path.clone()) {
            return Err(format!("member {path:?} appears twice"));
        }
        let size = entry.size();
        let max = limit(&path);
        if size > max {
            return Err(format!("member {path:?} is larger than {max} bytes"));
        }
        if path == MANIFEST || path == SIGNATURE {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            (&mut entry)
                .take(max)
                .read_to_end(&mut buf)
                .map_err(|e| format!("reading {path}: {e}"))?;
            if path == MANIFEST {
                staged.manifest = buf;
            } else {
                staged.signature = buf;
            }
            continue;
        }
        let member = copy(&mut entry, staging, max).map_err(|e| format!("reading {path}: {e}"))?;
        staged.members.insert(path, member);
    }
    if !seen.contains(MANIFEST) {
        return Err("the bundle has no manifest.json".into());
    }
    if !seen.contains(SIGNATURE) {
        return Err("the bundle has no manifest.sig".into());
    }
    Ok(staged)
}

/// Copies one member to a staging file, hashing it.
fn copy(from: &mut impl Read, staging: &Path, max: u64) -> std::io::Result<Member> {
    use std::io::Write;
    let tmp = tempfile::Builder::new()
        .prefix("bundle-")
        .tempfile_in(staging)?;
    let (file, path) = tmp.into_parts();
    let mut out = std::io::BufWriter::new(file);
    let (mut sha512, mut sha1) = (Sha512::new(), Sha1::new());
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > max {
            return Err(std::io::Error::other("larger than its header said"));
        }
        sha512.update(&buf[..n]);
        sha1.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(Member {
        path,
        sha512: sha512.finalize().to_vec(),
        sha1: sha1.finalize().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            // Written raw: the builder itself refuses hostile names such as `../x`.
            h.as_old_mut().name[..p.len()].copy_from_slice(p.as_bytes());
            h.set_cksum();
            b.append(&h, *d).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        if !gzip {
            return bytes;
        }
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        gz.finish().unwrap()
    }

    /// Extracts `bytes`; the folder is returned so staged members outlive the call.
    fn run(bytes: &[u8]) -> (tempfile::TempDir, Result<Staged, String>) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b.tar");
        std::fs::write(&f, bytes).unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let r = extract(&f, &staging);
        (dir, r)
    }

    #[test]
    fn plain_and_gzip_tars_stage_with_digests() {
        for gzip in [false, true] {
            let (_dir, s) = run(&tar_of(
                &[
                    ("manifest.json", b"{}"),
                    ("manifest.sig", b"sig"),
                    ("tarballs/fx-a/fx-a-1.0.0.tgz", b"abc"),
                ],
                gzip,
            ));
            let s = s.unwrap();
            assert_eq!(s.manifest, b"{}");
            assert_eq!(s.signature, b"sig");
            let m = &s.members["tarballs/fx-a/fx-a-1.0.0.tgz"];
            assert_eq!(m.sha512, Sha512::digest(b"abc").to_vec());
            assert_eq!(std::fs::read(&m.path).unwrap(), b"abc");
        }
    }

    #[test]
    fn hostile_or_incomplete_bundles_are_refused() {
        let sig: (&str, &[u8]) = ("manifest.sig", b"s");
        let man: (&str, &[u8]) = ("manifest.json", b"{}");
        for (members, want) in [
            (vec![man, sig, ("../x", b"a" as &[u8])], "unexpected member"),
            (
                vec![man, sig, ("tarballs/A/x.tgz", b"a")],
                "unexpected member",
            ),
            (vec![man, sig, ("other/x", b"a")], "unexpected member"),
            (vec![man, man, sig], "twice"),
            (vec![man], "manifest.sig"),
            (vec![sig], "manifest.json"),
        ] {
            let e = run(&tar_of(&members, false)).1.err().unwrap_or_default();
            assert!(e.contains(want), "{members:?}: {e}");
        }
        assert!(
            run(b"not a tar at all, but long enough to not be empty ......")
                .1
                .is_err()
        );
    }
}
