//! Security rules on public packages: which versions of a package an org's rules flag, and
//! what remains of the document once blocked versions are removed. Pure: the packument, the
//! rules, the package's advisories, the org's exceptions and the time in; a verdict out.
//!
//! A verdict depends on time only through the cooldown and first-seen rules; it says when it
//! expires (`recheck_at_ms`), so a held-back version appears by itself once old enough.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::internal::iso_from_ms;
use crate::names::PackageName;
use crate::osv::{Advisory, Severity};
use crate::packument::Packument;

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

/// A package name pattern: an exact name or a whole scope (`@types/*`), with an optional
/// semver range of versions.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub name: String,
    pub range: Option<semver::VersionReq>,
}

impl Pattern {
    pub fn parse(name: &str, range: Option<&str>) -> Result<Pattern, String> {
        let ok = match name.strip_suffix("/*") {
            Some(scope) => {
                scope.starts_with('@') && PackageName::parse(&format!("{scope}/x")).is_ok()
            }
            None => PackageName::parse(name).is_ok(),
        };
        if !ok {
            return Err(format!(
                "{name:?} is neither a package name nor a scope like @types/*"
            ));
        }
        let range = range
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                semver::VersionReq::parse(r)
                    .map_err(|e| format!("{r:?} is not a semver range: {e}"))
            })
            .transpose()?;
        Ok(Pattern {
            name: name.to_string(),
            range,
        })
    }

    fn matches_name(&self, name: &PackageName) -> bool {
        match self.name.strip_suffix("/*") {
            Some(scope) => name.scope() == Some(scope),
            None => self.name == name.as_str(),
        }
    }

    fn matches(&self, name: &PackageName, version: &str) -> bool {
        self.matches_name(name)
            && self
                .range
                .as_ref()
                .is_none_or(|r| semver::Version::parse(version).is_ok_and(|v| r.matches(&v)))
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
        let mut out: Vec<Rule> = self
            .findings
            .get(version)
            .map(|f| {
                f.iter()
                    .filter(|f| f.mode == Mode::Block)
                    .map(|f| f.rule)
                    .collect()
            })
            .unwrap_or_default();
        out.dedup();
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

#[derive(Deserialize, Default)]
struct Facts {
    #[serde(default)]
    scripts: Option<HashMap<String, IgnoredAny>>,
    #[serde(default)]
    dependencies: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(rename = "_npmUser", default)]
    npm_user: Option<NpmUser>,
    #[serde(default)]
    license: Option<Value>,
    #[serde(default)]
    licenses: Option<Value>,
    #[serde(default)]
    deprecated: Option<Value>,
}

#[derive(Deserialize, Default)]
struct NpmUser {
    name: Option<String>,
}

/// Unix ms of `2020-01-01T00:00:00.000Z`-style timestamps.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    // Found by fuzzing: an upstream `time` of year 10^30 overflowed the arithmetic below
    // (a panic in checked builds, nonsense times otherwise). Only real calendar values pass.
    let in_range = (1..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..=23).contains(&hh)
        && (0..=59).contains(&mm)
        && (0..=60).contains(&ss);
    if !in_range || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // days_from_civil
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + millis)
}

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

