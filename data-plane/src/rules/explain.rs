//! `GET /-/nproxy/explain/<name>`: what an org's rules say about a package, version by
//! version, as JSON for people and dashboards. Pure: the server authorizes and fetches the
//! verdict, this shapes the answer.

use serde_json::{json, Map, Value};

use crate::rules::verdicts::{Policy, PolicyVerdict};
use nproxy_core::names::PackageName;

/// The answer for an internal package: the org's own, so no rule applies to it.
pub fn internal(name: &PackageName) -> Value {
    json!({
        "package": name.as_str(), "internal": true, "blocked": [], "warned": [],
        "all_blocked": false, "findings": {}, "excepted": [], "recheck_at_ms": null,
    })
}

/// The answer for a public package under the org's rules.
pub fn public(name: &PackageName, v: &PolicyVerdict, policy: &Policy) -> Value {
    let findings: Map<String, Value> = v
        .verdict
        .findings
        .iter()
        .map(|(version, fs)| {
            let list = fs
                .iter()
                .map(|f| {
                    json!({
                        "rule": f.rule.label(),
                        "mode": format!("{:?}", f.mode).to_lowercase(),
                        "reason": f.reason,
                    })
                })
                .collect();
            (version.clone(), Value::Array(list))
        })
        .collect();
    json!({
        "package": name.as_str(),
        "blocked": v.verdict.blocked,
        "warned": v.verdict.warned,
        "all_blocked": v.all_blocked,
        "findings": findings,
        "excepted": policy.exceptions.iter().collect::<Vec<_>>(),
        "recheck_at_ms": v.verdict.recheck_at_ms,
    })
}
