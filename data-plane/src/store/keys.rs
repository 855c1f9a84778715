//! The key layout of the blob store, in one place. Keys are built only from validated names.

use std::fmt;

use nproxy_core::names::{PackageName, TarballFile};

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
        Key(format!("public/packuments/{}.json", name.key_path()))
    }

    /// Upstream validators and fetch time for a public packument (small, rewritten often).
    pub fn public_packument_meta(name: &PackageName) -> Key {
        Key(format!("public/packument-meta/{}.json", name.key_path()))
    }

    /// An internal package's document (compare-and-swap updated), namespaced by org id.
    pub fn internal_packument(org_id: &str, name: &PackageName) -> Option<Key> {
        Key::parse(&format!(
            "orgs/{org_id}/packages/{}/packument.json",
            name.key_path()
        ))
    }

    /// An internal tarball, addressed by its sha512: racing publishes never share a key.
    pub fn internal_blob(org_id: &str, name: &PackageName, sha512_hex: &str) -> Option<Key> {
        Key::parse(&format!(
            "orgs/{org_id}/packages/{}/blobs/{sha512_hex}.tgz",
            name.key_path()
        ))
    }

    /// The provenance bundle published with an internal version, addressed like its tarball.
    pub fn internal_attestations(
        org_id: &str,
        name: &PackageName,
        sha512_hex: &str,
    ) -> Option<Key> {
        Key::parse(&format!(
            "orgs/{org_id}/packages/{}/attestations/{sha512_hex}.json",
            name.key_path()
        ))
    }

    /// A public version's attestations document as the upstream served it, checked against
    /// the tarball's sha512 it is addressed by: immutable once written, shared by all orgs.
    pub fn public_attestations(name: &PackageName, sha512_hex: &str) -> Option<Key> {
        Key::parse(&format!(
            "public/attestations/{}/{sha512_hex}.json",
            name.key_path()
        ))
    }

    /// The upstream's registry signing keys (`/-/npm/v1/keys`), the last copy fetched.
    pub fn upstream_keys() -> Key {
        Key("public/upstream-keys.json".into())
    }

    /// Everything stored for an org's internal packages (the search index lists it).
    pub fn internal_packages_prefix(org_id: &str) -> String {
        format!("orgs/{org_id}/packages/")
    }

    /// Everything stored for one internal package.
    pub fn internal_package_prefix(org_id: &str, name: &PackageName) -> String {
        format!("orgs/{org_id}/packages/{}/", name.key_path())
    }

    /// An audit hand-off waiting to reach the control plane.
    pub fn outbox(org_id: &str, id: &str) -> Option<Key> {
        Key::parse(&format!("outbox/{org_id}/{id}.json"))
    }

    pub const OUTBOX_PREFIX: &'static str = "outbox/";

    /// A public tarball: immutable once written, shared by all orgs.
    pub fn public_tarball(name: &PackageName, file: &TarballFile) -> Key {
        Key(format!(
            "public/tarballs/{}/{}",
            name.key_path(),
            file.key_segment()
        ))
    }
}

/// Where one upstream's public copies live: the data plane's own upstream under `public/`,
/// each org upstream route under `upstreams/<route id>/`, so a name routed to a private
/// registry for one org never shares a copy with the same name resolved elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeySpace(Option<std::sync::Arc<str>>);

impl KeySpace {
    /// The data plane's own upstream (the keys `Key::public_*` build).
    pub fn default_upstream() -> KeySpace {
        KeySpace(None)
    }

    /// An org's upstream route; `None` for an id that can't be a key segment.
    pub fn route(route_id: &str) -> Option<KeySpace> {
        let ok = !route_id.is_empty()
            && route_id.len() <= 64
            && route_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| KeySpace(Some(route_id.into())))
    }

    fn prefix(&self) -> String {
        match &self.0 {
            None => "public".into(),
            Some(id) => format!("upstreams/{id}"),
        }
    }

    pub fn packument(&self, name: &PackageName) -> Key {
        Key(format!(
            "{}/packuments/{}.json",
            self.prefix(),
            name.key_path()
        ))
    }

    pub fn packument_meta(&self, name: &PackageName) -> Key {
        Key(format!(
            "{}/packument-meta/{}.json",
            self.prefix(),
            name.key_path()
        ))
    }

    pub fn tarball(&self, name: &PackageName, file: &TarballFile) -> Key {
        Key(format!(
            "{}/tarballs/{}/{}",
            self.prefix(),
            name.key_path(),
            file.key_segment()
        ))
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

    /// `JSONStream` and `jsonstream` are different packages: on a case-insensitive file
    /// system (which in effect lowercases every key) they must still never share a key.
    #[test]
    fn names_differing_in_case_never_share_a_key() {
        let upper = PackageName::parse("JSONStream").unwrap();
        let lower = PackageName::parse("jsonstream").unwrap();
        let v = semver::Version::new(1, 3, 5);
        let pairs = [
            (Key::public_packument(&upper), Key::public_packument(&lower)),
            (
                Key::public_packument_meta(&upper),
                Key::public_packument_meta(&lower),
            ),
            (
                Key::public_tarball(&upper, &TarballFile::for_version(&upper, &v)),
                Key::public_tarball(&lower, &TarballFile::for_version(&lower, &v)),
            ),
        ];
        for (a, b) in pairs {
            assert_ne!(a.as_str().to_lowercase(), b.as_str().to_lowercase());
            assert_eq!(Key::parse(a.as_str()), Some(a.clone()), "{a}");
            assert_eq!(Key::parse(b.as_str()), Some(b.clone()), "{b}");
        }
        for name in ["@Acme/Utils", "(x)", "a'b", &"L".repeat(900)] {
            let n = PackageName::parse(name).unwrap();
            let k = Key::public_tarball(
                &n,
                &TarballFile::for_version(&n, &semver::Version::new(1, 0, 0)),
            );
            assert_eq!(Key::parse(k.as_str()), Some(k.clone()), "{k}");
        }
    }

    #[test]
    fn key_spaces_keep_upstreams_apart() {
        let n = PackageName::parse("@vendor/sdk").unwrap();
        let f = TarballFile::for_version(&n, &semver::Version::new(1, 0, 0));
        let own = KeySpace::default_upstream();
        assert_eq!(own.packument(&n), Key::public_packument(&n));
        assert_eq!(own.packument_meta(&n), Key::public_packument_meta(&n));
        assert_eq!(own.tarball(&n, &f), Key::public_tarball(&n, &f));
        let routed = KeySpace::route("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap();
        for (a, b) in [
            (routed.packument(&n), own.packument(&n)),
            (routed.packument_meta(&n), own.packument_meta(&n)),
            (routed.tarball(&n, &f), own.tarball(&n, &f)),
        ] {
            assert_ne!(a, b);
            assert!(a.as_str().starts_with("upstreams/0193a1b2-"), "{a}");
            assert_eq!(Key::parse(a.as_str()), Some(a.clone()), "{a}");
        }
        for bad in ["", "../x", "A", "a/b", &"a".repeat(65)] {
            assert!(KeySpace::route(bad).is_none(), "{bad:?}");
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