/// Evaluates every rule on every version of a public package.
pub fn evaluate(
    name: &PackageName,
    doc: &Packument,
    rules: &Rules,
    advisories: &[Advisory],
    exceptions: &HashSet<String>,
    now_ms: i64,
) -> Verdict {
    let mut v = Verdict::default();
    let times = doc.times();
    let versions: Vec<String> = doc.version_keys().cloned().collect();
    let facts: HashMap<&str, Facts> = versions
        .iter()
        .map(|ver| {
            (
                ver.as_str(),
                doc.version_as::<Facts>(ver).unwrap_or_default(),
            )
        })
        .collect();
    let published = |ver: &str| times.get(ver).and_then(|t| parse_iso_ms(t));
    let mut add = |ver: &str, rule: Rule, mode: Mode, reason: String| {
        if mode != Mode::Off {
            v.findings
                .entry(ver.to_string())
                .or_default()
                .push(Finding { rule, mode, reason });
        }
    };
    let mut recheck: Option<i64> = None;

    // Oldest first (by publish time; unknown times sort first, then by semver).
    let mut by_time: Vec<&String> = versions.iter().collect();
    by_time.sort_by_key(|ver| {
        (
            published(ver).unwrap_or(0),
            semver::Version::parse(ver).ok(),
        )
    });

    for ver in &versions {
        let f = &facts[ver.as_str()];
        if rules.deny.iter().any(|p| p.matches(name, ver)) {
            add(
                ver,
                Rule::DenyList,
                rules.lists,
                format!("{name}@{ver} is on the deny list"),
            );
        }
        if rules.allow_list_only && !rules.allow.iter().any(|p| p.matches(name, ver)) {
            add(
                ver,
                Rule::AllowList,
                rules.lists,
                format!("{name}@{ver} is not on the allow list"),
            );
        }
        if rules.cooldown != Mode::Off {
            if let Some(t) = published(ver) {
                let until = t + i64::from(rules.cooldown_hours) * 3_600_000;
                if until > now_ms {
                    add(
                        ver,
                        Rule::Cooldown,
                        rules.cooldown,
                        format!(
                            "published {}, less than {} hours ago (held until {})",
                            iso_from_ms(t),
                            rules.cooldown_hours,
                            iso_from_ms(until)
                        ),
                    );
                    recheck = Some(recheck.map_or(until, |r| r.min(until)));
                }
            }
        }
        if rules.install_scripts != Mode::Off {
            let hooks: Vec<&str> = ["preinstall", "install", "postinstall"]
                .into_iter()
                .filter(|h| f.scripts.as_ref().is_some_and(|s| s.contains_key(*h)))
                .collect();
            if !hooks.is_empty() {
                add(
                    ver,
                    Rule::InstallScripts,
                    rules.install_scripts,
                    format!("runs install scripts: {}", hooks.join(", ")),
                );
            }
        }
        if rules.deprecated != Mode::Off {
            if let Some(Value::String(d)) = &f.deprecated {
                if !d.is_empty() {
                    add(
                        ver,
                        Rule::Deprecated,
                        rules.deprecated,
                        format!("deprecated: {d}"),
                    );
                }
            }
        }
        if rules.license != Mode::Off {
            let ls = licenses_of(f);
            if ls.is_empty() {
                add(ver, Rule::License, rules.license, "has no license".into());
            } else if !ls.iter().any(|l| license_allowed(l, &rules.licenses)) {
                add(
                    ver,
                    Rule::License,
                    rules.license,
                    format!("license {} is not allowed", ls.join(", ")),
                );
            }
        }
        for a in advisories.iter().filter(|a| a.affects(name.as_str(), ver)) {
            if a.malware {
                // Malware is blocked whatever the vulnerability rule's mode.
                add(
                    ver,
                    Rule::Malware,
                    Mode::Block,
                    format!("malware: {} {}", a.id, a.summary),
                );
            } else if rules.vulnerabilities != Mode::Off
                && a.severity
                    .is_some_and(|s| rules.min_severity.is_none_or(|min| s >= min))
            {
                let sev = a.severity.map(Severity::label).unwrap_or("unknown");
                add(
                    ver,
                    Rule::Vulnerability,
                    rules.vulnerabilities,
                    format!("{} ({sev}): {}", a.id, a.summary),
                );
            }
        }
    }

    if rules.first_seen != Mode::Off {
        if let Some(created) = times.get("created").and_then(|t| parse_iso_ms(t)) {
            let until = created + i64::from(rules.first_seen_days) * 86_400_000;
            if until > now_ms {
                for ver in &versions {
                    add(
                        ver,
                        Rule::FirstSeen,
                        rules.first_seen,
                        format!(
                            "the package was created {}, less than {} days ago",
                            iso_from_ms(created),
                            rules.first_seen_days
                        ),
                    );
                }
                recheck = Some(recheck.map_or(until, |r| r.min(until)));
            }
        }
    }

    if rules.unexpected_dependencies != Mode::Off && by_time.len() >= 2 {
        let newest_start = by_time.len().saturating_sub(3).max(1);
        for i in newest_start..by_time.len() {
            let earlier: BTreeSet<&String> = by_time[..i]
                .iter()
                .flat_map(|ver| {
                    facts[ver.as_str()]
                        .dependencies
                        .iter()
                        .flat_map(|d| d.keys())
                })
                .collect();
            let ver = by_time[i];
            let new: Vec<&String> = facts[ver.as_str()]
                .dependencies
                .iter()
                .flat_map(|d| d.keys())
                .filter(|d| !earlier.contains(d))
                .collect();
            if !new.is_empty() {
                let names: Vec<&str> = new.iter().map(|s| s.as_str()).collect();
                add(
                    ver,
                    Rule::UnexpectedDependencies,
                    rules.unexpected_dependencies,
                    format!(
                        "adds dependencies no earlier version had: {}",
                        names.join(", ")
                    ),
                );
            }
        }
    }

    if rules.publisher_change != Mode::Off && by_time.len() >= 5 {
        let newest = by_time.len().div_ceil(5);
        let oldest = by_time.len() - newest;
        let publisher = |ver: &str| facts[ver].npm_user.as_ref().and_then(|u| u.name.clone());
        let known: HashSet<String> = by_time[..oldest]
            .iter()
            .filter_map(|v| publisher(v))
            .collect();
        for ver in &by_time[oldest..] {
            if let Some(p) = publisher(ver) {
                if !known.contains(&p) {
                    add(
                        ver,
                        Rule::PublisherChange,
                        rules.publisher_change,
                        format!("published by {p:?}, who published none of the older versions"),
                    );
                }
            }
        }
    }

    for (ver, fs) in &v.findings {
        let malware = fs.iter().any(|f| f.rule == Rule::Malware);
        // An explicit exception allows a version, except that malware stays blocked.
        if exceptions.contains(ver) && !malware {
            continue;
        }
        if fs.iter().any(|f| f.mode == Mode::Block) {
            v.blocked.insert(ver.clone());
        } else if fs.iter().any(|f| f.mode == Mode::Warn) {
            v.warned.insert(ver.clone());
        }
    }
    v.recheck_at_ms = recheck;
    v
}

