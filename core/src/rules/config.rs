//! What an org configures: the `Rule`s there are, the `Mode` each runs in, and `Rules`, the
//! whole set of settings (modes, thresholds, lists) that `evaluate` applies.

use crate::osv::Severity;

use super::pattern::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Mode {
    #[default]
    Off,
    Warn,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    AllowList,
    DenyList,
    Cooldown,
    FirstSeen,
    InstallScripts,
    UnexpectedDependencies,
    PublisherChange,
    Deprecated,
    License,
    Vulnerability,
    Malware,
}

impl Rule {
    pub fn label(self) -> &'static str {
        match self {
            Rule::AllowList => "allow-list",
            Rule::DenyList => "deny-list",
            Rule::Cooldown => "cooldown",
            Rule::FirstSeen => "first-seen",
            Rule::InstallScripts => "install-scripts",
            Rule::UnexpectedDependencies => "unexpected-dependencies",
            Rule::PublisherChange => "publisher-change",
            Rule::Deprecated => "deprecated",
            Rule::License => "license",
            Rule::Vulnerability => "vulnerability",
            Rule::Malware => "malware",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub lists: Mode,
    pub allow: Vec<Pattern>,
    pub deny: Vec<Pattern>,
    /// Anything not on the allow list is flagged by the `allow-list` rule.
    pub allow_list_only: bool,
    pub cooldown: Mode,
    pub cooldown_hours: u32,
    pub first_seen: Mode,
    pub first_seen_days: u32,
    pub install_scripts: Mode,
    pub unexpected_dependencies: Mode,
    pub publisher_change: Mode,
    pub deprecated: Mode,
    pub license: Mode,
    /// Allowed SPDX identifiers.
    pub licenses: Vec<String>,
    pub vulnerabilities: Mode,
    pub min_severity: Option<Severity>,
}
