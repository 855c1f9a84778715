//! What `evaluate` concludes: each version's `Finding`s, the blocked and warned versions, and
//! when the verdict expires. Also the texts clients and headers see (`version_refusal`,
//! `package_refusal`, `header`) and `all_blocked`, when the package itself must be refused.

use std::collections::{BTreeMap, BTreeSet};

use crate::packument::Packument;

use super::config::{Mode, Rule};

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub mode: Mode,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Every finding, by version (including excepted ones, for `rules explain`).
    pub findings: BTreeMap<String, Vec<Finding>>,
    pub blocked: BTreeSet<String>,
    pub warned: BTreeSet<String>,
    /// When a time-based finding stops holding: the verdict must be recomputed then.
    pub recheck_at_ms: Option<i64>,
}

impl Verdict {
    /// Rules that blocked a version, e.g. for a 403 on its tarball.
    pub fn blocking_rules(&self, version: &str) -> Vec<Rule> {
        // Each rule once, in the order found: a version flagged by two advisories and a
        // malware report reads "vulnerability,malware", not "vulnerability,malware,vulnerability".
        let mut out: Vec<Rule> = Vec::new();
        for f in self.findings.get(version).into_iter().flatten() {
            if f.mode == Mode::Block && !out.contains(&f.rule) {
                out.push(f.rule);
            }
        }
        out
    }

    /// Why a version is refused, for the client: `<name>@<version> is blocked by this
    /// registry's rules: cooldown (published 2 h ago); malware (GHSA-…)`.
    pub fn version_refusal(&self, name: &str, version: &str) -> String {
        let reasons: Vec<String> = self
            .findings
            .get(version)
            .into_iter()
            .flatten()
            .filter(|f| f.mode == Mode::Block)
            .map(|f| format!("{} ({})", f.rule.label(), f.reason))
            .collect();
        format!(
            "{name}@{version} is blocked by this registry's rules: {}",
            reasons.join("; ")
        )
    }

    /// Why a whole package is refused (every version blocked): the rules involved, sorted.
    pub fn package_refusal(&self, name: &str) -> String {
        let mut rules: Vec<&str> = self
            .findings
            .values()
            .flatten()
            .filter(|f| f.mode == Mode::Block)
            .map(|f| f.rule.label())
            .collect();
        rules.sort_unstable();
        rules.dedup();
        format!(
            "every version of {name} is blocked by this registry's rules: {}",
            rules.join(", ")
        )
    }

    /// `1.2.3=cooldown,install-scripts; 2.0.0=malware` for a response header.
    pub fn header(&self) -> String {
        self.blocked
            .iter()
            .map(|v| {
                let rules: Vec<&str> = self.blocking_rules(v).iter().map(|r| r.label()).collect();
                format!("{v}={}", rules.join(","))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Every version is blocked: the package itself must be refused (with these reasons).
pub fn all_blocked(doc: &Packument, v: &Verdict) -> bool {
    doc.has_versions() && doc.version_keys().all(|ver| v.blocked.contains(ver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_blocking_rules_only() {
        let f = |rule, mode, reason: &str| Finding {
            rule,
            mode,
            reason: reason.into(),
        };
        let mut v = Verdict::default();
        v.findings.insert(
            "1.0.0".into(),
            vec![
                f(Rule::Cooldown, Mode::Block, "published 2 h ago"),
                f(Rule::License, Mode::Warn, "GPL-3.0"),
            ],
        );
        v.findings.insert(
            "2.0.0".into(),
            vec![f(Rule::Malware, Mode::Block, "GHSA-x")],
        );
        assert_eq!(
            v.version_refusal("left-pad", "1.0.0"),
            "left-pad@1.0.0 is blocked by this registry's rules: cooldown (published 2 h ago)"
        );
        let all = v.package_refusal("left-pad");
        assert!(
            all.starts_with("every version of left-pad is blocked"),
            "{all}"
        );
        assert!(
            all.contains("cooldown") && all.contains("malware") && !all.contains("license"),
            "{all}"
        );
    }

    #[test]
    fn each_blocking_rule_is_named_once_in_the_order_found() {
        let f = |rule, mode| Finding {
            rule,
            mode,
            reason: "r".into(),
        };
        let mut v = Verdict::default();
        v.findings.insert(
            "1.0.0".into(),
            vec![
                f(Rule::Vulnerability, Mode::Block),
                f(Rule::Malware, Mode::Block),
                f(Rule::License, Mode::Warn),
                f(Rule::Vulnerability, Mode::Block),
            ],
        );
        assert_eq!(
            v.blocking_rules("1.0.0"),
            vec![Rule::Vulnerability, Rule::Malware]
        );
        assert!(v.blocking_rules("9.9.9").is_empty());
    }
}
