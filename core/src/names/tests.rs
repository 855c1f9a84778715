//! Tests of name, tarball, key and org slug validation, hostile inputs included.

use super::*;

#[test]
fn accepts_ordinary_names() {
    for n in [
        "lodash",
        "left-pad",
        "a.b",
        "x_y",
        "@types/node",
        "@acme/utils",
    ] {
        let p = PackageName::parse(n).unwrap();
        assert_eq!(p.check_new(), Ok(()), "{n}");
    }
}

/// Names the public registry still serves, from npm's "valid for old packages" rules.
#[test]
fn accepts_legacy_names_for_reads_only() {
    for (n, new_err) in [
        ("JSONStream", NameError::Uppercase),
        ("Base64", NameError::Uppercase),
        ("CSSselect", NameError::Uppercase),
        ("Markdown", NameError::Uppercase),
        ("@Scope/Pkg", NameError::Uppercase),
        ("a~b", NameError::SpecialChar),
        ("ca$h".replace('$', "'").as_str(), NameError::SpecialChar),
        ("hello!", NameError::SpecialChar),
        ("(x)", NameError::SpecialChar),
        ("star*", NameError::SpecialChar),
        ("http", NameError::CoreModule("http".into())),
        ("fs", NameError::CoreModule("fs".into())),
        (&"a".repeat(215), NameError::TooLong(214)),
    ] {
        let p = PackageName::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(p.check_new(), Err(new_err), "{n}");
    }
    // A scoped core-module name is an ordinary new name.
    assert_eq!(
        PackageName::parse("@acme/http").unwrap().check_new(),
        Ok(())
    );
}

#[test]
fn rejects_hostile_names() {
    for n in [
        "",
        "..",
        ".",
        ".hidden",
        "_private",
        "a/b",
        "@scope",
        "@/x",
        "@scope/",
        "@scope/../x",
        "@scope/..",
        "@../x",
        "a b",
        " a",
        "a%2fb",
        "a\\b",
        "node_modules",
        "NODE_MODULES",
        "favicon.ico",
        "x\0",
        "@a/b/c",
        "a:b",
        "a?b",
        "a#b",
        "a\"b",
        "é",
    ] {
        assert!(PackageName::parse(n).is_err(), "{n:?} should be rejected");
    }
    assert_eq!(
        PackageName::parse(&"a".repeat(1025)),
        Err(NameError::TooLong(1024))
    );
}

#[test]
fn scoped_parts() {
    let n = PackageName::parse("@acme/utils").unwrap();
    assert_eq!(n.scope(), Some("@acme"));
    assert_eq!(n.unscoped(), "utils");
    assert_eq!(n.url_encoded(), "@acme%2futils");
    let n = PackageName::parse("lodash").unwrap();
    assert_eq!(n.scope(), None);
    assert_eq!(n.unscoped(), "lodash");
}

#[test]
fn key_segments_are_injective_and_case_free() {
    let names = [
        "JSONStream",
        "jsonstream",
        "JsonStream",
        "Base64",
        "base64",
        "a~b",
        "a'b",
        "a(b)",
        "a!b",
        "a*b",
        "a27b",
        "ab.",
        "@Scope/Pkg",
        "@scope/pkg",
        "@scope/Pkg",
    ];
    let mut seen = std::collections::HashMap::new();
    for n in names {
        let key = PackageName::parse(n).unwrap().key_path();
        // A case-insensitive file system lowercases in effect: still distinct.
        let folded = key.to_lowercase();
        assert_eq!(folded, key, "{n}: keys are lowercase already");
        if let Some(other) = seen.insert(folded.clone(), n) {
            panic!("{n} and {other} share the key {folded}");
        }
        assert!(key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~+@/".contains(&b)));
    }
    assert_eq!(PackageName::parse("lodash").unwrap().key_path(), "lodash");
    assert_eq!(
        PackageName::parse("@acme/utils").unwrap().key_path(),
        "@acme/utils"
    );
    assert_eq!(
        PackageName::parse("JSONStream").unwrap().key_path(),
        "+j+s+o+n+stream"
    );
    assert_eq!(key_segment(".tmp"), "+2etmp");
}

#[test]
fn long_key_segments_are_hashed() {
    let a = "a".repeat(600);
    let b = format!("{}b", "a".repeat(599));
    let (ka, kb) = (key_segment(&a), key_segment(&b));
    assert!(ka.len() <= 200 && kb.len() <= 200);
    assert_ne!(ka, kb);
    assert!(ka.contains("+-"));
    assert!(!key_segment("JSONStream-1.0.0").contains("+-"));
}

#[test]
fn tarball_files() {
    let n = PackageName::parse("@acme/utils").unwrap();
    let t = TarballFile::parse(&n, "utils-1.0.0-beta.1.tgz").unwrap();
    assert_eq!(t.version().to_string(), "1.0.0-beta.1");
    assert!(TarballFile::parse(&n, "other-1.0.0.tgz").is_err());
    assert!(TarballFile::parse(&n, "utils-1.0.0.tar").is_err());
    assert!(TarballFile::parse(&n, "utils-01.0.0.tgz").is_err());
    assert!(TarballFile::parse(&n, "utils-../../x.tgz").is_err());
    assert!(TarballFile::parse(&n, "utils-.tgz").is_err());
    // A name that is a prefix of another must not match its tarballs.
    let short = PackageName::parse("util").unwrap();
    assert!(TarballFile::parse(&short, "utils-1.0.0.tgz").is_err());
    let legacy = PackageName::parse("JSONStream").unwrap();
    let t = TarballFile::parse(&legacy, "JSONStream-1.3.5.tgz").unwrap();
    assert_eq!(t.key_segment(), "+j+s+o+n+stream-1.3.5.tgz");
    let long = format!("utils-1.0.0-{}.tgz", "a".repeat(5000));
    assert_eq!(TarballFile::parse(&n, &long), Err(TarballError::BadVersion));
}

#[test]
fn org_slugs() {
    assert!(OrgSlug::parse("acme").is_ok());
    assert!(OrgSlug::parse("acme-2").is_ok());
    for s in ["", "-acme", "acme-", "Acme", "a.b", "a_b", &"a".repeat(64)] {
        assert!(OrgSlug::parse(s).is_err(), "{s}");
    }
}
