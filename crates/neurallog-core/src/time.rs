//! Timestamps: accepted as RFC 3339 text or epoch milliseconds, printed as RFC 3339 UTC with
//! millisecond precision (spec §3.2). Internally every time is `i64` milliseconds since the
//! Unix epoch.

use chrono::{DateTime, SecondsFormat, Utc};

/// Why a time parameter could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("time must be RFC 3339 (2024-01-31T12:00:00Z) or epoch milliseconds")]
pub struct InvalidTime;

/// The earliest and latest times accepted (years 1970 to 9999), so that every stored time
/// prints as a valid RFC 3339 timestamp.
const MIN_MS: i64 = 0;
const MAX_MS: i64 = 253_402_300_799_999;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Parses a query parameter or event field: RFC 3339 text, or an integer of epoch ms.
pub fn parse_time(s: &str) -> Result<i64, InvalidTime> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = s.parse().map_err(|_| InvalidTime)?;
        return in_range(ms);
    }
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| InvalidTime)?;
    in_range(t.timestamp_millis())
}

/// Reads an event's `timestamp` field value: a string (as [`parse_time`]) or a number of ms.
pub fn parse_json_time(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => parse_time(s).ok(),
        serde_json::Value::Number(n) => n.as_i64().and_then(|ms| in_range(ms).ok()),
        _ => None,
    }
}

fn in_range(ms: i64) -> Result<i64, InvalidTime> {
    if (MIN_MS..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(InvalidTime)
    }
}

/// Prints ms as `2024-01-31T12:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(format_ms(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
    }

    #[test]
    fn refuses_junk_and_out_of_range() {
        for bad in [
            "",
            "yesterday",
            "-5",
            "99999999999999999999",
            "2023-13-01T00:00:00Z",
            "253402300800000",
        ] {
            assert_eq!(parse_time(bad), Err(InvalidTime), "{bad}");
        }
        assert_eq!(parse_json_time(&serde_json::json!(true)), None);
        assert_eq!(parse_json_time(&serde_json::json!(-1)), None);
    }
}
