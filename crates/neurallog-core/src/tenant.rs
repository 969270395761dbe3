//! Tenant identifiers.
//!
//! Tenant ids are DNS labels (RFC 1123: lowercase letters, digits and `-`, at most 63
//! characters, starting and ending with an alphanumeric) so that the operator can name a
//! Kubernetes namespace `tenant-<id>` after them, and so that they can never contain a path or
//! key separator.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The tenant that a server without `TENANT_ID` uses for its bootstrap key.
pub const DEFAULT_TENANT: &str = "default";

/// A validated tenant id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Why a string is not a valid tenant id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "tenant id must be a DNS label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)]
pub struct InvalidTenantId;

impl TenantId {
    /// Parses and validates a tenant id.
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidTenantId> {
        let s = s.into();
        let bytes = s.as_bytes();
        let valid_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(InvalidTenantId);
        };
        if bytes.len() > 63 || !bytes.iter().all(valid_char) || *first == b'-' || *last == b'-' {
            return Err(InvalidTenantId);
        }
        Ok(Self(s))
    }

    /// The default tenant of a single-tenant server.
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_owned())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "acme", "team-42", "0abc", &"x".repeat(63)] {
            assert!(TenantId::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "../x",
            "a/b",
            "a\0b",
            "é",
            &"x".repeat(64),
        ] {
            assert_eq!(TenantId::new(bad), Err(InvalidTenantId), "{bad:?}");
        }
    }
}
