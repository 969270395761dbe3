//! Retention settings and erasure requests (spec §6.3): the wire shapes of
//! `GET/PUT /api/retention` and `POST /api/erasure`, shared by the server and the client, and
//! the validation every one of them goes through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::LogName;
use crate::query::{FieldFilter, Matcher};

/// Longest retention period, in days (100 years).
pub const MAX_DAYS: u64 = 36_500;
/// Most per-log retention rules of one tenant.
pub const MAX_LOG_RULES: usize = 1000;
/// Most logs one erasure request may name.
pub const MAX_ERASURE_LOGS: usize = 1000;
/// Longest erasure field path and string value, in bytes.
pub const MAX_FIELD_PATH: usize = 256;
pub const MAX_VALUE_BYTES: usize = 4096;

/// A tenant's retention: a default for every log and per-log overrides, in days.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days every log keeps its events; `null` falls back to the server's default
    /// (`NEURALLOG_RETENTION_DAYS`), and without one events are kept.
    #[serde(default)]
    pub default_days: Option<u64>,
    /// Per-log periods, overriding the default.
    #[serde(default)]
    pub logs: BTreeMap<String, u64>,
}

/// `PUT /api/retention`: the new settings, replacing the old ones whole. A log mapped to
/// `null` (or left out) has no rule of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionUpdate {
    #[serde(default)]
    pub default_days: Option<u64>,
    #[serde(default)]
    pub logs: BTreeMap<String, Option<u64>>,
}

/// `GET/PUT /api/retention`: 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionResponse {
    pub status: String,
    /// The tenant's default, `null` when it has none.
    pub default_days: Option<u64>,
    pub logs: BTreeMap<String, u64>,
    /// The server-wide default used when the tenant has none (`null`: keep forever).
    #[serde(default)]
    pub server_default_days: Option<u64>,
}

fn check_days(what: &str, d: u64) -> Result<(), String> {
    if (1..=MAX_DAYS).contains(&d) {
        Ok(())
    } else {
        Err(format!("{what} must be an integer from 1 to {MAX_DAYS}"))
    }
}

impl RetentionUpdate {
    /// Checks every value and returns the settings to store.
    pub fn validate(self) -> Result<RetentionSettings, String> {
        if let Some(d) = self.default_days {
            check_days("default_days", d)?;
        }
        if self.logs.len() > MAX_LOG_RULES {
            return Err(format!("at most {MAX_LOG_RULES} per-log rules are allowed"));
        }
        let mut logs = BTreeMap::new();
        for (name, days) in self.logs {
            let log = LogName::new(name.as_str())
                .map_err(|e| format!("logs: '{}': {e}", name.escape_debug()))?;
            if let Some(d) = days {
                check_days(&format!("logs.{log}"), d)?;
                logs.insert(log.to_string(), d);
            }
        }
        Ok(RetentionSettings {
            default_days: self.default_days,
            logs,
        })
    }
}

impl RetentionSettings {
    /// Days `log` keeps its events, if it has a period at all.
    pub fn days_for(&self, log: &LogName, server_default: Option<u64>) -> Option<u64> {
        self.logs
            .get(log.as_str())
            .copied()
            .or(self.default_days)
            .or(server_default)
    }
}

/// `POST /api/erasure`: remove every event whose field at `field` (a dotted path) equals
/// `value`, in the named logs or all of the tenant's logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// Dotted path into the event, e.g. `user.email`.
    pub field: String,
    /// A string, number or boolean; compared like a search's field filter (numbers
    /// numerically, never a string with a number).
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// Only these logs (default: all).
    #[serde(default)]
    pub logs: Option<Vec<String>>,
}

/// `POST /api/erasure`: 200.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErasureResponse {
    pub status: String,
    /// Events removed in all.
    pub erased: u64,
    /// Events removed per log (logs where some were).
    pub logs: BTreeMap<String, u64>,
}

/// A checked erasure: the matcher and the logs (`None`: all).
#[derive(Clone, Debug)]
pub struct Erasure {
    pub matcher: Matcher,
    pub logs: Option<Vec<LogName>>,
}

