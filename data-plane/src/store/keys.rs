//! The key layout of the blob store, in one place. Keys are built only from validated names.

use std::fmt;

use crate::names::{PackageName, TarballFile};

/// A store key: `/`-separated segments of safe characters, never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Checks an arbitrary key. Used for keys read back from a listing and in tests; the
    /// registry builds its keys with the functions below.
    pub fn parse(s: &str) -> Option<Key> {
        let ok = !s.is_empty()
            && s.len() <= 900
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && !seg.starts_with(".tmp")
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@' | b'+')
                    })
            });
        ok.then(|| Key(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full packument of a public package, as merged from the upstream.
    pub fn public_packument(name: &PackageName) -> Key {
        Key(format!("public/packuments/{name}.json"))
    }

    /// Upstream validators and fetch time for a public packument (small, rewritten often).
    pub fn public_packument_meta(name: &PackageName) -> Key {
        Key(format!("public/packument-meta/{name}.json"))
    }

    /// An internal package's document (compare-and-swap updated), namespaced by org id.
    pub fn internal_packument(org_id: &str, name: &PackageName) -> Option<Key> {
        Key::parse(&format!("orgs/{org_id}/packages/{name}/packument.json"))
    }

    /// An internal tarball, addressed by its sha512: racing publishes never share a key.
    pub fn internal_blob(org_id: &str, name: &PackageName, sha512_hex: &str) -> Option<Key> {
        Key::parse(&format!(
            "orgs/{org_id}/packages/{name}/blobs/{sha512_hex}.tgz"
        ))
    }

    /// Everything stored for one internal package.
    pub fn internal_package_prefix(org_id: &str, name: &PackageName) -> String {
        format!("orgs/{org_id}/packages/{name}/")
    }

    /// An audit hand-off waiting to reach the control plane.
    pub fn outbox(org_id: &str, id: &str) -> Option<Key> {
        Key::parse(&format!("outbox/{org_id}/{id}.json"))
    }

    pub const OUTBOX_PREFIX: &'static str = "outbox/";

    /// A public tarball: immutable once written, shared by all orgs.
    pub fn public_tarball(name: &PackageName, file: &TarballFile) -> Key {
        Key(format!("public/tarballs/{name}/{}", file.as_str()))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_names_are_valid() {
        let n = PackageName::parse("@acme/utils").unwrap();
        let f = TarballFile::parse(&n, "utils-1.0.0-rc.1+build.5.tgz").unwrap();
        for k in [
            Key::public_packument(&n),
            Key::public_packument_meta(&n),
            Key::public_tarball(&n, &f),
        ] {
            assert_eq!(Key::parse(k.as_str()), Some(k.clone()), "{k}");
        }
    }

    #[test]
    fn hostile_keys_are_refused() {
        for k in [
            "", "/a", "a/", "a//b", "a/../b", "..", "A", "a b", "a\\b", ".tmp/x", "a/%2f",
        ] {
            assert!(Key::parse(k).is_none(), "{k:?}");
        }
    }
}
