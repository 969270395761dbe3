//! Read and search queries, cursors and the event matcher.
//!
//! A log reads newest first, in id order. Pagination is by cursor: the id of the last entry a
//! page returned; the next page holds the entries strictly older than it. Time bounds
//! (`since`, `until`) filter on the entry's timestamp.
//!
//! Text search is a case-insensitive (ASCII letters) substring match over the event's JSON
//! text, keys included, like a line filter. Field filters compare the JSON value at a path
//! with a typed value.

use serde_json::Value;

use crate::{EntryId, LogName};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 10_000;

/// A time window over entry timestamps, both ends inclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl TimeRange {
    /// Whether `ts` lies in the window.
    pub fn contains(&self, ts: i64) -> bool {
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts <= u)
    }

    /// Whether any time in `[min, max]` lies in the window.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.since.is_none_or(|s| max >= s) && self.until.is_none_or(|u| min <= u)
    }
}

/// Reading one log newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadQuery {
    pub range: TimeRange,
    /// At most this many entries (1..=[`MAX_LIMIT`]).
    pub limit: usize,
    /// Only entries older than this id (the cursor of the previous page).
    pub before: Option<EntryId>,
}

impl Default for ReadQuery {
    fn default() -> Self {
        Self {
            range: TimeRange::default(),
            limit: DEFAULT_LIMIT,
            before: None,
        }
    }
}

/// Which logs a search covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogScope {
    /// One log.
    One(LogName),
    /// Every log of the tenant.
    All,
}

/// A search over one or all logs of a tenant, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchQuery {
    pub scope: LogScope,
    pub matcher: Matcher,
    pub range: TimeRange,
    pub limit: usize,
    pub before: Option<EntryId>,
}

/// Parses a cursor parameter.
pub fn parse_cursor(s: &str) -> Result<EntryId, crate::id::InvalidEntryId> {
    EntryId::parse(s)
}

/// Parses a `limit` parameter: 1..=MAX_LIMIT.
pub fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("limit must be an integer from 1 to {MAX_LIMIT}")),
    }
}

/// The JSON path and typed value of one `field.<path>=<value>` filter.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldFilter {
    path: Vec<String>,
    value: Value,
}

/// Longest accepted filter path, in segments.
const MAX_PATH_SEGMENTS: usize = 32;

impl FieldFilter {
    /// Builds a filter from the dotted path after `field.` and the raw parameter value.
    ///
    /// The value is typed: `500`, `true`, `null` and `"quoted"` are read as JSON; anything else
    /// is a string. A number matches numerically (`500` matches `500.0`), never a string.
    pub fn new(path: &str, raw_value: &str) -> Result<Self, String> {
        let path: Vec<String> = path.split('.').map(str::to_owned).collect();
        if path.is_empty() || path.len() > MAX_PATH_SEGMENTS || path.iter().any(String::is_empty) {
            return Err(format!(
                "field filter path must be 1-{MAX_PATH_SEGMENTS} non-empty segments separated by '.'"
            ));
        }
        let value = match serde_json::from_str::<Value>(raw_value) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null | Value::String(_))) => v,
            _ => Value::String(raw_value.to_owned()),
        };
        Ok(Self { path, value })
    }

    /// Whether the event (`data` of an entry) matches.
    ///
    /// Paths resolve against the entry `{id, name, timestamp, data}`: `data.status` reads the
    /// event's `status`. A path whose first segment is not one of those four resolves inside
    /// `data` directly, so `status` works too.
    pub fn matches(&self, data: &Value) -> bool {
        let segments = match self.path.first().map(String::as_str) {
            Some("data") => &self.path[1..],
            _ => &self.path[..],
        };
        let mut cur = data;
        for seg in segments {
            cur = match cur {
                Value::Object(m) => match m.get(seg) {
                    Some(v) => v,
                    None => return false,
                },
                Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                    Some(v) => v,
                    None => return false,
                },
                _ => return false,
            };
        }
        values_equal(cur, &self.value)
    }
}

fn values_equal(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => actual == wanted,
    }
}

/// Decides whether an event matches a search: text and field filters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matcher {
    /// The text query, ASCII-lowercased; empty means no text condition.
    needle: Vec<u8>,
    filters: Vec<FieldFilter>,
}

impl Matcher {
    /// A matcher for `text` (may be empty) and the field filters.
    pub fn new(text: &str, filters: Vec<FieldFilter>) -> Self {
        Self {
            needle: text.as_bytes().to_ascii_lowercase(),
            filters,
        }
    }

    /// The lowercased text needle (empty when the search has no text).
    pub fn needle(&self) -> &[u8] {
        &self.needle
    }

    /// Whether the search has field filters (which need the event parsed).
    pub fn has_filters(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Text condition on an event's JSON text.
    pub fn text_matches(&self, event_json: &[u8]) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        let lowered = event_json.to_ascii_lowercase();
        memchr::memmem::find(&lowered, &self.needle).is_some()
    }

    /// Field conditions on an event's JSON text.
    pub fn filters_match(&self, event_json: &[u8]) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<Value>(event_json) else {
            return false;
        };
        self.filters.iter().all(|f| f.matches(&v))
    }

    /// Both conditions.
    pub fn matches(&self, event_json: &[u8]) -> bool {
        self.text_matches(event_json) && self.filters_match(event_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_field_filters() {
        let ev = json!({"status": 500, "code": "500", "ok": true, "user": {"id": "u1"}, "tags": ["a", "b"]});
        let f = |p: &str, v: &str| FieldFilter::new(p, v).unwrap().matches(&ev);
        assert!(f("data.status", "500"));
        assert!(f("status", "500.0"));
        assert!(!f("status", "\"500\""));
        assert!(f("code", "\"500\""));
        assert!(!f("code", "500"), "a number filter never matches a string");
        assert!(f("ok", "true"));
        assert!(f("data.user.id", "u1"));
        assert!(f("tags.1", "b"));
        assert!(!f("user.missing", "x"));
        assert!(FieldFilter::new("a..b", "1").is_err());
        assert!(FieldFilter::new(&vec!["a"; 33].join("."), "1").is_err());
    }

    #[test]
    fn text_is_case_insensitive() {
        let m = Matcher::new("ERROR", vec![]);
        assert!(m.matches(br#"{"msg":"an error occurred"}"#));
        assert!(!m.matches(br#"{"msg":"all fine"}"#));
        assert!(Matcher::default().matches(b"{}"));
    }

    #[test]
    fn time_range() {
        let r = TimeRange {
            since: Some(10),
            until: Some(20),
        };
        assert!(r.contains(10) && r.contains(20) && !r.contains(21));
        assert!(r.overlaps(0, 10) && r.overlaps(20, 30) && !r.overlaps(21, 30));
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("1"), Ok(1));
        assert!(
            parse_limit("0").is_err()
                && parse_limit("10001").is_err()
                && parse_limit("-1").is_err()
        );
    }
}
