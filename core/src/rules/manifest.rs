//! The rules that read one version's own manifest: `install-scripts`, `deprecated` and
//! `license` (with `license_allowed`, the SPDX expression check).

use serde_json::Value;

use super::config::{Mode, Rule, Rules};
use super::facts::Facts;
use super::verdict::Finding;

/// `install-scripts`: the version runs a `preinstall`, `install` or `postinstall` hook.
pub(super) fn install_scripts(rules: &Rules, f: &Facts) -> Option<Finding> {
    if rules.install_scripts == Mode::Off {
        return None;
    }
    let hooks: Vec<&str> = ["preinstall", "install", "postinstall"]
        .into_iter()
        .filter(|h| f.scripts.as_ref().is_some_and(|s| s.contains_key(*h)))
        .collect();
    (!hooks.is_empty()).then(|| Finding {
        rule: Rule::InstallScripts,
        mode: rules.install_scripts,
        reason: format!("runs install scripts: {}", hooks.join(", ")),
    })
}

/// `deprecated`: the version carries a (non-empty) deprecation message.
pub(super) fn deprecated(rules: &Rules, f: &Facts) -> Option<Finding> {
    if rules.deprecated == Mode::Off {
        return None;
    }
    match &f.deprecated {
        Some(Value::String(d)) if !d.is_empty() => Some(Finding {
            rule: Rule::Deprecated,
            mode: rules.deprecated,
            reason: format!("deprecated: {d}"),
        }),
        _ => None,
    }
}

/// `license`: the version declares no license, or none the org allows.
pub(super) fn license(rules: &Rules, f: &Facts) -> Option<Finding> {
    if rules.license == Mode::Off {
        return None;
    }
    let ls = licenses_of(f);
    let reason = if ls.is_empty() {
        "has no license".into()
    } else if !ls.iter().any(|l| license_allowed(l, &rules.licenses)) {
        format!("license {} is not allowed", ls.join(", "))
    } else {
        return None;
    };
    Some(Finding {
        rule: Rule::License,
        mode: rules.license,
        reason,
    })
}

/// The licenses a manifest declares: `license` (an SPDX string or an old `{type}` object)
/// and the old `licenses` array.
fn licenses_of(f: &Facts) -> Vec<String> {
    let from = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("type").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    };
    let mut out: Vec<String> = f.license.as_ref().and_then(from).into_iter().collect();
    if let Some(Value::Array(a)) = &f.licenses {
        out.extend(a.iter().filter_map(from));
    }
    out
}

/// Whether an SPDX expression is satisfied by the allowed identifiers: any `OR` branch
/// whose `AND` parts are all allowed.
pub fn license_allowed(expr: &str, allowed: &[String]) -> bool {
    let cleaned = expr.replace(['(', ')'], " ");
    cleaned.split(" OR ").any(|branch| {
        let parts: Vec<&str> = branch
            .split(" AND ")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        !parts.is_empty()
            && parts.iter().all(|p| {
                let id = p.split(" WITH ").next().unwrap_or(p).trim();
                allowed.iter().any(|a| a.eq_ignore_ascii_case(id))
            })
    })
}
