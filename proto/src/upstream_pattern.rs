//! Upstream route patterns: which names an org fetches from another registry. Pure, shared
//! by the control plane (validation) and the data plane (resolution), so both read a
//! pattern the same way.
//!
//! A pattern is a whole scope (`@vendor`), an exact name (`vendor-sdk`, `@other/sdk`), or a
//! prefix ending in `*` (`vendor-*`, `@other/sdk-*`). A name resolves to exactly one
//! upstream: the most specific matching route (exact name, then the longest prefix, then the
//! scope), else the data plane's own upstream. Two routes of one org never share a pattern.

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `@vendor`: every `@vendor/…` name.
    Scope(String),
    /// One name.
    Exact(String),
    /// Names starting with this (the pattern without its `*`).
    Prefix(String),
}

/// Why a pattern is refused (shown to the admin).
pub fn parse(raw: &str) -> Result<Pattern, String> {
    let p = raw.trim();
    if p.is_empty() || p.len() > 214 {
        return Err("must be 1 to 214 characters".into());
    }
    let ok_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '~')
    };
    let part_ok = |s: &str| !s.is_empty() && s.chars().all(ok_char) && !s.starts_with('.');
    if let Some(prefix) = p.strip_suffix('*') {
        let bare = prefix.strip_prefix('@').unwrap_or(prefix);
        let valid = match bare.split_once('/') {
            Some((scope, rest)) => part_ok(scope) && rest.chars().all(ok_char),
            None => !prefix.starts_with('@') && !bare.is_empty() && bare.chars().all(ok_char),
        };
        if !valid || prefix.contains('*') {
            return Err(format!(
                "{p:?} is not a prefix pattern (lowercase name characters, then one `*`)"
            ));
        }
        return Ok(Pattern::Prefix(prefix.to_string()));
    }
    match p.strip_prefix('@') {
        Some(rest) => match rest.split_once('/') {
            Some((scope, name)) if part_ok(scope) && part_ok(name) => {
                Ok(Pattern::Exact(p.to_string()))
            }
            None if part_ok(rest) => Ok(Pattern::Scope(p.to_string())),
            _ => Err(format!("{p:?} is not a scope (`@vendor`) or a scoped name")),
        },
        None if part_ok(p) => Ok(Pattern::Exact(p.to_string())),
        None => Err(format!(
            "{p:?} is not a package name, a scope (`@vendor`) or a prefix (`vendor-*`)"
        )),
    }
}

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Scope(s) => name
                .strip_prefix(s.as_str())
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
            Pattern::Exact(n) => name == n,
            Pattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }

    /// Higher is more specific: exact names, then prefixes by length, then scopes.
    fn rank(&self) -> (u8, usize) {
        match self {
            Pattern::Exact(n) => (3, n.len()),
            Pattern::Prefix(p) => (2, p.len()),
            Pattern::Scope(s) => (1, s.len()),
        }
    }

    /// The scope this pattern stays inside, if any (to refuse routes over internal scopes).
    pub fn scope(&self) -> Option<&str> {
        let s = match self {
            Pattern::Scope(s) => return Some(s),
            Pattern::Exact(s) | Pattern::Prefix(s) => s,
        };
        s.starts_with('@').then(|| s.split('/').next().unwrap_or(s))
    }
}

/// The index of the route `name` resolves to, among `patterns` (`None`: the default
/// upstream). Ties cannot happen between distinct patterns of one org except two prefixes
/// of equal length, which cannot both match one name unless equal.
pub fn resolve<'p>(patterns: impl IntoIterator<Item = &'p Pattern>, name: &str) -> Option<usize> {
    patterns
        .into_iter()
        .enumerate()
        .filter(|(_, p)| p.matches(name))
        .max_by_key(|(_, p)| p.rank())
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_refuse() {
        assert_eq!(parse("@vendor"), Ok(Pattern::Scope("@vendor".into())));
        assert_eq!(parse("vendor-sdk"), Ok(Pattern::Exact("vendor-sdk".into())));
        assert_eq!(parse("@other/sdk"), Ok(Pattern::Exact("@other/sdk".into())));
        assert_eq!(parse("vendor-*"), Ok(Pattern::Prefix("vendor-".into())));
        assert_eq!(
            parse("@other/sdk-*"),
            Ok(Pattern::Prefix("@other/sdk-".into()))
        );
        assert_eq!(parse("@other/*"), Ok(Pattern::Prefix("@other/".into())));
        for bad in [
            "", "*", "@", "@/x", "Vendor", "a b", "@v/x/y", "v**", "*x", "@*", ".x", "@v/",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_most_specific_route_wins_and_nothing_falls_through() {
        let ps: Vec<Pattern> = [
            "@vendor",
            "@vendor/sdk",
            "@vendor/sdk-*",
            "tool-*",
            "tool-x",
        ]
        .iter()
        .map(|p| parse(p).unwrap())
        .collect();
        assert_eq!(resolve(&ps, "@vendor/other"), Some(0));
        assert_eq!(resolve(&ps, "@vendor/sdk"), Some(1));
        assert_eq!(resolve(&ps, "@vendor/sdk-node"), Some(2));
        assert_eq!(resolve(&ps, "tool-y"), Some(3));
        assert_eq!(resolve(&ps, "tool-x"), Some(4));
        assert_eq!(resolve(&ps, "@vendorx/a"), None);
        assert_eq!(resolve(&ps, "@vendor"), None);
        assert_eq!(resolve(&ps, "left-pad"), None);
        assert_eq!(ps[2].scope(), Some("@vendor"));
        assert_eq!(ps[3].scope(), None);
    }
}
