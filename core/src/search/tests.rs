use serde_json::{json, Value};

use super::*;

fn doc(name: &str, version: &str, description: &str, keywords: Value) -> Value {
    json!({
        "_id": name, "name": name, "description": description,
        "dist-tags": {"latest": version},
        "versions": {version: {
            "name": name, "version": version, "keywords": keywords,
            "_npmUser": {"name": "ci"},
            "repository": {"type": "git", "url": "git+https://git.example/acme/x.git"},
        }},
        "time": {"created": "2024-01-01T00:00:00.000Z", version: "2024-02-01T00:00:00.000Z"},
    })
}

fn entry(name: &str, description: &str, keywords: &[&str]) -> Entry {
    Entry::from_document(&doc(name, "1.2.0", description, json!(keywords))).expect("entry")
}

#[test]
fn params_default_clamp_and_refuse() {
    let p = params(Some(
        "text=foo%20bar&size=500&from=3&quality=0.65&popularity=2&x=1",
    ))
    .expect("params");
    assert_eq!(p.text, "foo bar");
    assert_eq!(p.size, MAX_SIZE);
    assert_eq!(p.from, 3);
    assert_eq!(p.weights, vec![("quality", "0.65".to_string())]);
    assert_eq!(p.query.words, vec!["foo", "bar"]);
    let d = params(Some("text=x")).expect("params");
    assert_eq!((d.size, d.from), (DEFAULT_SIZE, 0));
    assert_eq!(params(Some("size=0&text=x")).map(|p| p.size), Ok(0));
    assert_eq!(params(None), Err(ParamError::NoText));
    assert_eq!(params(Some("text=%20%20")), Err(ParamError::NoText));
    assert_eq!(
        params(Some("text=x&size=-1")),
        Err(ParamError::NotANumber("size"))
    );
    assert_eq!(
        params(Some("text=x&from=1e3")),
        Err(ParamError::NotANumber("from"))
    );
    assert_eq!(
        params(Some("text=x&from=99999999999999999999999")),
        Err(ParamError::FromTooDeep)
    );
    let long = format!("text={}", "a".repeat(MAX_TEXT_BYTES + 1));
    assert_eq!(params(Some(&long)), Err(ParamError::TooLong));
    let many = format!("text={}", vec!["w"; MAX_TERMS + 1].join("+"));
    assert_eq!(params(Some(&many)), Err(ParamError::TooManyTerms));
}

#[test]
fn qualifiers_parse() {
    let q = parse("Widget keywords:a,B keywords:c+d scope:@Acme author:ci maintainer:bob not:deprecated is:unstable boost-exact:false what:ever").expect("q");
    assert_eq!(q.words, vec!["widget", "what:ever"]);
    assert_eq!(
        q.keywords,
        vec![
            Keywords::Any(vec!["a".into(), "b".into()]),
            Keywords::All(vec!["c".into(), "d".into()])
        ]
    );
    assert_eq!(q.scopes, vec!["acme"]);
    assert_eq!(q.authors, vec!["ci"]);
    assert_eq!(q.maintainers, vec!["bob"]);
    assert_eq!(q.deprecated, Some(false));
    assert_eq!(q.unstable, Some(true));
}

#[test]
fn internal_scopes_are_recognised_in_any_spelling() {
    let scopes = vec!["@acme".to_string()];
    let yes = [
        "@acme/utils",
        "@ACME",
        "find @acme",
        "scope:acme",
        "scope:@acme",
        "acme/utils",
        "x,@acme/y",
    ];
    for t in yes {
        let q = parse(t).expect("q");
        assert!(names_internal_scope(t, &q, &scopes), "{t}");
    }
    let no = [
        "acme",
        "@acme-tools/x",
        "scope:acme-tools",
        "pacme/x",
        "utils",
        "keywords:acme",
    ];
    for t in no {
        let q = parse(t).expect("q");
        assert!(!names_internal_scope(t, &q, &scopes), "{t}");
    }
}

#[test]
fn entries_read_the_latest_version_and_are_bounded() {
    let mut d = doc("@acme/widget", "2.0.0", "A widget", json!("ui, widget"));
    d["versions"]["2.0.0"]["deprecated"] = json!("use @acme/gadget");
    d["versions"]["2.0.0"]["author"] = json!("Ann Author <ann@example.com>");
    d["versions"]["1.0.0"] = json!({"name": "@acme/widget", "version": "1.0.0"});
    let e = Entry::from_document(&d).expect("entry");
    assert_eq!(e.version, "2.0.0");
    assert_eq!(e.keywords, vec!["ui", "widget"]);
    assert_eq!(e.publisher, "ci");
    assert_eq!(e.maintainers, vec!["ci"]);
    assert_eq!(e.author.as_deref(), Some("Ann Author"));
    assert_eq!(e.deprecated.as_deref(), Some("use @acme/gadget"));
    assert_eq!(e.repository.as_deref(), Some("https://git.example/acme/x"));
    assert_eq!(e.date, "2024-02-01T00:00:00.000Z");
    let o = e.object(EXACT, 1.0);
    assert_eq!(o["package"]["scope"], "acme");
    assert_eq!(o["package"]["publisher"]["username"], "ci");
    assert_eq!(o["package"]["maintainers"][0]["username"], "ci");
    assert_eq!(o["flags"]["deprecated"], "use @acme/gadget");
    assert_eq!(o["score"]["final"], 1.0);

    let huge = doc(
        "@acme/big",
        "1.0.0",
        &"é".repeat(10_000),
        json!(vec!["k"; 1000]),
    );
    let e = Entry::from_document(&huge).expect("entry");
    assert!(e.description.len() <= 512 && e.keywords.len() <= 20);
    assert!(e.weight() < 4096, "{}", e.weight());

    // No version left, or a tombstone: nothing to list.
    let mut empty = doc("@acme/gone", "1.0.0", "", json!([]));
    empty["versions"] = json!({});
    assert!(Entry::from_document(&empty).is_none());
    let t = crate::internal::tombstone(&doc("@acme/t", "1.0.0", "", json!([])), "now");
    assert!(Entry::from_document(&t).is_none());
    // `latest` pointing nowhere: the highest version.
    let mut odd = doc("@acme/odd", "1.0.0", "", json!([]));
    odd["dist-tags"]["latest"] = json!("9.9.9");
    odd["versions"]["1.10.0"] = json!({"name": "@acme/odd", "version": "1.10.0"});
    assert_eq!(
        Entry::from_document(&odd).map(|e| e.version),
        Some("1.10.0".into())
    );
}

