//! npm document revisions (`_rev`): `<number>-<alphanumeric hash>`, at most 80 bytes. Read
//! from write paths (`/<name>/-rev/<rev>`) both for nproxy's own documents and for writes
//! relayed upstream, so one definition serves both.

pub fn is_rev(s: &str) -> bool {
    s.len() <= 80
        && s.split_once('-').is_some_and(|(n, h)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && !h.is_empty()
                && h.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::is_rev;

    #[test]
    fn revisions() {
        assert!(is_rev("3-abc123") && is_rev("12-0f"));
        for bad in [
            "",
            "-abc",
            "3-",
            "x-abc",
            "3-ab/c",
            "3-ab%2fc",
            &"1-".repeat(50),
        ] {
            assert!(!is_rev(bad), "{bad:?}");
        }
    }
}
