//! Log names (spec §3.3).
//!
//! 1–128 characters of `A–Z a–z 0–9 . _ -`, not starting with `.`. The rule keeps names safe
//! as path segments, storage key parts and metric-free labels: `../x`, `%2e%2e`, spaces, NUL
//! and separators are refused before anything reaches storage.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest log name accepted.
pub const MAX_LOG_NAME_LEN: usize = 128;

/// A validated log name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LogName(String);

/// Why a string is not a valid log name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("log name must be 1-128 characters of A-Z a-z 0-9 . _ - and must not start with '.'")]
pub struct InvalidLogName;

impl LogName {
    /// Parses and validates a log name.
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidLogName> {
        let s = s.into();
        let valid_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if s.is_empty()
            || s.len() > MAX_LOG_NAME_LEN
            || s.starts_with('.')
            || !s.as_bytes().iter().all(valid_char)
        {
            return Err(InvalidLogName);
        }
        Ok(Self(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for LogName {
    type Err = InvalidLogName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for LogName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "app-1", "App.Log_2", "x..y", &"n".repeat(128)] {
            assert!(LogName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_traversal_and_junk() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            ".hidden",
            "%2e%2e",
            "a b",
            "a\0b",
            "a/b",
            "a\\b",
            "é",
            "a:b",
            &"n".repeat(129),
        ] {
            assert_eq!(LogName::new(bad), Err(InvalidLogName), "{bad:?}");
        }
    }
}
