//! OSV advisories (the format `nproxyctl advisories import` reads): which versions of an npm
//! package they affect, and how severe they are. Pure.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Moderate,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "moderate" | "medium" => Some(Severity::Moderate),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn from_score(score: f64) -> Option<Severity> {
        match score {
            s if s >= 9.0 => Some(Severity::Critical),
            s if s >= 7.0 => Some(Severity::High),
            s if s >= 4.0 => Some(Severity::Moderate),
            s if s > 0.0 => Some(Severity::Low),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Moderate => "moderate",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Introduced(semver::Version),
    Fixed(semver::Version),
    LastAffected(semver::Version),
}

/// One advisory, reduced to what deciding about one npm package needs.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub summary: String,
    pub severity: Option<Severity>,
    /// OSV ids starting `MAL-` are malware: always blocked.
    pub malware: bool,
    pub cwe: Vec<String>,
    affected: Vec<Affected>,
}

#[derive(Debug, Clone)]
struct Affected {
    package: String,
    ranges: Vec<Vec<Event>>,
    versions: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("not an OSV advisory: {0}")]
pub struct OsvError(String);

#[derive(Deserialize)]
struct RawOsv {
    id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Value>,
}

fn version(s: &str) -> Option<semver::Version> {
    if s == "0" {
        return Some(semver::Version::new(0, 0, 0));
    }
    semver::Version::parse(s).ok()
}

impl Advisory {
    pub fn parse(json: &[u8]) -> Result<Advisory, OsvError> {
        let raw: RawOsv = serde_json::from_slice(json).map_err(|e| OsvError(e.to_string()))?;
        if raw.id.is_empty() || raw.id.len() > 200 {
            return Err(OsvError("missing or overlong id".into()));
        }
        let named = raw
            .database_specific
            .as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(Value::as_str)
            .and_then(Severity::parse);
        let scored = raw.severity.iter().find_map(|s| {
            let score = s.score.parse::<f64>().ok().or_else(|| {
                (s.kind.starts_with("CVSS_V3"))
                    .then(|| cvss3_base_score(&s.score))
                    .flatten()
            })?;
            Severity::from_score(score)
        });
        let cwe = raw
            .database_specific
            .as_ref()
            .and_then(|d| d.get("cwe_ids"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let affected = raw
            .affected
            .into_iter()
            .filter_map(|a| {
                let p = a.package?;
                if !p.ecosystem.eq_ignore_ascii_case("npm") {
                    return None;
                }
                let ranges = a
                    .ranges
                    .into_iter()
                    .filter(|r| r.kind == "SEMVER" || r.kind == "ECOSYSTEM")
                    .map(|r| {
                        r.events
                            .iter()
                            .filter_map(|e| {
                                let o = e.as_object()?;
                                if let Some(v) = o.get("introduced").and_then(Value::as_str) {
                                    return version(v).map(Event::Introduced);
                                }
                                if let Some(v) = o.get("fixed").and_then(Value::as_str) {
                                    return version(v).map(Event::Fixed);
                                }
                                o.get("last_affected")
                                    .and_then(Value::as_str)
                                    .and_then(version)
                                    .map(Event::LastAffected)
                            })
                            .collect()
                    })
                    .collect();
                Some(Affected {
                    package: p.name,
                    ranges,
                    versions: a.versions,
                })
            })
            .collect();
        Ok(Advisory {
            malware: raw.id.starts_with("MAL-"),
            severity: named.or(scored),
            id: raw.id,
            summary: raw.summary,
            cwe,
            affected,
        })
    }

    /// The affected versions of `package` as an npm semver range (what `npm audit` reads
    /// from `vulnerable_versions`).
    pub fn vulnerable_range(&self, package: &str) -> String {
        let mut parts = Vec::new();
        for a in self.affected.iter().filter(|a| a.package == package) {
            for r in &a.ranges {
                let mut lower: Option<&semver::Version> = None;
                for e in r {
                    match e {
                        Event::Introduced(v) => lower = Some(v),
                        Event::Fixed(v) | Event::LastAffected(v) => {
                            let op = if matches!(e, Event::Fixed(_)) {
                                "<"
                            } else {
                                "<="
                            };
                            let lo = lower
                                .filter(|l| **l != semver::Version::new(0, 0, 0))
                                .map(|l| format!(">={l} "))
                                .unwrap_or_default();
                            parts.push(format!("{lo}{op}{v}"));
                            lower = None;
                        }
                    }
                }
                if let Some(l) = lower {
                    parts.push(format!(">={l}"));
                }
            }
            parts.extend(a.versions.iter().cloned());
        }
        if parts.is_empty() {
            "*".into()
        } else {
            parts.join(" || ")
        }
    }

    /// A stable number for npm's `id` field (npm's bulk format uses numeric ids).
    pub fn numeric_id(&self) -> u64 {
        use sha2::Digest;
        let h = sha2::Sha256::digest(self.id.as_bytes());
        u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], 0, 0]) >> 16
    }

    /// npm package names this advisory is about.
    pub fn packages(&self) -> impl Iterator<Item = &str> {
        self.affected.iter().map(|a| a.package.as_str())
    }

    /// Whether `version` of `package` is affected.
    pub fn affects(&self, package: &str, version: &str) -> bool {
        let parsed = semver::Version::parse(version).ok();
        self.affected
            .iter()
            .filter(|a| a.package == package)
            .any(|a| {
                a.versions.iter().any(|v| v == version)
                    || parsed
                        .as_ref()
                        .is_some_and(|v| a.ranges.iter().any(|r| in_range(r, v)))
            })
    }
}

