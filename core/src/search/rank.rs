//! Which internal packages a query matches, and in what order: every word must appear in
//! the name, a keyword or the description (case-insensitive), every qualifier must hold;
//! the more exact the matches, the higher the package. Deprecated packages come after the
//! others; ties are broken by name, so the order is the same on every request (paging
//! depends on it).

use std::cmp::Ordering;

use super::entry::Entry;
use super::query::{Keywords, Query};

/// The relevance of a word equal to the whole name (or the name without its scope).
pub const EXACT: f64 = 100.0;
const NAME_PREFIX: f64 = 40.0;
const NAME_PART: f64 = 20.0;
const KEYWORD: f64 = 15.0;
const KEYWORD_PART: f64 = 6.0;
const DESCRIPTION: f64 = 4.0;
/// Qualifiers alone (no words): every match is as good as the next.
const QUALIFIED: f64 = 1.0;

/// A matched entry and its relevance.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    pub entry: &'a Entry,
    pub relevance: f64,
}

impl Hit<'_> {
    /// The result object npm reads, scored 0..=1 (1: a word was the whole name).
    pub fn object(&self) -> serde_json::Value {
        let final_score = (self.relevance / EXACT).min(1.0);
        self.entry.object(self.relevance, final_score)
    }
}

fn word_score(e: &Entry, w: &str) -> f64 {
    let bare = e.name_lc.rsplit('/').next().unwrap_or(&e.name_lc);
    let name = if e.name_lc == w || bare == w {
        EXACT
    } else if e.name_lc.starts_with(w) || bare.starts_with(w) {
        NAME_PREFIX
    } else if e.name_lc.contains(w) {
        NAME_PART
    } else {
        0.0
    };
    let keyword = if e.keywords_lc.iter().any(|k| k == w) {
        KEYWORD
    } else if e.keywords_lc.iter().any(|k| k.contains(w)) {
        KEYWORD_PART
    } else {
        0.0
    };
    let description = if e.description_lc.contains(w) {
        DESCRIPTION
    } else {
        0.0
    };
    name + keyword + description
}

fn qualifiers_hold(q: &Query, e: &Entry) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let has = |k: &str| e.keywords_lc.iter().any(|x| x == k);
    (q.scopes.is_empty() || q.scopes.iter().any(|s| eq(s, e.scope())))
        && q.keywords.iter().all(|set| match set {
            Keywords::Any(ks) => ks.iter().any(|k| has(k)),
            Keywords::All(ks) => ks.iter().all(|k| has(k)),
        })
        && (q.authors.is_empty()
            || q.authors
                .iter()
                .any(|a| e.author.as_deref().is_some_and(|x| eq(x, a)) || eq(&e.publisher, a)))
        && (q.maintainers.is_empty()
            || q.maintainers
                .iter()
                .any(|m| e.maintainers.iter().any(|x| eq(x, m))))
        && q.deprecated.is_none_or(|d| d == e.deprecated.is_some())
        && q.unstable.is_none_or(|u| u == e.unstable)
}

/// The entry's relevance for the query, `None` if it does not match.
pub fn relevance(q: &Query, e: &Entry) -> Option<f64> {
    if !qualifiers_hold(q, e) {
        return None;
    }
    if q.words.is_empty() {
        return Some(QUALIFIED);
    }
    let mut total = 0.0;
    for w in &q.words {
        let s = word_score(e, w);
        if s == 0.0 {
            return None;
        }
        total += s;
    }
    Some(total / q.words.len() as f64)
}

/// Every matching entry, best first.
pub fn rank<'a>(q: &Query, entries: impl Iterator<Item = &'a Entry>) -> Vec<Hit<'a>> {
    let mut hits: Vec<Hit<'a>> = entries
        .filter_map(|entry| relevance(q, entry).map(|relevance| Hit { entry, relevance }))
        .collect();
    hits.sort_by(|a, b| {
        a.entry
            .deprecated
            .is_some()
            .cmp(&b.entry.deprecated.is_some())
            .then(
                b.relevance
                    .partial_cmp(&a.relevance)
                    .unwrap_or(Ordering::Equal),
            )
            .then_with(|| a.entry.name.cmp(&b.entry.name))
    });
    hits
}