/// Every version is blocked: the package itself must be refused (with these reasons).
pub fn all_blocked(doc: &Packument, v: &Verdict) -> bool {
    doc.has_versions() && doc.version_keys().all(|ver| v.blocked.contains(ver))
}

#[cfg(test)]
mod refusal_tests {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer's find: absurd years (and other out-of-range fields) are not times.
    #[test]
    fn iso_times_out_of_range_are_refused() {
        assert_eq!(
            parse_iso_ms(
                "2021-01-0000000000000000000000000000000000006744073709551614T00:00:00.00"
            ),
            None
        );
        assert_eq!(parse_iso_ms("99999999999999-01-01T00:00:00.000Z"), None);
        assert_eq!(parse_iso_ms("2021-13-01T00:00:00.000Z"), None);
        assert_eq!(parse_iso_ms("2021-01-01T24:00:00.000Z"), None);
        assert_eq!(parse_iso_ms("-5-01-01T00:00:00.000Z"), None);
        assert_eq!(parse_iso_ms("2021-01-01T00:00:00.x"), None);
        assert_eq!(parse_iso_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_iso_ms("2020-01-01T00:00:00.000Z"),
            Some(1_577_836_800_000)
        );
    }
    use serde_json::json;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_700_000_000_000;

    fn iso(ms: i64) -> String {
        iso_from_ms(ms)
    }

