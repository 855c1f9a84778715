//! The list rules, `deny-list` and `allow-list`: a version named (or not named) by the org's
//! patterns. Both run in the `lists` mode.

use crate::names::PackageName;

use super::config::{Rule, Rules};
use super::verdict::Finding;

/// `deny-list`: the version matches a deny-list pattern.
pub(super) fn deny_list(rules: &Rules, name: &PackageName, ver: &str) -> Option<Finding> {
    rules
        .deny
        .iter()
        .any(|p| p.matches(name, ver))
        .then(|| Finding {
            rule: Rule::DenyList,
            mode: rules.lists,
            reason: format!("{name}@{ver} is on the deny list"),
        })
}

/// `allow-list`: with `allow_list_only`, the version matches no allow-list pattern.
pub(super) fn allow_list(rules: &Rules, name: &PackageName, ver: &str) -> Option<Finding> {
    (rules.allow_list_only && !rules.allow.iter().any(|p| p.matches(name, ver))).then(|| Finding {
        rule: Rule::AllowList,
        mode: rules.lists,
        reason: format!("{name}@{ver} is not on the allow list"),
    })
}

/// Whether the list rules refuse every version of a package, whatever versions it has: a
/// deny-list entry for the name (or its scope) without a range, or, with `allow_list_only`,
/// no allow-list entry for it at all; in `block` mode, and with no exception for any of its
/// versions. Such a package is not even listed (search).
pub fn refuses_whole_package(rules: &Rules, name: &PackageName, has_exceptions: bool) -> bool {
    if rules.lists != super::Mode::Block || has_exceptions {
        return false;
    }
    let denied = rules
        .deny
        .iter()
        .any(|p| p.range.is_none() && p.matches_name(name));
    let not_allowed = rules.allow_list_only && !rules.allow.iter().any(|p| p.matches_name(name));
    denied || not_allowed
}
