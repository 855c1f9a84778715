//! Pure: does a verified id token carry the claims a trusted publisher requires? Each
//! required claim must be present as a JSON string and equal to the required value, or,
//! when the required value ends with `*`, start with what precedes it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Whether one claim value satisfies one required value.
pub fn value_matches(required: &str, actual: &str) -> bool {
    match required.strip_suffix('*') {
        Some(prefix) => actual.starts_with(prefix),
        None => actual == required,
    }
}

/// The names of the required claims `claims` does not satisfy, in name order; empty when
/// the token matches.
pub fn mismatches<'a>(
    required: &'a BTreeMap<String, String>,
    claims: &Map<String, Value>,
) -> Vec<&'a str> {
    required
        .iter()
        .filter(|(name, want)| {
            !matches!(claims.get(name.as_str()), Some(Value::String(got)) if value_matches(want, got))
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// How the token's value of `name` looks in a refusal: the token's own value (never what
/// the publisher requires, which is the org's configuration).
pub fn describe(name: &str, claims: &Map<String, Value>) -> String {
    match claims.get(name) {
        None => format!("{name} (missing)"),
        Some(Value::String(s)) => format!("{name} ({:?})", super::shown(s, 100)),
        Some(_) => format!("{name} (not a string)"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn required(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn exact_values_must_be_equal() {
        let req = required(&[("repository", "acme/app"), ("environment", "release")]);
        let ok = claims(json!({"repository": "acme/app", "environment": "release", "x": 1}));
        assert!(mismatches(&req, &ok).is_empty());
        let other = claims(json!({"repository": "acme/app2", "environment": "release"}));
        assert_eq!(mismatches(&req, &other), ["repository"]);
        let case = claims(json!({"repository": "Acme/app", "environment": "Release"}));
        assert_eq!(mismatches(&req, &case), ["environment", "repository"]);
    }

    #[test]
    fn a_trailing_star_matches_by_prefix() {
        let req = required(&[("ref", "refs/tags/v*")]);
        for (value, ok) in [
            ("refs/tags/v1.2.3", true),
            ("refs/tags/v", true),
            ("refs/tags/x1", false),
            ("refs/heads/main", false),
        ] {
            assert_eq!(
                mismatches(&req, &claims(json!({ "ref": value }))).is_empty(),
                ok,
                "{value}"
            );
        }
        // A lone star: present, any string.
        let any = required(&[("environment", "*")]);
        assert!(mismatches(&any, &claims(json!({"environment": ""}))).is_empty());
        assert_eq!(mismatches(&any, &claims(json!({}))), ["environment"]);
        // A star inside a value is literal.
        let inner = required(&[("repository", "acme/*app")]);
        assert_eq!(
            mismatches(&inner, &claims(json!({"repository": "acme/xapp"}))),
            ["repository"]
        );
    }

    #[test]
    fn missing_and_non_string_claims_never_match() {
        let req = required(&[("run_id", "42"), ("sub", "x")]);
        let c = claims(json!({"run_id": 42}));
        assert_eq!(mismatches(&req, &c), ["run_id", "sub"]);
        assert_eq!(describe("run_id", &c), "run_id (not a string)");
        assert_eq!(describe("sub", &c), "sub (missing)");
        let s = claims(json!({"sub": "repo:acme/app"}));
        assert_eq!(describe("sub", &s), r#"sub ("repo:acme/app")"#);
    }

    #[test]
    fn nothing_required_is_not_a_match_the_service_allows() {
        // The service refuses publishers without claims; here an empty set trivially matches.
        assert!(mismatches(&BTreeMap::new(), &Map::new()).is_empty());
    }
}
