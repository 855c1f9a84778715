//! Inserting into the caches weighed in bytes (served packuments, hot tarballs, tarball
//! indexes) so their bound holds at once.
//!
//! moka applies evictions in batches: an inserted entry waits in a write buffer, and the
//! entries it pushes out stay reachable until the next housekeeping, which only a later
//! cache access triggers. With entries of megabytes that is far past the bound: 1,024
//! distinct host names asking for a 2 MB packument (bench/attack.sh, "distinct Host
//! headers") reached 449 MB, and 296 MB stayed resident after the traffic stopped. Inserts
//! happen only when something was built or read from the store (never on a cache hit), so
//! applying the bound right there costs the hot path nothing.

use std::hash::Hash;

use crate::metrics::Metrics;

/// Inserts `value`, runs the cache's pending evictions, and records the cache's size in
/// the metrics (`nproxy_memory_cache_bytes{cache=…}`, `…_entries`).
pub fn insert_bounded<K, V>(
    cache: &moka::sync::Cache<K, V>,
    key: K,
    value: V,
    metrics: &Metrics,
    name: &str,
) where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache.insert(key, value);
    cache.run_pending_tasks();
    metrics.memory_cache(name, cache.entry_count(), cache.weighted_size());
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use super::*;

    #[test]
    fn large_entries_pushed_out_are_freed_at_once() {
        const MB: usize = 1 << 20;
        let cache: moka::sync::Cache<u32, Arc<Vec<u8>>> = moka::sync::Cache::builder()
            .weigher(|_k, v: &Arc<Vec<u8>>| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(32 * MB as u64)
            .build();
        let metrics = Metrics::new();
        let mut weak: Vec<Weak<Vec<u8>>> = Vec::new();
        for i in 0..512 {
            let v = Arc::new(vec![1u8; 2 * MB]);
            weak.push(Arc::downgrade(&v));
            insert_bounded(&cache, i, v, &metrics, "test");
        }
        // Only what the cache may hold is still alive (plain `insert` left ~80 alive).
        let live = weak.iter().filter(|w| w.upgrade().is_some()).count();
        assert!(live <= 17, "{live} entries of 2 MB alive in a 32 MB cache");
        let text = String::from_utf8(metrics.render()).expect("utf-8");
        let bytes: u64 = text
            .lines()
            .find(|l| l.starts_with("nproxy_memory_cache_bytes{cache=\"test\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .expect("the cache's size is a metric");
        assert!(
            bytes <= 32 * MB as u64 && bytes >= 30 * MB as u64,
            "{bytes}"
        );
    }
}
