//! The org's rules as the control plane publishes them (protobuf in the org snapshot) →
//! the rules engine's own types. The engine (`nproxy_core::rules`) knows no protobuf.

use nproxy_proto::v1 as pb;

use nproxy_core::osv::Severity;
use nproxy_core::rules::{Mode, Pattern, Rules};

fn mode(m: i32) -> Mode {
    match pb::RuleMode::try_from(m).unwrap_or(pb::RuleMode::Unspecified) {
        pb::RuleMode::Warn => Mode::Warn,
        pb::RuleMode::Block => Mode::Block,
        _ => Mode::Off,
    }
}

/// From the org's snapshot (validated by the control plane; bad patterns are skipped).
pub fn rules_from_pb(r: &pb::Rules) -> Rules {
    let pats = |ps: &[pb::PackagePattern]| {
        ps.iter()
            .filter_map(|p| Pattern::parse(&p.name, Some(&p.range)).ok())
            .collect()
    };
    Rules {
        lists: mode(r.lists),
        allow: pats(&r.allow),
        deny: pats(&r.deny),
        allow_list_only: r.allow_list_only,
        cooldown: mode(r.cooldown),
        cooldown_hours: r.cooldown_hours,
        first_seen: mode(r.first_seen),
        first_seen_days: r.first_seen_days,
        install_scripts: mode(r.install_scripts),
        unexpected_dependencies: mode(r.unexpected_dependencies),
        publisher_change: mode(r.publisher_change),
        deprecated: mode(r.deprecated),
        license: mode(r.license),
        licenses: r.licenses.clone(),
        vulnerabilities: mode(r.vulnerabilities),
        min_severity: Severity::parse(&r.min_severity),
    }
}