    fn pkg(versions: &[(&str, i64, Value)], created: i64) -> (PackageName, Packument) {
        let mut vs = serde_json::Map::new();
        let mut time = serde_json::Map::new();
        time.insert("created".into(), json!(iso(created)));
        for (v, t, extra) in versions {
            let mut m = json!({"name": "p", "version": v, "license": "MIT", "dist": {"integrity": "sha512-x"}});
            if let Value::Object(e) = extra {
                for (k, x) in e {
                    m[k] = x.clone();
                }
            }
            vs.insert(v.to_string(), m);
            time.insert(v.to_string(), json!(iso(*t)));
        }
        let doc = json!({"name": "p", "dist-tags": {"latest": versions.last().unwrap().0}, "versions": vs, "time": time});
        (
            PackageName::parse("p").unwrap(),
            Packument::from_value(&doc).unwrap(),
        )
    }

    fn run(doc: &(PackageName, Packument), rules: &Rules) -> Verdict {
        evaluate(&doc.0, &doc.1, rules, &[], &HashSet::new(), NOW)
    }

    #[test]
    fn iso_round_trip() {
        for ms in [0, 951_782_400_000, 1_700_000_000_123] {
            assert_eq!(parse_iso_ms(&iso(ms)), Some(ms));
        }
        assert_eq!(
            parse_iso_ms("2020-01-01T00:00:00Z"),
            Some(1_577_836_800_000)
        );
        assert_eq!(parse_iso_ms("garbage"), None);
    }

    #[test]
    fn cooldown_holds_back_new_versions_and_expires() {
        let d = pkg(
            &[
                ("1.0.0", NOW - 10 * DAY, json!({})),
                ("1.1.0", NOW - 3_600_000, json!({})),
            ],
            NOW - 100 * DAY,
        );
        let r = Rules {
            cooldown: Mode::Block,
            cooldown_hours: 24,
            ..Rules::default()
        };
        let v = run(&d, &r);
        assert_eq!(v.blocked, BTreeSet::from(["1.1.0".to_string()]));
        assert_eq!(v.recheck_at_ms, Some(NOW - 3_600_000 + 24 * 3_600_000));
        // Once old enough, it is allowed with no rule change.
        let later = evaluate(&d.0, &d.1, &r, &[], &HashSet::new(), NOW + DAY);
        assert!(later.blocked.is_empty());
        // Warn keeps it; off ignores it.
        let w = run(
            &d,
            &Rules {
                cooldown: Mode::Warn,
                ..r.clone()
            },
        );
        assert!(w.blocked.is_empty() && w.warned.contains("1.1.0"));
        assert!(run(
            &d,
            &Rules {
                cooldown: Mode::Off,
                ..r
            }
        )
        .findings
        .is_empty());
    }

    #[test]
    fn first_seen_flags_every_version_of_a_young_package() {
        let d = pkg(&[("1.0.0", NOW - DAY, json!({}))], NOW - 2 * DAY);
        let v = run(
            &d,
            &Rules {
                first_seen: Mode::Block,
                first_seen_days: 7,
                ..Rules::default()
            },
        );
        assert!(v.blocked.contains("1.0.0"));
        assert!(all_blocked(&d.1, &v));
        assert_eq!(v.recheck_at_ms, Some(NOW + 5 * DAY));
    }

