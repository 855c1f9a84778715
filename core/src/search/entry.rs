//! What the search index keeps of one internal package (`Entry`), read from its stored
//! document, and the search result object npm gets for it. Every field is bounded, so an
//! entry costs at most a few kilobytes whatever the document holds.

use serde_json::{json, Map, Value};

use crate::names::PackageName;

const MAX_DESCRIPTION: usize = 512;
const MAX_KEYWORDS: usize = 20;
const MAX_KEYWORD: usize = 64;
const MAX_PEOPLE: usize = 8;
const MAX_PERSON: usize = 128;
const MAX_LINK: usize = 256;
const MAX_SHORT: usize = 256;

/// One internal package as search sees it: its latest version's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub description: String,
    pub keywords: Vec<String>,
    /// When the latest version was published (ISO), or the document's last change.
    pub date: String,
    /// Who published the latest version (the token's name).
    pub publisher: String,
    /// The manifest's maintainers, or the publisher.
    pub maintainers: Vec<String>,
    pub author: Option<String>,
    /// The latest version's deprecation message.
    pub deprecated: Option<String>,
    /// A `0.x` or prerelease latest version.
    pub unstable: bool,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub bugs: Option<String>,
    // Lowercased copies for matching.
    pub(super) name_lc: String,
    pub(super) description_lc: String,
    pub(super) keywords_lc: Vec<String>,
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn text(v: Option<&Value>, max: usize) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| cut(s, max))
}

/// A person field (`"Name <mail> (url)"` or `{"name": …}`) → the name.
fn person(v: &Value) -> Option<String> {
    let raw = match v {
        Value::String(s) => s.split(['<', '(']).next().unwrap_or(""),
        Value::Object(o) => o
            .get("name")
            .or_else(|| o.get("username"))
            .and_then(Value::as_str)
            .unwrap_or(""),
        _ => "",
    };
    let raw = raw.trim();
    (!raw.is_empty()).then(|| cut(raw, MAX_PERSON))
}

/// A link field (`"https://…"` or `{"url": …}`), shown only if it is an http(s) URL.
fn link(v: Option<&Value>) -> Option<String> {
    let raw = match v? {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("url").and_then(Value::as_str)?,
        _ => return None,
    };
    let raw = raw.trim().trim_start_matches("git+");
    let raw = raw.strip_suffix(".git").unwrap_or(raw);
    let ok = (raw.starts_with("https://") || raw.starts_with("http://"))
        && raw.len() <= MAX_LINK
        && !raw.chars().any(char::is_whitespace);
    ok.then(|| raw.to_string())
}