#[test]
fn ranking_matches_every_word_and_orders_stably() {
    let entries = [
        entry("@acme/widget", "Widgets for the web", &["ui"]),
        entry("@acme/widget-kit", "Many parts", &["widget"]),
        entry("@acme/tools", "Has a widget inside", &[]),
        entry("@acme/other", "Nothing here", &["misc"]),
    ];
    let names = |q: &str| -> Vec<String> {
        let q = parse(q).expect("q");
        rank(&q, entries.iter())
            .into_iter()
            .map(|h| h.entry.name.clone())
            .collect()
    };
    assert_eq!(
        names("widget"),
        vec!["@acme/widget", "@acme/widget-kit", "@acme/tools"]
    );
    assert_eq!(
        names("@acme/widget"),
        vec!["@acme/widget", "@acme/widget-kit"]
    );
    assert_eq!(names("widget web"), vec!["@acme/widget"]);
    assert_eq!(
        names("keywords:misc,ui"),
        vec!["@acme/other", "@acme/widget"]
    );
    assert_eq!(names("keywords:misc+ui"), Vec::<String>::new());
    assert_eq!(names("scope:acme").len(), 4);
    assert_eq!(names("scope:other"), Vec::<String>::new());
    assert_eq!(names("author:ci nothing"), vec!["@acme/other"]);
    assert_eq!(names("maintainer:nobody"), Vec::<String>::new());
    assert_eq!(names("is:unstable"), Vec::<String>::new());

    let mut dep = doc("@acme/widget-old", "1.0.0", "old widget", json!([]));
    dep["versions"]["1.0.0"]["deprecated"] = json!("gone");
    let mut all = entries.to_vec();
    all.push(Entry::from_document(&dep).expect("entry"));
    let q = parse("widget").expect("q");
    let ranked: Vec<&str> = rank(&q, all.iter())
        .into_iter()
        .map(|h| h.entry.name.as_str())
        .collect();
    assert_eq!(ranked.last(), Some(&"@acme/widget-old"), "deprecated last");
    let q = parse("widget not:deprecated").expect("q");
    assert!(rank(&q, all.iter())
        .iter()
        .all(|h| h.entry.deprecated.is_none()));
}

#[test]
fn pages_split_the_merged_list_without_gaps_or_overlaps() {
    for internal in [0, 3, 7, 10, 25] {
        for size in [1, 7, 20] {
            let total = internal + 30;
            let mut seen = Vec::new();
            let mut from = 0;
            while from < total {
                let s = split(from, size, internal);
                seen.extend(s.internal.clone().map(|i| (true, i)));
                seen.extend(
                    (s.upstream_start..s.upstream_start + s.upstream_count).map(|i| (false, i)),
                );
                from += size;
            }
            let want: Vec<(bool, usize)> = (0..internal)
                .map(|i| (true, i))
                .chain((0..(from - internal.min(from))).map(|i| (false, i)))
                .collect();
            assert_eq!(seen, want, "internal {internal} size {size}");
        }
    }
    assert_eq!(
        split(0, 0, 5),
        Split {
            internal: 0..0,
            upstream_start: 0,
            upstream_count: 0
        }
    );
}

/// Search leaves out what the list rules refuse whole: a deny entry without a range (or
/// its whole scope), anything unlisted under allow-list-only; in block mode only, and not
/// when an exception lets some version through.
#[test]
fn the_list_rules_refuse_whole_packages() {
    use crate::rules::{refuses_whole_package, Mode, Pattern, Rules};
    let n = |s: &str| crate::names::PackageName::parse(s).expect("name");
    let mut r = Rules {
        lists: Mode::Block,
        deny: vec![
            Pattern::parse("evil", None).expect("p"),
            Pattern::parse("@bad/*", None).expect("p"),
            Pattern::parse("old", Some("<2")).expect("p"),
        ],
        ..Rules::default()
    };
    assert!(refuses_whole_package(&r, &n("evil"), false));
    assert!(refuses_whole_package(&r, &n("@bad/x"), false));
    assert!(
        !refuses_whole_package(&r, &n("old"), false),
        "only some versions"
    );
    assert!(!refuses_whole_package(&r, &n("evil"), true), "an exception");
    assert!(!refuses_whole_package(&r, &n("fine"), false));
    r.allow_list_only = true;
    r.allow = vec![Pattern::parse("fine", Some("^1")).expect("p")];
    assert!(!refuses_whole_package(&r, &n("fine"), false));
    assert!(refuses_whole_package(&r, &n("other"), false));
    r.lists = Mode::Warn;
    assert!(
        !refuses_whole_package(&r, &n("evil"), false),
        "warn lists nothing out"
    );
}
