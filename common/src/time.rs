//! Wall-clock milliseconds since the Unix epoch, the unit every stored time and every
//! protobuf `*_ms` field uses. A clock before 1970 reads as 0; a clock past year 292 million
//! saturates, rather than wrapping.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch for `t`.
pub fn ms_at(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    ms_at(SystemTime::now())
}

/// True once a point in time (Unix ms) is reached; `None` never is.
pub fn has_passed(at_ms: Option<i64>) -> bool {
    at_ms.is_some_and(|t| t <= now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_and_before() {
        assert_eq!(ms_at(UNIX_EPOCH), 0);
        assert_eq!(ms_at(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
        assert_eq!(ms_at(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(now_ms() > 1_700_000_000_000);
        assert!(has_passed(Some(0)) && !has_passed(Some(i64::MAX)) && !has_passed(None));
    }
}