/// The version a search shows: `latest` if it names a published version, else the highest.
fn latest(doc: &Value) -> Option<String> {
    let versions = doc.get("versions")?.as_object()?;
    if let Some(l) = doc["dist-tags"]["latest"].as_str() {
        if versions.contains_key(l) {
            return Some(l.to_string());
        }
    }
    versions
        .keys()
        .filter_map(|v| semver::Version::parse(v).ok().map(|p| (p, v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v.clone())
}

impl Entry {
    /// The entry for a stored internal document; `None` for a tombstone, a document with
    /// no version left, or one whose name is not a package name.
    pub fn from_document(doc: &Value) -> Option<Entry> {
        if crate::internal::is_tombstone(doc) {
            return None;
        }
        let name = PackageName::parse(doc.get("name")?.as_str()?).ok()?;
        let version = latest(doc)?;
        let manifest = doc["versions"].get(&version)?;
        let description = text(doc.get("description"), MAX_DESCRIPTION)
            .or_else(|| text(manifest.get("description"), MAX_DESCRIPTION))
            .unwrap_or_default();
        let keywords: Vec<String> = match manifest.get("keywords") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|k| text(Some(k), MAX_KEYWORD))
                .take(MAX_KEYWORDS)
                .collect(),
            Some(Value::String(s)) => s
                .split([',', ' ', '\t'])
                .filter(|k| !k.is_empty())
                .map(|k| cut(k, MAX_KEYWORD))
                .take(MAX_KEYWORDS)
                .collect(),
            _ => Vec::new(),
        };
        let publisher = manifest
            .get("_npmUser")
            .and_then(person)
            .unwrap_or_default();
        let mut maintainers: Vec<String> = manifest
            .get("maintainers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(person).take(MAX_PEOPLE).collect())
            .unwrap_or_default();
        if maintainers.is_empty() && !publisher.is_empty() {
            maintainers.push(publisher.clone());
        }
        let date = text(doc["time"].get(&version), MAX_SHORT)
            .or_else(|| text(doc["time"].get("modified"), MAX_SHORT))
            .unwrap_or_default();
        let unstable = semver::Version::parse(&version)
            .map(|v| v.major == 0 || !v.pre.is_empty())
            .unwrap_or(false);
        Some(Entry {
            name_lc: name.as_str().to_lowercase(),
            description_lc: description.to_lowercase(),
            keywords_lc: keywords.iter().map(|k| k.to_lowercase()).collect(),
            name: name.as_str().to_string(),
            version: cut(&version, MAX_SHORT),
            description,
            keywords,
            date,
            publisher,
            maintainers,
            author: manifest.get("author").and_then(person),
            deprecated: text(manifest.get("deprecated"), MAX_DESCRIPTION),
            unstable,
            homepage: link(manifest.get("homepage")),
            repository: link(manifest.get("repository")),
            bugs: link(manifest.get("bugs")),
        })
    }

    /// About how many bytes the entry holds (what the index is bounded by).
    pub fn weight(&self) -> usize {
        let strings = [
            &self.name,
            &self.version,
            &self.description,
            &self.date,
            &self.publisher,
        ];
        let optional = [
            &self.author,
            &self.deprecated,
            &self.homepage,
            &self.repository,
            &self.bugs,
        ];
        160 + 2 * (self.name.len() + self.description.len())
            + strings.iter().map(|s| s.len()).sum::<usize>()
            + optional
                .iter()
                .filter_map(|s| s.as_ref())
                .map(String::len)
                .sum::<usize>()
            + self
                .keywords
                .iter()
                .map(|k| 2 * k.len() + 48)
                .sum::<usize>()
            + self.maintainers.iter().map(|m| m.len() + 24).sum::<usize>()
    }

    /// `@acme` → `acme`; what npm's `scope` field holds (`unscoped` for the others).
    pub fn scope(&self) -> &str {
        match self.name.strip_prefix('@').and_then(|r| r.split_once('/')) {
            Some((scope, _)) => scope,
            None => "unscoped",
        }
    }

    /// The search result object npm reads (`objects[]`): `relevance` is the search score,
    /// `final_score` (0..=1) the score npm's answers carry.
    pub fn object(&self, relevance: f64, final_score: f64) -> Value {
        let mut links = Map::new();
        for (k, v) in [
            ("homepage", &self.homepage),
            ("repository", &self.repository),
            ("bugs", &self.bugs),
        ] {
            if let Some(v) = v {
                links.insert(k.into(), json!(v));
            }
        }
        let mut package = json!({
            "name": self.name,
            "scope": self.scope(),
            "version": self.version,
            "description": self.description,
            "keywords": self.keywords,
            "date": self.date,
            "links": links,
            "publisher": {"username": self.publisher},
            "maintainers": self.maintainers.iter().map(|m| json!({"username": m})).collect::<Vec<_>>(),
        });
        if let Some(a) = &self.author {
            package["author"] = json!({"name": a});
        }
        let mut flags = Map::new();
        if let Some(d) = &self.deprecated {
            flags.insert("deprecated".into(), json!(d));
        }
        if self.unstable {
            flags.insert("unstable".into(), json!(true));
        }
        // Internal packages have no popularity figures: the detail says how well the text
        // matched, and a deprecated package is marked down.
        let maintenance = if self.deprecated.is_some() { 0.0 } else { 1.0 };
        json!({
            "package": package,
            "flags": flags,
            "score": {
                "final": final_score,
                "detail": {"quality": final_score, "popularity": 0.0, "maintenance": maintenance},
            },
            "searchScore": relevance,
        })
    }
}
