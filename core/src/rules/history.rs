//! The rules that judge a version against the package's older ones: `unexpected-dependencies`
//! (a new version adds dependencies) and `publisher-change` (a new version comes from someone
//! who published none of the older ones). Both look only at the newest versions, and need
//! enough history to compare with.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::config::{Mode, Rule, Rules};
use super::facts::Facts;
use super::verdict::Finding;

/// `unexpected-dependencies`: among the newest three versions (never the oldest), those that
/// depend on a package no earlier version depended on. `by_time` is oldest first.
pub(super) fn unexpected_dependencies<'a>(
    rules: &Rules,
    by_time: &[&'a String],
    facts: &HashMap<&str, Facts>,
) -> Vec<(&'a String, Finding)> {
    let mut out = Vec::new();
    if rules.unexpected_dependencies == Mode::Off || by_time.len() < 2 {
        return out;
    }
    let newest_start = by_time.len().saturating_sub(3).max(1);
    for i in newest_start..by_time.len() {
        let earlier: BTreeSet<&String> = by_time[..i]
            .iter()
            .flat_map(|ver| {
                facts[ver.as_str()]
                    .dependencies
                    .iter()
                    .flat_map(|d| d.keys())
            })
            .collect();
        let ver = by_time[i];
        let new: Vec<&String> = facts[ver.as_str()]
            .dependencies
            .iter()
            .flat_map(|d| d.keys())
            .filter(|d| !earlier.contains(d))
            .collect();
        if !new.is_empty() {
            let names: Vec<&str> = new.iter().map(|s| s.as_str()).collect();
            let finding = Finding {
                rule: Rule::UnexpectedDependencies,
                mode: rules.unexpected_dependencies,
                reason: format!(
                    "adds dependencies no earlier version had: {}",
                    names.join(", ")
                ),
            };
            out.push((ver, finding));
        }
    }
    out
}

/// `publisher-change`: among the newest fifth of at least five versions, those published by
/// someone who published none of the older ones. `by_time` is oldest first.
pub(super) fn publisher_change<'a>(
    rules: &Rules,
    by_time: &[&'a String],
    facts: &HashMap<&str, Facts>,
) -> Vec<(&'a String, Finding)> {
    let mut out = Vec::new();
    if rules.publisher_change == Mode::Off || by_time.len() < 5 {
        return out;
    }
    let newest = by_time.len().div_ceil(5);
    let oldest = by_time.len() - newest;
    let publisher = |ver: &str| facts[ver].npm_user.as_ref().and_then(|u| u.name.clone());
    let known: HashSet<String> = by_time[..oldest]
        .iter()
        .filter_map(|v| publisher(v))
        .collect();
    for ver in &by_time[oldest..] {
        if let Some(p) = publisher(ver) {
            if !known.contains(&p) {
                let finding = Finding {
                    rule: Rule::PublisherChange,
                    mode: rules.publisher_change,
                    reason: format!("published by {p:?}, who published none of the older versions"),
                };
                out.push((*ver, finding));
            }
        }
    }
    out
}
