//! `npm audit` through nproxy: `POST /-/npm/v1/security/advisories/bulk` answered from the
//! imported advisories, merged with the upstream's answer. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::osv::{Advisory, Severity};

/// npm's request: package name → installed versions.
pub type BulkRequest = BTreeMap<String, Vec<String>>;

/// Most packages in one audit request (npm sends one entry per installed name: a large
/// monorepo has a few thousand).
pub const MAX_NAMES: usize = 20_000;
/// Most versions of one package in one request.
pub const MAX_VERSIONS: usize = 256;
/// Longest name or version string accepted.
const MAX_STRING: usize = 1024;

/// Parses a bulk request, stopping at the first bound crossed (the work done before a
/// refusal is bounded too: parsing never runs past `max_names` entries).
pub fn parse_request(json: &[u8], max_names: usize) -> Result<BulkRequest, String> {
    use serde::de::{Deserializer, Error, MapAccess, SeqAccess, Visitor};
    struct Versions;
    impl<'de> Visitor<'de> for Versions {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of versions")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<String>()? {
                if out.len() == MAX_VERSIONS || v.len() > MAX_STRING {
                    return Err(A::Error::custom(format!(
                        "at most {MAX_VERSIONS} versions of {MAX_STRING} characters per package"
                    )));
                }
                out.push(v);
            }
            Ok(out)
        }
    }
    struct VersionsSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for VersionsSeed {
        type Value = Vec<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
            d.deserialize_seq(Versions)
        }
    }
    struct Names(usize);
    impl<'de> Visitor<'de> for Names {
        type Value = BulkRequest;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("{\"package\": [versions]}")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BulkRequest, A::Error> {
            let mut out = BulkRequest::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.len() == self.0 || name.len() > MAX_STRING {
                    return Err(A::Error::custom(format!(
                        "at most {} packages per audit request",
                        self.0
                    )));
                }
                let versions = map.next_value_seed(VersionsSeed)?;
                out.insert(name, versions);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let req = (&mut de)
        .deserialize_map(Names(max_names))
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(req)
}

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
    fn requests_are_bounded_while_parsed() {
        let ok = parse_request(br#"{"a": ["1.0.0"], "@s/b": []}"#, 10).unwrap();
        assert_eq!(ok.len(), 2);
        let many: String = (0..11)
            .map(|i| format!("\"p{i}\": [\"1.0.0\"]"))
            .collect::<Vec<_>>()
            .join(",");
        let e = parse_request(format!("{{{many}}}").as_bytes(), 10).unwrap_err();
        assert!(e.contains("at most 10 packages"), "{e}");
        let versions: String = (0..300)
            .map(|i| format!("\"1.0.{i}\""))
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_request(format!("{{\"a\": [{versions}]}}").as_bytes(), 10).is_err());
        assert!(parse_request(b"[]", 10).is_err());
        assert!(parse_request(br#"{"a": ["1"]} trailing"#, 10).is_err());
    }

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
