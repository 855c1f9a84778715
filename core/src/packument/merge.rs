//! `merge`: a fresh upstream answer merged into the document nproxy holds, keeping the
//! versions whose tarballs are cached.

use super::document::{repair_dist_tags, Packument};

/// Merges a fresh upstream document into the one nproxy holds. Versions the upstream no longer
/// lists survive when `keep` says their tarball is cached: keeping a copy is the point of a
/// proxy. `upstream` is `None` when the upstream says the package does not exist.
///
/// Returns `None` when nothing is left to serve.
pub fn merge<'a>(
    held: Option<Packument<'a>>,
    upstream: Option<Packument<'a>>,
    keep: impl Fn(&str) -> bool,
) -> Option<Packument<'a>> {
    let (mut base, held) = match (upstream, held) {
        (Some(up), held) => (up, held),
        (None, Some(held)) => {
            let mut base = held.clone();
            base.versions.clear();
            (base, Some(held))
        }
        (None, None) => return None,
    };
    if let Some(held) = held {
        let held_time = held.time();
        let mut time = base.time();
        let mut time_changed = false;
        for (v, manifest) in held.versions {
            if !base.versions.contains_key(&v) && keep(&v) {
                if let Some(t) = held_time.get(&v) {
                    time.insert(v.clone(), t.clone());
                    time_changed = true;
                }
                base.versions.insert(v, manifest);
            }
        }
        if time_changed {
            base.set_field("time", &time);
        }
    }
    if !base.has_versions() {
        return None;
    }
    repair_dist_tags(&mut base);
    Some(base)
}
