//! Tests of `evaluate`, rule by rule, on small documents, and of `parse_iso_ms`.

use std::collections::{BTreeSet, HashSet};

use serde_json::{json, Value};

use super::*;
use crate::internal::iso_from_ms;
use crate::names::PackageName;
use crate::osv::{Advisory, Severity};
use crate::packument::Packument;

/// The fuzzer's find: absurd years (and other out-of-range fields) are not times.
#[test]
fn iso_times_out_of_range_are_refused() {
    assert_eq!(
        parse_iso_ms("2021-01-0000000000000000000000000000000000006744073709551614T00:00:00.00"),
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

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_700_000_000_000;

fn iso(ms: i64) -> String {
    iso_from_ms(ms)
}

fn pkg(versions: &[(&str, i64, Value)], created: i64) -> (PackageName, Packument<'static>) {
    let mut vs = serde_json::Map::new();
    let mut time = serde_json::Map::new();
    time.insert("created".into(), json!(iso(created)));
    for (v, t, extra) in versions {
        let mut m =
            json!({"name": "p", "version": v, "license": "MIT", "dist": {"integrity": "sha512-x"}});
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

fn run(doc: &(PackageName, Packument<'_>), rules: &Rules) -> Verdict {
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
