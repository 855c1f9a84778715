//! The org slug rule, shared by the control plane (which creates slugs) and the data plane
//! (which finds orgs by them), so every slug one accepts the other can address.

/// A DNS label: 1–63 lowercase letters, digits and inner hyphens.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn dns_labels() {
        assert!(super::is_valid("acme-2"));
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!super::is_valid(bad), "{bad}");
        }
    }
}