    #[test]
    fn install_scripts_deprecated_license() {
        let d = pkg(
            &[
                ("1.0.0", NOW - 30 * DAY, json!({})),
                (
                    "1.1.0",
                    NOW - 20 * DAY,
                    json!({"scripts": {"postinstall": "node x", "test": "t"}}),
                ),
                ("1.2.0", NOW - 10 * DAY, json!({"deprecated": "use 2"})),
                ("1.3.0", NOW - 5 * DAY, json!({"license": "GPL-3.0-only"})),
                (
                    "1.4.0",
                    NOW - 4 * DAY,
                    json!({"license": "(MIT OR GPL-3.0-only)"}),
                ),
            ],
            NOW - 100 * DAY,
        );
        let v = run(
            &d,
            &Rules {
                install_scripts: Mode::Block,
                deprecated: Mode::Block,
                license: Mode::Block,
                licenses: vec!["MIT".into(), "ISC".into()],
                ..Rules::default()
            },
        );
        assert_eq!(
            v.blocked,
            BTreeSet::from(["1.1.0".into(), "1.2.0".into(), "1.3.0".into()])
        );
        assert!(v.findings["1.1.0"][0].reason.contains("postinstall"));
        assert_eq!(
            v.header(),
            "1.1.0=install-scripts; 1.2.0=deprecated; 1.3.0=license"
        );
        assert!(license_allowed("MIT", &["mit".into()]));
        assert!(license_allowed(
            "Apache-2.0 WITH LLVM-exception",
            &["Apache-2.0".into()]
        ));
        assert!(!license_allowed("MIT AND GPL-3.0", &["MIT".into()]));
    }

    #[test]
    fn unexpected_dependencies_in_the_newest_three() {
        let dep = |names: &[&str]| json!({"dependencies": names.iter().map(|n| (n.to_string(), json!("^1"))).collect::<serde_json::Map<_, _>>()});
        let d = pkg(
            &[
                ("1.0.0", NOW - 50 * DAY, dep(&["a"])),
                ("1.1.0", NOW - 40 * DAY, dep(&["a", "b"])),
                ("1.2.0", NOW - 30 * DAY, dep(&["a", "b"])),
                ("1.3.0", NOW - 20 * DAY, dep(&["a", "evil"])),
                ("1.4.0", NOW - 10 * DAY, dep(&["a", "evil"])),
            ],
            NOW - 100 * DAY,
        );
        let v = run(
            &d,
            &Rules {
                unexpected_dependencies: Mode::Block,
                ..Rules::default()
            },
        );
        // 1.1.0 added `b` but is not among the newest three; 1.4.0's `evil` came with 1.3.0.
        assert_eq!(v.blocked, BTreeSet::from(["1.3.0".to_string()]));
        assert!(v.findings["1.3.0"][0].reason.contains("evil"));
        let single = pkg(&[("1.0.0", NOW - DAY, dep(&["x"]))], NOW - 100 * DAY);
        assert!(run(
            &single,
            &Rules {
                unexpected_dependencies: Mode::Block,
                ..Rules::default()
            }
        )
        .blocked
        .is_empty());
    }

    #[test]
    fn publisher_change_in_the_newest_fifth() {
        let by = |u: &str| json!({"_npmUser": {"name": u}});
        let mut versions: Vec<(String, i64, Value)> = (0..8)
            .map(|i| (format!("1.0.{i}"), NOW - (20 - i) * DAY, by("alice")))
            .collect();
        versions.push(("1.0.8".into(), NOW - 5 * DAY, by("alice")));
        versions.push(("1.0.9".into(), NOW - DAY, by("mallory")));
        let refs: Vec<(&str, i64, Value)> = versions
            .iter()
            .map(|(v, t, e)| (v.as_str(), *t, e.clone()))
            .collect();
        let d = pkg(&refs, NOW - 100 * DAY);
        let v = run(
            &d,
            &Rules {
                publisher_change: Mode::Block,
                ..Rules::default()
            },
        );
        assert_eq!(v.blocked, BTreeSet::from(["1.0.9".to_string()]));
        let few = pkg(&refs[6..], NOW - 100 * DAY);
        assert!(
            run(
                &few,
                &Rules {
                    publisher_change: Mode::Block,
                    ..Rules::default()
                }
            )
            .blocked
            .is_empty(),
            "needs 5 versions"
        );
    }

