//! Validation of what arrives over gRPC. Errors name the field, and map to
//! `InvalidArgument`.

use crate::v1::TokenScope;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl From<FieldError> for tonic::Status {
    fn from(e: FieldError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// An org slug: a DNS label (lowercase letters, digits and inner hyphens, 1–63 chars).
pub fn slug(field: &'static str, s: &str) -> Result<String, FieldError> {
    if nproxy_common::slug::is_valid(s) {
        Ok(s.to_string())
    } else {
        Err(FieldError::new(
            field,
            format!("{s:?} must be a DNS label: 1-63 lowercase letters, digits or inner hyphens"),
        ))
    }
}

/// An npm scope such as `@acme`.
pub fn npm_scope(field: &'static str, s: &str) -> Result<String, FieldError> {
    let name = s
        .strip_prefix('@')
        .ok_or_else(|| FieldError::new(field, format!("{s:?} must start with '@' (e.g. @acme)")))?;
    let ok = !name.is_empty()
        && name.len() <= 213
        && !name.starts_with('.')
        && !name.starts_with('_')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_' | b'~')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(FieldError::new(
            field,
            format!("{s:?} is not a valid npm scope (lowercase, URL-safe, e.g. @acme)"),
        ))
    }
}

pub fn display_name(field: &'static str, s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    if s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must be at most 200 characters, without control characters",
        ));
    }
    Ok(s.to_string())
}

/// Token scopes: at least one, no unspecified values, no duplicates.
pub fn token_scopes(field: &'static str, raw: &[i32]) -> Result<Vec<TokenScope>, FieldError> {
    let mut out = Vec::new();
    for v in raw {
        match TokenScope::try_from(*v) {
            Ok(TokenScope::Unspecified) | Err(_) => {
                return Err(FieldError::new(
                    field,
                    format!("{v} is not a token scope (proxy or publish)"),
                ))
            }
            Ok(s) => {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
    }
    if out.is_empty() {
        return Err(FieldError::new(
            field,
            "at least one scope (proxy or publish) is required",
        ));
    }
    Ok(out)
}

pub fn page_size(field: &'static str, n: u32) -> Result<u32, FieldError> {
    match n {
        0 => Ok(50),
        1..=1000 => Ok(n),
        _ => Err(FieldError::new(field, "must be at most 1000")),
    }
}

/// An npm package name (`lodash`, `@scope/name`).
pub fn package_name(field: &'static str, s: &str) -> Result<(), FieldError> {
    if s.contains('*')
        || pattern_name(field, s).is_err()
        || (s.starts_with('@') && !s.contains('/'))
    {
        return Err(FieldError::new(
            field,
            format!("{s:?} is not a package name"),
        ));
    }
    Ok(())
}

/// An exact package name or a whole scope (`@types/*`), as a rule pattern.
fn pattern_name(field: &'static str, s: &str) -> Result<(), FieldError> {
    let (scope, rest) = match s.strip_prefix('@') {
        Some(r) => match r.split_once('/') {
            Some((scope, name)) => (Some(scope), name),
            None => {
                return Err(FieldError::new(
                    field,
                    format!("{s:?}: a scope pattern is @scope/*"),
                ))
            }
        },
        None => (None, s),
    };
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 214
            && !p.starts_with('.')
            && !p.starts_with('_')
            && p.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'.' | b'_' | b'~')
            })
    };
    let ok = match scope {
        Some(sc) => part_ok(sc) && (rest == "*" || part_ok(rest)),
        None => part_ok(rest),
    };
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{s:?} is neither a package name nor a scope like @types/*"),
        ))
    }
}

/// Checks an org's rules before they are stored.
pub fn rules(r: &crate::v1::Rules) -> Result<(), FieldError> {
    for (field, list) in [("rules.allow", &r.allow), ("rules.deny", &r.deny)] {
        if list.len() > 10_000 {
            return Err(FieldError::new(field, "at most 10000 patterns"));
        }
        for p in list {
            pattern_name(field, &p.name)?;
            if !p.range.trim().is_empty() && semver::VersionReq::parse(&p.range).is_err() {
                return Err(FieldError::new(
                    field,
                    format!("{:?} is not a semver range", p.range),
                ));
            }
        }
    }
    if r.cooldown_hours > 24 * 365 {
        return Err(FieldError::new("rules.cooldown_hours", "at most a year"));
    }
    if r.first_seen_days > 3650 {
        return Err(FieldError::new(
            "rules.first_seen_days",
            "at most ten years",
        ));
    }
    if r.licenses
        .iter()
        .any(|l| l.trim().is_empty() || l.len() > 100)
    {
        return Err(FieldError::new(
            "rules.licenses",
            "SPDX identifiers, non-empty",
        ));
    }
    if !matches!(
        r.min_severity.as_str(),
        "" | "low" | "moderate" | "high" | "critical"
    ) {
        return Err(FieldError::new(
            "rules.min_severity",
            "low, moderate, high or critical",
        ));
    }
    Ok(())
}

impl TokenScope {
    /// Whether a token with this scope may do what `needed` allows (publish includes read).
    pub fn covers(self, needed: TokenScope) -> bool {
        self == needed || (self == TokenScope::Publish && needed == TokenScope::Proxy)
    }

    pub fn label(self) -> &'static str {
        match self {
            TokenScope::Proxy => "proxy",
            TokenScope::Publish => "publish",
            TokenScope::Unspecified => "unspecified",
        }
    }

    pub fn from_label(s: &str) -> Option<TokenScope> {
        match s {
            "proxy" => Some(TokenScope::Proxy),
            "publish" => Some(TokenScope::Publish),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_scopes() {
        assert!(slug("slug", "acme").is_ok());
        let e = slug("slug", "Acme").unwrap_err();
        assert_eq!(e.field, "slug");
        assert!(npm_scope("s", "@acme").is_ok());
        assert!(npm_scope("s", "acme").is_err());
        assert!(npm_scope("s", "@Acme").is_err());
        assert!(npm_scope("s", "@").is_err());
        assert!(npm_scope("s", "@a/b").is_err());
    }

    #[test]
    fn scopes() {
        assert_eq!(
            token_scopes("scopes", &[1, 1, 2]).unwrap(),
            vec![TokenScope::Proxy, TokenScope::Publish]
        );
        assert!(token_scopes("scopes", &[]).is_err());
        assert!(token_scopes("scopes", &[0]).is_err());
        assert!(token_scopes("scopes", &[9]).is_err());
        assert!(TokenScope::Publish.covers(TokenScope::Proxy));
        assert!(!TokenScope::Proxy.covers(TokenScope::Publish));
        let status: tonic::Status = FieldError::new("slug", "bad").into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with("slug:"));
    }
}
