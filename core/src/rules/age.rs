//! The time-based rules, `cooldown` (a version too recently published) and `first-seen` (a
//! package too recently created), and `parse_iso_ms` for the document's `time` entries.
//!
//! These are the only rules whose findings expire: each returns, with its finding, the time
//! it stops holding, so the verdict can say when it must be recomputed.

use std::collections::HashMap;

use crate::internal::iso_from_ms;

use super::config::{Mode, Rule, Rules};
use super::verdict::Finding;

/// Unix ms of `2020-01-01T00:00:00.000Z`-style timestamps.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    // Found by fuzzing: an upstream `time` of year 10^30 overflowed the arithmetic below
    // (a panic in checked builds, nonsense times otherwise). Only real calendar values pass.
    let in_range = (1..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..=23).contains(&hh)
        && (0..=59).contains(&mm)
        && (0..=60).contains(&ss);
    if !in_range || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    // days_from_civil
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + millis)
}

/// `cooldown`: a version published (at `published`, Unix ms) less than `cooldown_hours` ago;
/// the finding holds until the returned time.
pub(super) fn cooldown(
    rules: &Rules,
    published: Option<i64>,
    now_ms: i64,
) -> Option<(Finding, i64)> {
    if rules.cooldown == Mode::Off {
        return None;
    }
    let t = published?;
    let until = t + i64::from(rules.cooldown_hours) * 3_600_000;
    (until > now_ms).then(|| {
        let finding = Finding {
            rule: Rule::Cooldown,
            mode: rules.cooldown,
            reason: format!(
                "published {}, less than {} hours ago (held until {})",
                iso_from_ms(t),
                rules.cooldown_hours,
                iso_from_ms(until)
            ),
        };
        (finding, until)
    })
}

/// `first-seen`: the package (its `time.created`) is less than `first_seen_days` old. The
/// finding applies to every version and holds until the returned time.
pub(super) fn first_seen(
    rules: &Rules,
    times: &HashMap<String, String>,
    now_ms: i64,
) -> Option<(Finding, i64)> {
    if rules.first_seen == Mode::Off {
        return None;
    }
    let created = times.get("created").and_then(|t| parse_iso_ms(t))?;
    let until = created + i64::from(rules.first_seen_days) * 86_400_000;
    (until > now_ms).then(|| {
        let finding = Finding {
            rule: Rule::FirstSeen,
            mode: rules.first_seen,
            reason: format!(
                "the package was created {}, less than {} days ago",
                iso_from_ms(created),
                rules.first_seen_days
            ),
        };
        (finding, until)
    })
}
