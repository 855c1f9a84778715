//! `npm audit` through nproxy: `POST /-/npm/v1/security/advisories/bulk` answered from the
//! imported advisories, merged with the upstream's answer. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::osv::{Advisory, Severity};

/// npm's request: package name → installed versions.
pub type BulkRequest = BTreeMap<String, Vec<String>>;

/// Our entries for one package: advisories that affect any of the given versions.
pub fn entries(package: &str, versions: &[String], advisories: &[Advisory]) -> Vec<Value> {
    advisories
        .iter()
        .filter(|a| versions.iter().any(|v| a.affects(package, v)))
        .map(|a| {
            let severity = if a.malware {
                "critical"
            } else {
                a.severity.map(Severity::label).unwrap_or("moderate")
            };
            json!({
                "id": a.numeric_id(),
                "url": format!("https://osv.dev/vulnerability/{}", a.id),
                "title": if a.summary.is_empty() { a.id.clone() } else { format!("{} ({})", a.summary, a.id) },
                "severity": severity,
                "vulnerable_versions": a.vulnerable_range(package),
                "cwe": a.cwe,
                "cvss": {"score": 0, "vectorString": null},
            })
        })
        .collect()
}

/// Merges the upstream's answer (if any) with ours; entries with the same `url` once.
pub fn merge(ours: Map<String, Value>, upstream: Option<Value>) -> Value {
    let mut out: Map<String, Value> = match upstream {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (pkg, list) in ours {
        let Value::Array(list) = list else { continue };
        let slot = out.entry(pkg).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(existing) = slot {
            for e in list {
                let dup = existing
                    .iter()
                    .any(|x| x.get("url").is_some() && x.get("url") == e.get("url"));
                if !dup {
                    existing.push(e);
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_merge() {
        let a = Advisory::parse(
            json!({"id": "GHSA-1", "summary": "proto pollution",
                   "affected": [{"package": {"ecosystem": "npm", "name": "p"},
                                 "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.1.0"}]}]}],
                   "database_specific": {"severity": "HIGH"}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(entries("p", &["1.1.0".into()], std::slice::from_ref(&a)).is_empty());
        let e = entries("p", &["1.0.0".into(), "1.1.0".into()], &[a]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["severity"], "high");
        assert_eq!(e[0]["vulnerable_versions"], "<1.1.0");
        let mut ours = Map::new();
        ours.insert("p".into(), Value::Array(e.clone()));
        let upstream = json!({"p": [e[0].clone()], "q": [{"url": "u", "id": 1}]});
        let merged = merge(ours, Some(upstream));
        assert_eq!(
            merged["p"].as_array().unwrap().len(),
            1,
            "deduplicated by url"
        );
        assert_eq!(merged["q"][0]["id"], 1);
    }
}
