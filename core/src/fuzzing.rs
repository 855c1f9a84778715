//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`), kept here so the committed
//! corpora replay as ordinary tests (`core/tests/fuzz_corpora.rs`) on the stable toolchain.
//! Each takes arbitrary bytes and must neither panic nor loop; where a property is cheap
//! to state, it is asserted (a panic is a finding).

use std::collections::HashSet;

use crate::names::{PackageName, TarballFile};
use crate::packument::{self, Packument};
use crate::rules::{Mode, Rules};

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Request routing and name parsing: any path routes or is refused; what routes to a
/// package names a valid package, and a forwarded URL is rebuilt without dot segments.
pub fn route(data: &[u8]) {
    let path = text(data);
    if let Ok(r) = crate::route::route(path) {
        if let Some(up) = r.upstream_path() {
            assert!(up.starts_with('/'), "{up}");
            for seg in up.split('?').next().unwrap_or("").split('/') {
                assert!(seg != ".." && seg != ".", "dot segment in {up}");
                assert!(!seg.contains('\\'), "backslash in {up}");
            }
        }
    }
    if let Ok(n) = PackageName::parse(path) {
        let key = n.key_path();
        assert_eq!(key, key.to_lowercase(), "keys are case-free");
        assert!(!key.split('/').any(|s| s == ".." || s == "."), "{key}");
        let _ = n.check_new();
        if let Some((_, file)) = path.split_once(' ') {
            let _ = TarballFile::parse(&n, file);
        }
    }
    let _ = crate::route::split_org_prefix(path);
}

/// Publish payload validation, gzip bodies included: never a panic, and what passes keeps
/// its bounds.
pub fn publish(data: &[u8]) {
    let name = match PackageName::parse("@acme/utils") {
        Ok(n) => n,
        Err(_) => return,
    };
    let (encoding, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => (Some("gzip"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let Ok(json) = crate::publish::decode_body_limited(body, encoding, 4 * 1024 * 1024) else {
        return;
    };
    if let Ok(p) = crate::publish::validate(&name, &json) {
        assert!(
            p.readme
                .as_ref()
                .and_then(|r| r.as_str())
                .map_or(0, str::len)
                <= crate::doc_bounds::MAX_README_BYTES
        );
        assert!(!p.dist_tags.is_empty());
    }
}

/// Judging npm's whole-document PUTs against a stored document, and the other document
/// operations: refused or applied, never a panic; an applied document stays parseable.
pub fn document(data: &[u8]) {
    let current = serde_json::json!({
        "_id": "@acme/utils", "name": "@acme/utils", "_rev": "2-abc",
        "dist-tags": {"latest": "1.0.1"},
        "versions": {
            "1.0.0": {"name": "@acme/utils", "version": "1.0.0", "dist": {"integrity": "sha512-a", "tarball": ""}},
            "1.0.1": {"name": "@acme/utils", "version": "1.0.1", "dist": {"integrity": "sha512-b", "tarball": ""}}
        },
        "time": {"created": "2024-01-01T00:00:00.000Z", "1.0.0": "2024-01-01T00:00:00.000Z", "1.0.1": "2024-01-02T00:00:00.000Z"}
    });
    if let Ok(sent) = crate::doc_bounds::parse_document(data, crate::doc_bounds::MAX_VERSIONS) {
        let sent = serde_json::Value::Object(sent);
        if let Ok((doc, _, _)) =
            crate::internal::apply_client_document(&current, &sent, "2024-02-01T00:00:00.000Z")
        {
            assert!(Packument::from_value(&doc).is_ok());
        }
    }
    let t = text(data);
    let _ = crate::internal::set_dist_tag(&current, t, "1.0.0");
    let _ = crate::internal::remove_dist_tag(&current, t);
    let _ = crate::internal::tombstone(&current, t);
}

/// Packument transforms on upstream documents: parse, merge with a held copy, abbreviate,
/// rewrite tarball URLs, index tarballs.
pub fn packument(data: &[u8]) {
    let Ok(up) = Packument::parse(data) else {
        return;
    };
    let name = PackageName::parse("fx-a").unwrap_or_else(|_| unreachable!("a valid name"));
    let held = Packument::parse(br#"{"name":"fx-a","versions":{"0.0.1":{"dist":{"tarball":"x","integrity":"sha512-a"}}},"time":{"0.0.1":"2020-01-01T00:00:00.000Z"}}"#).ok();
    if let Some(mut merged) = packument::merge(held, Some(up.clone()), |v| v == "0.0.1") {
        packument::rewrite_tarballs(&mut merged, "http://np.example/org", &name);
        let bytes = merged.to_vec();
        assert!(
            Packument::parse(&bytes).is_ok(),
            "a merged document must reparse"
        );
        let abbreviated = packument::abbreviate(&merged);
        assert!(Packument::parse(&abbreviated.to_vec()).is_ok());
        let _ = packument::tarball_index(&name, &merged);
    }
    let _ = up.times();
}

/// OSV parsing and rules evaluation over an arbitrary document and advisory.
pub fn rules(data: &[u8]) {
    let (adv, doc) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let advisories: Vec<_> = crate::osv::Advisory::parse(adv).into_iter().collect();
    for a in &advisories {
        let _ = a.numeric_id();
        let _ = a.vulnerable_range("fx-a");
        let _ = a.affects("fx-a", "1.0.0");
    }
    let Ok(doc) = Packument::parse(doc) else {
        return;
    };
    let name = PackageName::parse("fx-a").unwrap_or_else(|_| unreachable!("a valid name"));
    let all = Rules {
        lists: Mode::Block,
        cooldown: Mode::Block,
        cooldown_hours: 24,
        first_seen: Mode::Warn,
        first_seen_days: 7,
        install_scripts: Mode::Block,
        unexpected_dependencies: Mode::Warn,
        publisher_change: Mode::Warn,
        deprecated: Mode::Block,
        license: Mode::Block,
        licenses: vec!["MIT".into()],
        vulnerabilities: Mode::Block,
        ..Rules::default()
    };
    let v = crate::rules::evaluate(
        &name,
        &doc,
        &all,
        &advisories,
        &HashSet::new(),
        1_700_000_000_000,
    );
    for b in &v.blocked {
        assert!(
            doc.has_version(b),
            "blocked a version the document lacks: {b}"
        );
    }
    let _ = crate::rules::all_blocked(&doc, &v);
    let _ = crate::osv::cvss3_base_score(text(data));
    let _ = crate::rules::license_allowed(text(data), &["MIT".into()]);
}

/// `npm audit` bulk requests: bounded parse.
pub fn audit(data: &[u8]) {
    if let Ok(req) = crate::audit_bulk::parse_request(data, 1000) {
        assert!(req.len() <= 1000);
    }
}
