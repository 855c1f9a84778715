//! A search request as npm sends it (`/-/v1/search?text=…&size=…&from=…&quality=…`), and
//! its text as the registry reads it: free words and qualifiers.
//!
//! Qualifiers understood for internal packages: `keywords:a,b` (any of) and `keywords:a+b`
//! (all of), `scope:acme` (or `@acme`), `author:<name>`, `maintainer:<name>`,
//! `is:deprecated` / `not:deprecated`, `is:unstable` / `not:unstable` (a `0.x` or prerelease
//! latest version). `boost-exact:`, `is:insecure` and `not:insecure` are accepted and
//! ignored; any other `word:value` is a free word. The text goes upstream as the client
//! wrote it (the upstream reads its own qualifiers).

/// The longest search text accepted (bytes, after URL decoding).
pub const MAX_TEXT_BYTES: usize = 512;
/// At most this many words and qualifiers in one search.
pub const MAX_TERMS: usize = 32;
/// Results per page when the client names none, and the most one page holds (npm's own).
pub const DEFAULT_SIZE: usize = 20;
pub const MAX_SIZE: usize = 250;
/// The deepest `from` accepted: pages past it would only cost work.
pub const MAX_FROM: usize = 100_000;

/// The parameters of one search request.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The text as the client sent it (decoded), trimmed.
    pub text: String,
    pub query: Query,
    /// Results wanted: `size` clamped to `1..=MAX_SIZE` (0 is kept: a count only).
    pub size: usize,
    pub from: usize,
    /// npm's ranking weights, passed to the upstream when they are numbers in 0..=1.
    pub weights: Vec<(&'static str, String)>,
}

/// What a search's text asks for, lowercased.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Each must appear in the name, the description or a keyword.
    pub words: Vec<String>,
    /// Each set must match: `Any` one of its keywords, or `All` of them.
    pub keywords: Vec<Keywords>,
    /// Scopes without `@`: the package is in one of them.
    pub scopes: Vec<String>,
    pub authors: Vec<String>,
    pub maintainers: Vec<String>,
    /// `Some(true)`: deprecated packages only; `Some(false)`: none of them.
    pub deprecated: Option<bool>,
    pub unstable: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Keywords {
    Any(Vec<String>),
    All(Vec<String>),
}

/// Why a search request is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("the search needs a text (text=…)")]
    NoText,
    #[error("the search text is longer than {MAX_TEXT_BYTES} bytes")]
    TooLong,
    #[error("the search text has more than {MAX_TERMS} words")]
    TooManyTerms,
    #[error("{0} must be a whole number")]
    NotANumber(&'static str),
    #[error("from must be at most {MAX_FROM}")]
    FromTooDeep,
}

/// Reads a search's query string. `size` above `MAX_SIZE` is clamped to it; a `size` or
/// `from` that is not a whole number, a `from` past `MAX_FROM`, a missing or empty text,
/// and a text too long are refused. Unknown keys are ignored.
pub fn params(query_string: Option<&str>) -> Result<Params, ParamError> {
    let (mut text, mut size, mut from) = (None, None, None);
    let mut weights = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query_string.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "text" => {
                if v.len() > MAX_TEXT_BYTES {
                    return Err(ParamError::TooLong);
                }
                text = Some(v.trim().to_string());
            }
            "size" => size = Some(number(&v, "size")?),
            "from" => from = Some(number(&v, "from")?),
            key @ ("quality" | "popularity" | "maintenance") => {
                let key: &'static str = match key {
                    "quality" => "quality",
                    "popularity" => "popularity",
                    _ => "maintenance",
                };
                if let Ok(w) = v.trim().parse::<f64>() {
                    if (0.0..=1.0).contains(&w) {
                        weights.retain(|(k, _)| *k != key);
                        weights.push((key, w.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    let text = text.filter(|t| !t.is_empty()).ok_or(ParamError::NoText)?;
    let from = from.unwrap_or(0);
    if from > MAX_FROM {
        return Err(ParamError::FromTooDeep);
    }
    Ok(Params {
        query: parse(&text)?,
        text,
        size: size.unwrap_or(DEFAULT_SIZE).min(MAX_SIZE),
        from,
        weights,
    })
}

fn number(v: &str, what: &'static str) -> Result<usize, ParamError> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamError::NotANumber(what));
    }
    // Only digits: an overflow is a number past every bound.
    Ok(v.parse::<usize>().unwrap_or(usize::MAX))
}

/// Splits a search text into words and qualifiers.
pub fn parse(text: &str) -> Result<Query, ParamError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ParamError::TooLong);
    }
    let mut q = Query::default();
    let terms: Vec<&str> = text.split_whitespace().collect();
    if terms.len() > MAX_TERMS {
        return Err(ParamError::TooManyTerms);
    }
    for term in terms {
        let lower = term.to_lowercase();
        let Some((key, value)) = lower.split_once(':') else {
            q.words.push(lower);
            continue;
        };
        let list = |sep: char| -> Vec<String> {
            value
                .split(sep)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match key {
            "keywords" | "keyword" if value.contains('+') => {
                q.keywords.push(Keywords::All(list('+')));
            }
            "keywords" | "keyword" => q.keywords.push(Keywords::Any(list(','))),
            "scope" => q.scopes.extend(
                list(',')
                    .into_iter()
                    .map(|s| s.trim_start_matches('@').to_string()),
            ),
            "author" => q.authors.extend(list(',')),
            "maintainer" => q.maintainers.extend(list(',')),
            "is" | "not" => {
                let on = key == "is";
                match value {
                    "deprecated" => q.deprecated = Some(on),
                    "unstable" => q.unstable = Some(on),
                    _ => {}
                }
            }
            "boost-exact" => {}
            _ => q.words.push(lower.clone()),
        }
    }
    q.keywords.retain(|k| match k {
        Keywords::Any(v) | Keywords::All(v) => !v.is_empty(),
    });
    Ok(q)
}

/// Whether a search text names one of the org's internal scopes (`@acme`, `@acme/…`,
/// `acme/…`, `scope:acme`): such a search is about internal packages and never goes
/// upstream, so neither the scope nor a name in it leaves nproxy. `scopes` are the org's
/// internal scopes as configured (`@acme`).
pub fn names_internal_scope(text: &str, query: &Query, scopes: &[String]) -> bool {
    let text = text.to_lowercase();
    scopes.iter().any(|scope| {
        let bare = scope.trim_start_matches('@').to_lowercase();
        if bare.is_empty() {
            return false;
        }
        query.scopes.contains(&bare)
            || text.match_indices(&format!("@{bare}")).any(|(i, m)| {
                !text[i + m.len()..]
                    .chars()
                    .next()
                    .is_some_and(is_scope_char)
            })
            || text.match_indices(&format!("{bare}/")).any(|(i, _)| {
                !text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c != '@' && is_scope_char(c))
            })
    })
}

fn is_scope_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '@')
}
