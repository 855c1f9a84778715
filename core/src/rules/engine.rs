//! `evaluate`: runs every rule on every version of a public package and turns the findings
//! into a `Verdict`, the org's exceptions applied.
//!
//! The order rules run in is the order of each version's findings, which is the order
//! `Verdict::version_refusal` lists them in: first the rules on one version (lists, cooldown,
//! manifest rules, advisories), then the rules on the package as a whole (first-seen, then
//! the history rules).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::names::PackageName;
use crate::osv::Advisory;
use crate::packument::Packument;

use super::age::{self, parse_iso_ms};
use super::config::{Mode, Rule, Rules};
use super::facts::Facts;
use super::verdict::{Finding, Verdict};
use super::{advisory, history, lists, manifest};

/// Evaluates every rule on every version of a public package.
pub fn evaluate(
    name: &PackageName,
    doc: &Packument,
    rules: &Rules,
    advisories: &[Advisory],
    exceptions: &HashSet<String>,
    now_ms: i64,
) -> Verdict {
    let times = doc.times();
    let versions: Vec<String> = doc.version_keys().cloned().collect();
    let facts: HashMap<&str, Facts> = versions
        .iter()
        .map(|ver| {
            (
                ver.as_str(),
                doc.version_as::<Facts>(ver).unwrap_or_default(),
            )
        })
        .collect();
    let published = |ver: &str| times.get(ver).and_then(|t| parse_iso_ms(t));
    let mut out = Findings::default();

    // Oldest first (by publish time; unknown times sort first, then by semver).
    let mut by_time: Vec<&String> = versions.iter().collect();
    by_time.sort_by_key(|ver| {
        (
            published(ver).unwrap_or(0),
            semver::Version::parse(ver).ok(),
        )
    });

    for ver in &versions {
        let f = &facts[ver.as_str()];
        out.add(ver, lists::deny_list(rules, name, ver));
        out.add(ver, lists::allow_list(rules, name, ver));
        if let Some((finding, until)) = age::cooldown(rules, published(ver), now_ms) {
            out.add(ver, Some(finding));
            out.expires_at(until);
        }
        out.add(ver, manifest::install_scripts(rules, f));
        out.add(ver, manifest::deprecated(rules, f));
        out.add(ver, manifest::license(rules, f));
        for a in advisories.iter().filter(|a| a.affects(name.as_str(), ver)) {
            out.add(ver, advisory::vulnerability_or_malware(rules, a));
        }
    }

    if let Some((finding, until)) = age::first_seen(rules, &times, now_ms) {
        for ver in &versions {
            out.add(ver, Some(finding.clone()));
        }
        out.expires_at(until);
    }
    for (ver, finding) in history::unexpected_dependencies(rules, &by_time, &facts) {
        out.add(ver, Some(finding));
    }
    for (ver, finding) in history::publisher_change(rules, &by_time, &facts) {
        out.add(ver, Some(finding));
    }

    out.into_verdict(exceptions)
}

/// The findings so far, by version in the order the rules ran, and the earliest time a
/// time-based one stops holding.
#[derive(Default)]
struct Findings {
    by_version: BTreeMap<String, Vec<Finding>>,
    recheck_at_ms: Option<i64>,
}

impl Findings {
    /// Records a rule's finding on a version; a rule that is off records nothing.
    fn add(&mut self, ver: &str, finding: Option<Finding>) {
        if let Some(f) = finding.filter(|f| f.mode != Mode::Off) {
            self.by_version.entry(ver.to_string()).or_default().push(f);
        }
    }

    /// A finding just recorded stops holding at `until`.
    fn expires_at(&mut self, until: i64) {
        self.recheck_at_ms = Some(self.recheck_at_ms.map_or(until, |r| r.min(until)));
    }

    /// Sorts the flagged versions into blocked and warned, the org's exceptions applied.
    fn into_verdict(self, exceptions: &HashSet<String>) -> Verdict {
        let mut v = Verdict {
            findings: self.by_version,
            recheck_at_ms: self.recheck_at_ms,
            ..Verdict::default()
        };
        for (ver, fs) in &v.findings {
            let malware = fs.iter().any(|f| f.rule == Rule::Malware);
            // An explicit exception allows a version, except that malware stays blocked.
            if exceptions.contains(ver) && !malware {
                continue;
            }
            if fs.iter().any(|f| f.mode == Mode::Block) {
                v.blocked.insert(ver.clone());
            } else if fs.iter().any(|f| f.mode == Mode::Warn) {
                v.warned.insert(ver.clone());
            }
        }
        v
    }
}
