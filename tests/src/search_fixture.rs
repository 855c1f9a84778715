//! The fixture upstream's `GET /-/v1/search` (`Registry::search_results`): a fixed list of
//! result objects, every word of the text matched against name, description and keywords,
//! paged by `from`/`size` like the public registry's.

use serde_json::{json, Value};

/// A search result object in npm's shape.
pub fn object(name: &str, version: &str, description: &str, keywords: &[&str]) -> Value {
    json!({
        "package": {
            "name": name,
            "scope": name.strip_prefix('@').and_then(|r| r.split_once('/')).map_or("unscoped", |(s, _)| s),
            "version": version,
            "description": description,
            "keywords": keywords,
            "date": "2024-01-01T00:00:00.000Z",
            "links": {},
            "publisher": {"username": "upstream-user"},
            "maintainers": [{"username": "upstream-user"}],
        },
        "score": {"final": 0.5, "detail": {"quality": 0.5, "popularity": 0.5, "maintenance": 0.5}},
        "searchScore": 1.0,
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .to_string()
}

/// The answer to `path_and_query` over `all`.
pub fn answer(all: &[Value], path_and_query: &str) -> Value {
    let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
    let (mut text, mut from, mut size) = (String::new(), 0usize, 20usize);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "text" => text = decode(v).to_lowercase(),
            "from" => from = v.parse().unwrap_or(0),
            "size" => size = v.parse().unwrap_or(20),
            _ => {}
        }
    }
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !w.contains(':'))
        .collect();
    let matched: Vec<&Value> = all
        .iter()
        .filter(|o| {
            let p = &o["package"];
            let hay = format!(
                "{} {} {}",
                p["name"].as_str().unwrap_or(""),
                p["description"].as_str().unwrap_or(""),
                p["keywords"]
                    .as_array()
                    .map(|k| k
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default()
            )
            .to_lowercase();
            words.iter().all(|w| hay.contains(w))
        })
        .collect();
    let page: Vec<&Value> = matched.iter().skip(from).take(size).copied().collect();
    json!({"objects": page, "total": matched.len(), "time": "2024-01-01T00:00:00.000Z"})
}
