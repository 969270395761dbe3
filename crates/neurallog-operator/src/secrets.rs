//! Generated tenant secrets and the type that keeps them out of logs.
//!
//! The operator creates three secrets per tenant (guide: "Kubernetes Secrets"): the bootstrap
//! API key, the Redis password and the master key that wraps the tenant's data keys. They are
//! generated when absent and never overwritten, except by a scheduled rotation (guide: "Secret
//! Rotation"), which replaces the API key and the Redis password only: replacing the master key
//! would make every wrapped data key unreadable, so it is rotated by the server's own key
//! rotation, not by the operator.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Name of the Secret that holds the bootstrap API key.
pub const API_KEYS: &str = "api-keys";
/// Key of the API key in [`API_KEYS`] (the guide's name).
pub const API_KEY_KEY: &str = "server-key";
/// Name of the Secret that holds the Redis password.
pub const REDIS_AUTH: &str = "redis-auth";
/// Key of the password in [`REDIS_AUTH`].
pub const REDIS_PASSWORD_KEY: &str = "password";
/// Name of the Secret that holds the master key.
pub const MASTER_KEY: &str = "master-key";
/// Key of the master key in [`MASTER_KEY`].
pub const MASTER_KEY_KEY: &str = "master-key";

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must write it into a Secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which of the tenant's secrets a value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// `api-keys/server-key`.
    ApiKey,
    /// `redis-auth/password`.
    RedisPassword,
    /// `master-key/master-key`.
    MasterKey,
}

impl SecretKind {
    /// Every kind, in the order the reconciler reads and creates them.
    pub const ALL: [SecretKind; 3] = [Self::ApiKey, Self::RedisPassword, Self::MasterKey];

    /// Secret name and data key.
    pub fn location(self) -> (&'static str, &'static str) {
        match self {
            Self::ApiKey => (API_KEYS, API_KEY_KEY),
            Self::RedisPassword => (REDIS_AUTH, REDIS_PASSWORD_KEY),
            Self::MasterKey => (MASTER_KEY, MASTER_KEY_KEY),
        }
    }

    /// Whether a scheduled rotation replaces this secret.
    pub fn rotates(self) -> bool {
        !matches!(self, Self::MasterKey)
    }

    /// A fresh value in the format the server expects.
    pub fn generate(self) -> SecretString {
        match self {
            Self::ApiKey => generate_api_key(),
            Self::RedisPassword => SecretString::new(URL_SAFE_NO_PAD.encode(random_bytes::<32>())),
            Self::MasterKey => SecretString::new(STANDARD.encode(random_bytes::<32>())),
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // NB: rand's thread RNG is a CSPRNG seeded from the OS, fit for key material.
    rand::fill(&mut b[..]);
    b
}

/// An API key in the server's format `nl_<key id>_<secret>` (spec §4.1): 256 bits of secret.
pub fn generate_api_key() -> SecretString {
    let id = hex(&random_bytes::<8>());
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    SecretString::new(format!("nl_{id}_{secret}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }

    #[test]
    fn api_keys_have_the_server_format_and_256_bits() {
        let k = generate_api_key();
        let parts: Vec<_> = k.expose().splitn(3, '_').collect();
        assert_eq!(parts[0], "nl");
        assert_eq!(parts[1].len(), 16);
        let secret = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
        assert_eq!(secret.len(), 32);
        assert_ne!(generate_api_key(), k);
    }

    #[test]
    fn master_key_is_32_bytes_of_base64() {
        let k = SecretKind::MasterKey.generate();
        assert_eq!(STANDARD.decode(k.expose()).expect("base64").len(), 32);
    }

    #[test]
    fn only_the_master_key_is_exempt_from_rotation() {
        assert!(SecretKind::ApiKey.rotates());
        assert!(SecretKind::RedisPassword.rotates());
        assert!(!SecretKind::MasterKey.rotates());
    }
}
