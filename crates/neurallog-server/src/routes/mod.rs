//! Route handlers, one module per resource, and the parameter parsing they share.

pub mod audit;
pub mod encryption;
pub mod keys;
pub mod logs;
pub mod meta;
pub mod search;
pub mod stats;
pub mod tenants;

use axum::extract::rejection::PathRejection;
use neurallog_core::{EntryId, LogName, query::TimeRange, time::parse_time};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query parameters in order, decoded. Dynamic names (`field.<path>`) rule out a fixed struct.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of any of `names` (a current name and the original server's).
    pub fn get_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.get(n))
    }

    /// Every pair.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `since`/`until` (or the original `start_time`/`end_time`).
    pub fn time_range(&self) -> Result<TimeRange, ApiError> {
        let one = |names: &[&str]| -> Result<Option<i64>, ApiError> {
            match self.get_any(names) {
                None | Some("") => Ok(None),
                Some(v) => parse_time(v).map(Some).map_err(|e| {
                    ApiError::bad_request("invalid_time", format!("{}: {e}", names[0]))
                }),
            }
        };
        let range = TimeRange {
            since: one(&["since", "start_time"])?,
            until: one(&["until", "end_time"])?,
        };
        if let (Some(s), Some(u)) = (range.since, range.until)
            && s > u
        {
            return Err(ApiError::bad_request(
                "invalid_time",
                "since is after until",
            ));
        }
        Ok(range)
    }

    /// `limit` with its default.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(neurallog_core::query::DEFAULT_LIMIT),
            Some(v) => neurallog_core::query::parse_limit(v)
                .map_err(|m| ApiError::bad_request("invalid_limit", m)),
        }
    }

    /// `cursor`, when present.
    pub fn cursor(&self) -> Result<Option<EntryId>, ApiError> {
        match self.get("cursor") {
            None | Some("") => Ok(None),
            Some(v) => EntryId::parse(v).map(Some).map_err(|_| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor value from a previous page",
                )
            }),
        }
    }
}

/// Validates a log name from the path.
pub fn log_name(raw: &str) -> Result<LogName, ApiError> {
    LogName::new(raw).map_err(|e| ApiError::bad_request("invalid_log_name", e.to_string()))
}

/// Turns an unusable path (bad percent-encoding) into the log-name error it amounts to.
pub fn path_error(_: PathRejection) -> ApiError {
    ApiError::bad_request(
        "invalid_log_name",
        neurallog_core::log_name::InvalidLogName.to_string(),
    )
}

/// Largest administration request body.
pub const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Parses an administration request body (a JSON object) into `T`.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_ADMIN_BODY {
        return Err(ApiError::payload_too_large(format!(
            "request body is larger than {MAX_ADMIN_BODY} bytes"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))
}