    #[test]
    fn lists_and_allow_list_only() {
        let d = pkg(
            &[
                ("1.0.0", NOW - 10 * DAY, json!({})),
                ("2.0.0", NOW - 5 * DAY, json!({})),
            ],
            NOW - 100 * DAY,
        );
        let deny = Rules {
            lists: Mode::Block,
            deny: vec![Pattern::parse("p", Some(">=2")).unwrap()],
            ..Rules::default()
        };
        assert_eq!(
            run(&d, &deny).blocked,
            BTreeSet::from(["2.0.0".to_string()])
        );
        let only = Rules {
            lists: Mode::Block,
            allow_list_only: true,
            allow: vec![Pattern::parse("other", None).unwrap()],
            ..Rules::default()
        };
        let v = run(&d, &only);
        assert!(all_blocked(&d.1, &v));
        assert!(v.findings["1.0.0"][0]
            .reason
            .contains("not on the allow list"));
        let listed = Rules {
            allow: vec![Pattern::parse("p", None).unwrap()],
            ..only
        };
        assert!(run(&d, &listed).blocked.is_empty());
        let scope = Pattern::parse("@types/*", None).unwrap();
        assert!(scope.matches(&PackageName::parse("@types/node").unwrap(), "1.0.0"));
        assert!(!scope.matches(&PackageName::parse("@typesx/node").unwrap(), "1.0.0"));
        assert!(Pattern::parse("@types", None).is_err());
        assert!(Pattern::parse("p", Some("not a range")).is_err());
    }

    #[test]
    fn advisories_exceptions_and_malware() {
        let d = pkg(
            &[
                ("1.0.0", NOW - 10 * DAY, json!({})),
                ("1.1.0", NOW - 5 * DAY, json!({})),
            ],
            NOW - 100 * DAY,
        );
        let vuln = Advisory::parse(
            &serde_json::to_vec(&json!({
            "id": "GHSA-x", "summary": "xss",
            "affected": [{"package": {"ecosystem": "npm", "name": "p"}, "versions": ["1.1.0"]}],
            "database_specific": {"severity": "HIGH"}}))
            .unwrap(),
        )
        .unwrap();
        let mal = Advisory::parse(
            &serde_json::to_vec(&json!({
            "id": "MAL-1", "summary": "stealer",
            "affected": [{"package": {"ecosystem": "npm", "name": "p"}, "versions": ["1.0.0"]}]}))
            .unwrap(),
        )
        .unwrap();
        let r = Rules {
            vulnerabilities: Mode::Warn,
            min_severity: Some(Severity::High),
            ..Rules::default()
        };
        let v = evaluate(
            &d.0,
            &d.1,
            &r,
            &[vuln.clone(), mal.clone()],
            &HashSet::new(),
            NOW,
        );
        assert!(v.warned.contains("1.1.0"));
        assert!(
            v.blocked.contains("1.0.0"),
            "malware blocks even in warn mode"
        );
        let critical_only = Rules {
            min_severity: Some(Severity::Critical),
            ..r.clone()
        };
        let v = evaluate(
            &d.0,
            &d.1,
            &critical_only,
            std::slice::from_ref(&vuln),
            &HashSet::new(),
            NOW,
        );
        assert!(v.warned.is_empty(), "below the threshold");
        let block = Rules {
            vulnerabilities: Mode::Block,
            ..r
        };
        let exceptions = HashSet::from(["1.1.0".to_string(), "1.0.0".to_string()]);
        let v = evaluate(&d.0, &d.1, &block, &[vuln, mal], &exceptions, NOW);
        assert!(
            !v.blocked.contains("1.1.0"),
            "an exception allows the version"
        );
        assert!(v.blocked.contains("1.0.0"), "but never malware");
        let mut doc = d.1.clone();
        doc.remove_versions(&v.blocked);
        let after = doc.to_value();
        assert!(after["versions"].get("1.0.0").is_none());
        assert_eq!(after["dist-tags"]["latest"], "1.1.0");
    }
}
