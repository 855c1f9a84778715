//! Search (`GET /-/v1/search`), the pure part: the request's parameters and text
//! (`query`), what is kept of an internal package and the result object npm reads
//! (`entry`), matching and ranking (`rank`), and how a page of the merged list (the org's
//! internal packages first, then the upstream's results) is cut (`split`).
//!
//! The answer has npm's shape: `{"objects": [{"package": {name, scope, version,
//! description, keywords, date, links, publisher, maintainers}, "flags", "score": {final,
//! detail: {quality, popularity, maintenance}}, "searchScore"}], "total", "time"}`.

use std::ops::Range;

use serde_json::{json, Value};

use crate::names::PackageName;

mod entry;
mod query;
mod rank;

pub use entry::Entry;
pub use query::{
    names_internal_scope, params, parse, Keywords, ParamError, Params, Query, DEFAULT_SIZE,
    MAX_FROM, MAX_SIZE, MAX_TERMS, MAX_TEXT_BYTES,
};
pub use rank::{rank, relevance, Hit, EXACT};

/// Which part of the merged list a page covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Positions in the ranked internal list.
    pub internal: Range<usize>,
    /// The first position wanted in the (filtered) upstream list, and how many.
    pub upstream_start: usize,
    pub upstream_count: usize,
}

/// Cuts the page `from..from + size` of the merged list: the `internal` results first
/// (there are `internal` of them), then the upstream's.
pub fn split(from: usize, size: usize, internal: usize) -> Split {
    let end = from.saturating_add(size);
    Split {
        internal: from.min(internal)..end.min(internal),
        upstream_start: from.saturating_sub(internal),
        upstream_count: end.saturating_sub(internal.max(from)),
    }
}

/// The package name of an upstream result object, if it has a valid one.
pub fn object_name(object: &Value) -> Option<PackageName> {
    PackageName::parse(object.get("package")?.get("name")?.as_str()?).ok()
}

/// The whole answer.
pub fn answer(objects: Vec<Value>, total: usize, now_iso: &str) -> Value {
    json!({"objects": objects, "total": total, "time": now_iso})
}

#[cfg(test)]
mod tests;
