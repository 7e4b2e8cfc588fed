//! Time as the CLI reads and prints it: `--since` values, UTC timestamps, "5m ago".

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time: use a duration (90s, 10m, 2h, 1d, 1h30m), RFC 3339 (2025-01-31T12:00:00Z) or unix milliseconds")]
pub struct TimeError(pub String);

/// Parses `--since`: a duration back from `now_unix_ms`, an RFC 3339 timestamp, or unix ms.
pub fn parse_since(text: &str, now_unix_ms: i64) -> Result<i64, TimeError> {
    let text = text.trim();
    let err = || TimeError(text.to_owned());
    if text.is_empty() {
        return Err(err());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| err());
    }
    if let Some(ms) = parse_duration_ms(text) {
        return Ok(now_unix_ms.saturating_sub(ms));
    }
    parse_rfc3339(text).ok_or_else(err)
}

/// `90s`, `10m`, `2h`, `1d`, `1w`, `500ms`, and sums like `1h30m`.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (a space instead of `T` is accepted), or a bare date.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (y, mo, d) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if parts.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let Some(time) = time else {
        return Some(ms);
    };
    let (clock, offset_ms) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let sign = if time.as_bytes()[i] == b'-' { -1 } else { 1 };
        let (oh, om) = time[i + 1..].split_once(':')?;
        let (oh, om) = (num(oh)?, num(om)?);
        if oh > 23 || om > 59 {
            return None;
        }
        (&time[..i], sign * (oh * 60 + om) * 60_000)
    } else {
        return None;
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let mut fields = hms.split(':');
    let (h, mi, s) = (
        num(fields.next()?)?,
        num(fields.next()?)?,
        num(fields.next()?)?,
    );
    if fields.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    ms += ((h * 60 + mi) * 60 + s) * 1_000;
    if let Some(frac) = frac {
        num(frac)?;
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms += num(&digits)?;
    }
    Some(ms - offset_ms)
}

/// `2025-01-31T12:00:00Z`; with `millis`, `2025-01-31T12:00:00.123Z`.
pub fn format_utc(unix_ms: i64, millis: bool) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let rem = unix_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, ms) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000,
    );
    if millis {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`; `never` for 0.
pub fn relative(unix_ms: i64, now_unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "never".into();
    }
    let secs = (now_unix_ms - unix_ms) / 1_000;
    if secs < 0 {
        return "just now".into();
    }
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3_599 => format!("{}m ago", secs / 60),
        3_600..=86_399 => format!("{}h ago", secs / 3_600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn durations() {
        assert_eq!(parse_since("10m", NOW), Ok(NOW - 600_000));
        assert_eq!(parse_since("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_since("90s", NOW), Ok(NOW - 90_000));
        assert_eq!(parse_since("1d", NOW), Ok(NOW - 86_400_000));
        assert_eq!(parse_since("1h30m", NOW), Ok(NOW - 5_400_000));
        assert_eq!(parse_since("500ms", NOW), Ok(NOW - 500));
        for bad in [
            "",
            "m",
            "10x",
            "1h-",
            "ten minutes",
            "99999999999999999999h",
        ] {
            assert!(parse_since(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_ms_and_rfc3339() {
        assert_eq!(parse_since("1700000000000", NOW), Ok(1_700_000_000_000));
        assert_eq!(parse_since("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", NOW),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_since("2023-11-14T23:13:20.5+01:00", NOW),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_since("2023-11-14 22:13:20.123Z", NOW),
            Ok(1_700_000_000_123)
        );
        assert_eq!(parse_since("2024-02-29", NOW), Ok(1_709_164_800_000));
        for bad in ["2023-13-01", "2023-11-14T25:00:00Z", "2023-11-14T22:13:20"] {
            assert!(parse_since(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(format_utc(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_utc(1_700_000_000_123, true),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(format_utc(1_709_164_800_000, false), "2024-02-29T00:00:00Z");
        for ms in [0, 951_782_400_000, 1_700_000_000_123, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339(&format_utc(ms, true)), Some(ms));
        }
        assert_eq!(relative(NOW - 5_000, NOW), "5s ago");
        assert_eq!(relative(NOW - 300_000, NOW), "5m ago");
        assert_eq!(relative(NOW - 7_200_000, NOW), "2h ago");
        assert_eq!(relative(0, NOW), "never");
    }
}