/// OSV range semantics: events sorted by version; a version is affected after an
/// `introduced` until a `fixed` (exclusive) or `last_affected` (inclusive).
fn in_range(events: &[Event], v: &semver::Version) -> bool {
    let key = |e: &Event| match e {
        Event::Introduced(x) | Event::Fixed(x) | Event::LastAffected(x) => x.clone(),
    };
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| key(e));
    let mut affected = false;
    for e in sorted {
        match e {
            Event::Introduced(x) if v >= x => affected = true,
            Event::Fixed(x) if v >= x => affected = false,
            Event::LastAffected(x) if v > x => affected = false,
            _ => {}
        }
    }
    affected
}

/// CVSS v3.x base score from a vector such as `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`.
pub fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut m = std::collections::HashMap::new();
    for part in vector.split('/').skip(1) {
        let (k, v) = part.split_once(':')?;
        m.insert(k, v);
    }
    let changed = *m.get("S")? == "C";
    let av = match *m.get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match *m.get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (*m.get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match *m.get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |k: &str| -> Option<f64> {
        match *m.get(k)? {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        }
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    if impact <= 0.0 {
        return Some(0.0);
    }
    let exploitability = 8.22 * av * ac * pr * ui;
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    // CVSS "round up" to one decimal.
    Some((raw * 10.0 - 1e-9).ceil() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn adv(v: Value) -> Advisory {
        Advisory::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn ranges_and_versions() {
        let a = adv(json!({
            "id": "GHSA-1", "summary": "bad",
            "affected": [{"package": {"ecosystem": "npm", "name": "fx-a"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.1.0"}, {"fixed": "2.0.0"}]}],
                          "versions": ["0.9.0"]}],
            "database_specific": {"severity": "HIGH", "cwe_ids": ["CWE-79"]}
        }));
        assert!(a.affects("fx-a", "1.1.0"));
        assert!(a.affects("fx-a", "1.9.9"));
        assert!(!a.affects("fx-a", "2.0.0"));
        assert!(!a.affects("fx-a", "1.0.0"));
        assert!(a.affects("fx-a", "0.9.0"), "explicit versions count");
        assert!(!a.affects("fx-b", "1.5.0"));
        assert_eq!(a.severity, Some(Severity::High));
        assert_eq!(a.cwe, vec!["CWE-79"]);
        assert!(!a.malware);
        let last = adv(
            json!({"id": "X", "affected": [{"package": {"ecosystem": "npm", "name": "p"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "1.2.3"}]}]}]}),
        );
        assert!(last.affects("p", "1.2.3"));
        assert!(!last.affects("p", "1.2.4"));
        assert!(last.affects("p", "0.0.1"));
    }

    #[test]
    fn npm_ranges() {
        let a = adv(
            json!({"id": "G", "affected": [{"package": {"ecosystem": "npm", "name": "p"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}, {"introduced": "2.0.0"}, {"last_affected": "2.1.0"}]}],
            "versions": ["3.0.0"]}]}),
        );
        let r = a.vulnerable_range("p");
        assert_eq!(r, "<1.2.0 || >=2.0.0 <=2.1.0 || 3.0.0");
        let req = |s: &str| {
            s.split(" || ").any(|part| {
                semver::VersionReq::parse(&part.replace(' ', ", "))
                    .unwrap()
                    .matches(&semver::Version::parse("2.0.5").unwrap())
            })
        };
        assert!(req(&r));
    }

    #[test]
    fn malware_and_cvss() {
        let m = adv(json!({"id": "MAL-2024-1", "affected": []}));
        assert!(m.malware);
        assert_eq!(
            cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Some(9.8)
        );
        assert_eq!(
            cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"),
            Some(6.1)
        );
        assert_eq!(
            cvss3_base_score("CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N"),
            Some(0.0)
        );
        let scored = adv(
            json!({"id": "S", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"}]}),
        );
        assert_eq!(scored.severity, Some(Severity::Moderate));
        assert!(Advisory::parse(b"{\"summary\": \"no id\"}").is_err());
    }
}
