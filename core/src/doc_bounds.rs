//! Bounds on what an internal package document may hold, and a JSON parser that enforces
//! the count of versions while it parses (a 100,000-version body is refused at its second
//! version for a publish, not after building it all). Pure.

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Versions one package may have (npm's registry holds a few packages with several
/// thousand; none near this).
pub const MAX_VERSIONS: usize = 10_000;
/// A stored internal document, serialized (npm's registry refuses packuments far smaller).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// One version's manifest as stored (without its readme).
pub const MAX_MANIFEST_BYTES: usize = 512 * 1024;
/// A package's readme as stored; longer ones are cut (npm's registry cuts too).
pub const MAX_README_BYTES: usize = 64 * 1024;
/// A description as stored; longer ones are cut.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// A deprecation message.
pub const MAX_DEPRECATION_BYTES: usize = 1024;
/// A dist-tag name.
pub const MAX_TAG_BYTES: usize = 128;

/// Parses a JSON object whose `versions` member may hold at most `max_versions` entries;
/// the count is enforced while parsing.
pub fn parse_document(json: &[u8], max_versions: usize) -> Result<Map<String, Value>, String> {
    struct Versions(usize);
    impl<'de> DeserializeSeed<'de> for Versions {
        type Value = Map<String, Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Versions {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of versions")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                if out.len() == self.0 {
                    return Err(A::Error::custom(format!(
                        "more than {} versions in one document",
                        self.0
                    )));
                }
                out.insert(k, map.next_value()?);
            }
            Ok(out)
        }
    }
    struct Doc(usize);
    impl<'de> Visitor<'de> for Doc {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                let v = if k == "versions" {
                    Value::Object(map.next_value_seed(Versions(self.0))?)
                } else {
                    map.next_value()?
                };
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let doc = (&mut de)
        .deserialize_map(Doc(max_versions))
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(doc)
}

/// Cuts text to at most `max` bytes at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A dist-tag name nproxy stores: what `encodeURIComponent` leaves alone (npm's own rule),
/// not a semver range (it would shadow versions), never `.` or `..`, no control characters.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG_BYTES
        && tag != "."
        && tag != ".."
        && tag.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '.' | '_' | '~' | '!' | '*' | '\'' | '(' | ')')
        })
        && semver::VersionReq::parse(tag).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_counted_while_parsing() {
        let ok = parse_document(br#"{"name": "x", "versions": {"1.0.0": {}}}"#, 1).unwrap();
        assert_eq!(ok["versions"].as_object().unwrap().len(), 1);
        let e = parse_document(br#"{"versions": {"1.0.0": {}, "1.0.1": {}}}"#, 1).unwrap_err();
        assert!(e.contains("more than 1 versions"), "{e}");
        assert!(parse_document(b"[]", 1).is_err());
        assert!(parse_document(br#"{"a": 1} x"#, 1).is_err());
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn tags() {
        for ok in ["latest", "beta", "next-2", "rc.1"] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "1.0.0",
            "^1",
            "a/b",
            "a\nb",
            "a b",
            &"t".repeat(129),
        ] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }
}
