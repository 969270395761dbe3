//! Verified-token caches keyed by the SHA-256 of the token.
//!
//! Clients send the same bearer token with every request; verifying a signature or asking the
//! identity provider each time would cost far more than the request itself. A cache entry
//! maps the token's hash — never the token, so a memory dump or a debug print yields nothing a
//! client could replay — to the outcome, for a time the caller bounds by the token's `exp`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Most entries one cache holds; past it expired entries are dropped, and if that is not
/// enough the cache starts over (a flood of distinct tokens must not grow memory without
/// bound).
pub const MAX_ENTRIES: usize = 10_000;

/// The SHA-256 of a token: the only form in which a token is remembered.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lowercase hex, for tests and diagnostics.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

/// A bounded map from token hash to a value that expires.
pub(crate) struct HashCache<V> {
    entries: Mutex<HashMap<TokenHash, (Instant, V)>>,
}

impl<V: Clone> HashCache<V> {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, (Instant, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value for `hash`, if present and not expired.
    pub fn get(&self, hash: &TokenHash) -> Option<V> {
        let now = Instant::now();
        self.lock()
            .get(hash)
            .filter(|(until, _)| *until > now)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value` for `ttl` (nothing for a zero ttl).
    pub fn insert(&self, hash: TokenHash, ttl: Duration, value: V) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash, (now + ttl, value));
    }

    /// Forgets everything (the keys changed).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The hashes currently held.
    pub fn keys(&self) -> Vec<TokenHash> {
        self.lock().keys().copied().collect()
    }
}

/// How long an accepted token may be remembered: until its `exp` (never past it), at most
/// `cap`; not at all when it has no life left.
pub(crate) fn ttl_until(expires_at: Option<i64>, now: i64, cap: Duration) -> Duration {
    match expires_at {
        None => cap,
        Some(exp) if exp <= now => Duration::ZERO,
        Some(exp) => cap.min(Duration::from_secs(exp.abs_diff(now))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256() {
        assert_eq!(
            TokenHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ttl_never_outlives_the_token() {
        let cap = Duration::from_secs(60);
        assert_eq!(ttl_until(None, 1000, cap), cap);
        assert_eq!(ttl_until(Some(1010), 1000, cap), Duration::from_secs(10));
        assert_eq!(ttl_until(Some(5000), 1000, cap), cap);
        assert_eq!(ttl_until(Some(1000), 1000, cap), Duration::ZERO);
        assert_eq!(ttl_until(Some(10), 1000, cap), Duration::ZERO);
    }

    #[test]
    fn entries_expire_and_are_bounded() {
        let c: HashCache<u32> = HashCache::new();
        c.insert(TokenHash::of("a"), Duration::from_secs(60), 1);
        c.insert(TokenHash::of("z"), Duration::ZERO, 2);
        assert_eq!(c.get(&TokenHash::of("a")), Some(1));
        assert_eq!(c.get(&TokenHash::of("z")), None);
        for i in 0..MAX_ENTRIES + 5 {
            c.insert(TokenHash::of(&i.to_string()), Duration::from_secs(60), 0);
        }
        assert!(c.keys().len() <= MAX_ENTRIES);
        c.clear();
        assert!(c.keys().is_empty());
    }
}