impl ErasureRequest {
    /// Checks the request.
    pub fn validate(&self) -> Result<Erasure, String> {
        if self.field.is_empty() || self.field.len() > MAX_FIELD_PATH {
            return Err(format!("field must be 1-{MAX_FIELD_PATH} bytes"));
        }
        if self.field.chars().any(char::is_control) {
            return Err("field must not hold control characters".into());
        }
        let raw = match &self.value {
            serde_json::Value::String(s) if s.len() <= MAX_VALUE_BYTES => {
                serde_json::to_string(s).map_err(|e| e.to_string())?
            }
            serde_json::Value::String(_) => {
                return Err(format!("value must be at most {MAX_VALUE_BYTES} bytes"));
            }
            v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.to_string(),
            _ => return Err("value must be a string, a number or a boolean".into()),
        };
        let filter = FieldFilter::new(&self.field, &raw)?;
        let logs = match &self.logs {
            None => None,
            Some(names) if names.is_empty() || names.len() > MAX_ERASURE_LOGS => {
                return Err(format!("logs must name 1-{MAX_ERASURE_LOGS} logs"));
            }
            Some(names) => {
                let mut out = Vec::with_capacity(names.len());
                for n in names {
                    let l = LogName::new(n.as_str())
                        .map_err(|e| format!("logs: '{}': {e}", n.escape_debug()))?;
                    if !out.contains(&l) {
                        out.push(l);
                    }
                }
                Some(out)
            }
        };
        Ok(Erasure {
            matcher: Matcher::new("", vec![filter]),
            logs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retention_updates_are_checked() {
        let ok: RetentionUpdate =
            serde_json::from_value(json!({"default_days": 30, "logs": {"app": 7, "old": null}}))
                .unwrap();
        let s = ok.validate().unwrap();
        assert_eq!(s.default_days, Some(30));
        assert_eq!(s.logs.len(), 1);
        assert_eq!(s.days_for(&LogName::new("app").unwrap(), None), Some(7));
        assert_eq!(s.days_for(&LogName::new("x").unwrap(), None), Some(30));
        let none = RetentionSettings::default();
        assert_eq!(none.days_for(&LogName::new("x").unwrap(), Some(9)), Some(9));
        for bad in [
            json!({"default_days": 0}),
            json!({"default_days": 36501}),
            json!({"logs": {"../etc": 3}}),
            json!({"logs": {"app": 0}}),
        ] {
            let u: RetentionUpdate = serde_json::from_value(bad.clone()).unwrap();
            assert!(u.validate().is_err(), "{bad}");
        }
        for bad in [
            json!({"default_days": -1}),
            json!({"default_days": 1.5}),
            json!({"default_days": "3"}),
            json!({"other": 1}),
        ] {
            assert!(
                serde_json::from_value::<RetentionUpdate>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn erasure_requests_are_checked() {
        let r = |v: serde_json::Value| serde_json::from_value::<ErasureRequest>(v).unwrap();
        let e = r(json!({"field": "user.email", "value": "a@b.c"}))
            .validate()
            .unwrap();
        assert!(e.matcher.matches(br#"{"user":{"email":"a@b.c"}}"#));
        assert!(!e.matcher.matches(br#"{"user":{"email":"x"}}"#));
        let n = r(json!({"field": "code", "value": 500, "logs": ["a", "a"]}))
            .validate()
            .unwrap();
        assert!(n.matcher.matches(br#"{"code":500.0}"#));
        assert!(!n.matcher.matches(br#"{"code":"500"}"#));
        assert_eq!(n.logs.unwrap().len(), 1);
        let s = r(json!({"field": "code", "value": "500"}))
            .validate()
            .unwrap();
        assert!(!s.matcher.matches(br#"{"code":500}"#));
        for bad in [
            json!({"field": "", "value": 1}),
            json!({"field": "a..b", "value": 1}),
            json!({"field": "a", "value": null}),
            json!({"field": "a", "value": [1]}),
            json!({"field": "a", "value": {"x": 1}}),
            json!({"field": "a", "value": 1, "logs": []}),
            json!({"field": "a", "value": 1, "logs": ["../x"]}),
            json!({"field": "a\u{0}b", "value": 1}),
        ] {
            assert!(r(bad.clone()).validate().is_err(), "{bad}");
        }
    }
}
