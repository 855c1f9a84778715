//! The rules on OSV advisories: `malware` and `vulnerability`.

use crate::osv::{Advisory, Severity};

use super::config::{Mode, Rule, Rules};
use super::verdict::Finding;

/// The finding of one advisory that affects a version: `malware`, blocked whatever the
/// vulnerability rule's mode, or `vulnerability` when that rule is on and the advisory's
/// severity reaches `min_severity` (advisories without a severity never do).
pub(super) fn vulnerability_or_malware(rules: &Rules, a: &Advisory) -> Option<Finding> {
    if a.malware {
        Some(Finding {
            rule: Rule::Malware,
            mode: Mode::Block,
            reason: format!("malware: {} {}", a.id, a.summary),
        })
    } else if rules.vulnerabilities != Mode::Off
        && a.severity
            .is_some_and(|s| rules.min_severity.is_none_or(|min| s >= min))
    {
        let sev = a.severity.map(Severity::label).unwrap_or("unknown");
        Some(Finding {
            rule: Rule::Vulnerability,
            mode: rules.vulnerabilities,
            reason: format!("{} ({sev}): {}", a.id, a.summary),
        })
    } else {
        None
    }
}
