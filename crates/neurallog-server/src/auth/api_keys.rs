//! API keys (spec §4.1): `nl_<id>_<secret>`, stored only as a keyed hash.
//!
//! A key record lives in the global metadata space [`KEYS_SPACE`] under its id (so one read
//! finds it whatever its tenant); its last-used time lives apart in [`USED_SPACE`], written
//! lazily in the background, so that a late usage write can never bring back a revoked record.
//!
//! The hash is HMAC-SHA256 of the secret part under a 32-byte *pepper* (see [`KeyHasher`]).
//! Records are cached for at most [`CACHE_TTL`], which bounds how long a revocation takes to
//! reach every replica sharing the store. Unknown ids are cached too, and verifying one costs
//! the same HMAC and constant-time comparison as a wrong secret, so neither the answer nor its
//! timing tells whether an id exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use neurallog_core::TenantId;
use neurallog_core::time::now_ms;
use neurallog_storage::{Scope, Storage, StorageError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Metadata space of key records (global scope).
pub const KEYS_SPACE: &str = "api-keys";
/// Metadata space of last-used times (global scope).
pub const USED_SPACE: &str = "api-key-used";
/// Metadata space and key of the stored pepper (when no master key provides one).
pub const PEPPER_SPACE: &str = "settings";
pub const PEPPER_KEY: &str = "api-key-pepper";
/// How long a key record may be served from memory.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// How often a key's last-used time is written at most.
pub const USED_INTERVAL: Duration = Duration::from_secs(60);
/// Cached lookups at most (unknown ids included); the cache starts over beyond it.
const CACHE_MAX: usize = 10_000;
/// Hex digits of a key id.
const ID_LEN: usize = 12;

/// A stored API key: everything but the key itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub tenant: TenantId,
    pub role: String,
    pub logs: Option<Vec<String>>,
    /// Hex HMAC-SHA256 of the secret part.
    pub hash: String,
    /// Epoch ms after which the key no longer works.
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
}

impl KeyRecord {
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// Keyed hashing of key secrets.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: [u8; 32],
    /// A hash no secret has, compared against when the id is unknown.
    dummy: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher([redacted])")
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // NB: HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl KeyHasher {
    /// Uses `pepper` as it is.
    pub fn new(pepper: [u8; 32]) -> Self {
        let mut dummy = [0u8; 32];
        rand::rng().fill_bytes(&mut dummy);
        Self { pepper, dummy }
    }

    /// Derives the pepper from a longer-lived secret (the master key) with HKDF-SHA256
    /// (RFC 5869, one output block), so the pepper itself is never stored.
    pub fn derive(ikm: &[u8]) -> Self {
        let prk = hmac(b"neurallog-api-key-pepper-salt", &[ikm]);
        Self::new(hmac(&prk, &[b"neurallog api-key pepper v1", &[1]]))
    }

    /// Loads the pepper from the store's global metadata, generating it on first use.
    pub async fn load_or_generate(storage: &dyn Storage) -> Result<Self, StorageError> {
        if let Some(p) = read_pepper(storage).await? {
            return Ok(Self::new(p));
        }
        let mut p = [0u8; 32];
        rand::rng().fill_bytes(&mut p);
        storage
            .meta_put(Scope::Global, PEPPER_SPACE, PEPPER_KEY, p.to_vec())
            .await?;
        // NB: two replicas starting together on an empty store may both write; both then use
        // whichever write the store kept.
        Ok(Self::new(read_pepper(storage).await?.unwrap_or(p)))
    }

    fn mac(&self, secret: &str) -> [u8; 32] {
        hmac(&self.pepper, &[secret.as_bytes()])
    }

    /// Hex hash of a secret, for a new record.
    pub fn hash_hex(&self, secret: &str) -> String {
        crate::audit::chain::hex(&self.mac(secret))
    }

    /// Whether `secret` hashes to `stored_hex`, in constant time. With no record, compares
    /// against the dummy hash so that the work done is the same.
    fn matches(&self, secret: &str, stored_hex: Option<&str>) -> bool {
        let mac = self.mac(secret);
        let stored = stored_hex.and_then(unhex32);
        let target = stored.unwrap_or(self.dummy);
        let equal: bool = mac.ct_eq(&target).into();
        equal && stored.is_some()
    }
}

async fn read_pepper(storage: &dyn Storage) -> Result<Option<[u8; 32]>, StorageError> {
    Ok(storage
        .meta_get(Scope::Global, PEPPER_SPACE, PEPPER_KEY)
        .await?
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()))
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Splits `nl_<id>_<secret>`; None when the shape is wrong.
pub fn split_key(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix("nl_")?;
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?);
    let secret = secret.strip_prefix('_')?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (id_ok && (1..=256).contains(&secret.len())).then_some((id, secret))
}

/// A new key: its id and the full `nl_<id>_<secret>` text, 256 random bits of secret.
pub fn new_key() -> (String, Secret) {
    let mut rng = rand::rng();
    let mut id = [0u8; ID_LEN / 2];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = crate::audit::chain::hex(&id);
    // URL-safe base64 may contain '_'; the id has a fixed length, so the key still splits.
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let key = Secret::new(format!("nl_{id}_{secret}"));
    (id, key)
}

/// A cached lookup: when it was read, and the record if there was one.
type Cached = (Instant, Option<Arc<KeyRecord>>);

/// The key records of the store, with a short-lived cache.
#[derive(Debug)]
pub struct KeyStore {
    storage: Arc<dyn Storage>,
    hasher: KeyHasher,
    cache: Mutex<HashMap<String, Cached>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl KeyStore {
    pub fn new(storage: Arc<dyn Storage>, hasher: KeyHasher) -> Self {
        Self {
            storage,
            hasher,
            cache: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// The record of a presented key, when the key is valid now: right secret, not revoked,
    /// not expired. Storage faults are errors (503), never a silent refusal or acceptance.
    pub async fn verify(&self, presented: &str) -> Result<Option<Arc<KeyRecord>>, StorageError> {
        let Some((id, secret)) = split_key(presented) else {
            self.hasher.matches(presented, None);
            return Ok(None);
        };
        let record = self.lookup(id).await?;
        let ok = self
            .hasher
            .matches(secret, record.as_ref().map(|r| r.hash.as_str()));
        match record {
            Some(r) if ok && !r.expired(now_ms()) => {
                self.touch(&r.id);
                Ok(Some(r))
            }
            _ => Ok(None),
        }
    }

    async fn lookup(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, StorageError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, rec)) = cache.get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(rec.clone());
        }
        let rec = self.get(id).await?.map(Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(id.to_owned(), (Instant::now(), rec.clone()));
        }
        Ok(rec)
    }

    /// Records that a key was used, at most once per [`USED_INTERVAL`], in the background.
    fn touch(&self, id: &str) {
        let due = match self.touched.lock() {
            Ok(mut t) => {
                let due = t.get(id).is_none_or(|at| at.elapsed() >= USED_INTERVAL);
                if due {
                    if t.len() >= CACHE_MAX {
                        t.clear();
                    }
                    t.insert(id.to_owned(), Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let storage = self.storage.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                let now = now_ms().to_string().into_bytes();
                if let Err(e) = storage.meta_put(Scope::Global, USED_SPACE, &id, now).await {
                    tracing::debug!(error = %e, "key last-used time not stored");
                }
            });
        }
    }

    /// A record straight from the store.
    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StorageError> {
        let Some(bytes) = self.storage.meta_get(Scope::Global, KEYS_SPACE, id).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::error!(key_id = id, error = %e, "unreadable API key record");
                Ok(None)
            }
        }
    }

    /// Stores a new key and returns it with its record.
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        name: String,
        tenant: TenantId,
        role: String,
        logs: Option<Vec<String>>,
        expires_at: Option<i64>,
        created_by: String,
    ) -> Result<(Secret, KeyRecord), StorageError> {
        loop {
            let (id, key) = new_key();
            if self.get(&id).await?.is_some() {
                continue; // 48-bit ids: a collision is rare, but must not overwrite a key
            }
            let secret = split_key(key.expose()).map(|(_, s)| s).unwrap_or_default();
            let record = KeyRecord {
                id: id.clone(),
                name,
                tenant,
                role,
                logs,
                hash: self.hasher.hash_hex(secret),
                expires_at,
                created_at: now_ms(),
                created_by,
            };
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            self.storage
                .meta_put(Scope::Global, KEYS_SPACE, &id, bytes)
                .await?;
            self.forget(&id);
            return Ok((key, record));
        }
    }

    /// Rewrites a record (rotation shortens the old key's life).
    pub async fn put(&self, record: &KeyRecord) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.storage
            .meta_put(Scope::Global, KEYS_SPACE, &record.id, bytes)
            .await?;
        self.forget(&record.id);
        Ok(())
    }

    /// Removes a key; `false` when there was none.
    pub async fn revoke(&self, id: &str) -> Result<bool, StorageError> {
        let existed = self
            .storage
            .meta_delete(Scope::Global, KEYS_SPACE, id)
            .await?;
        self.storage
            .meta_delete(Scope::Global, USED_SPACE, id)
            .await?;
        self.forget(id);
        Ok(existed)
    }

    fn forget(&self, id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(id);
        }
    }

    /// Every key of `tenant` (all tenants when None), with its last-used time.
    pub async fn list(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<(KeyRecord, Option<i64>)>, StorageError> {
        let used: HashMap<String, i64> = self
            .storage
            .meta_list(Scope::Global, USED_SPACE)
            .await?
            .into_iter()
            .filter_map(|(k, v)| Some((k, std::str::from_utf8(&v).ok()?.parse().ok()?)))
            .collect();
        Ok(self
            .storage
            .meta_list(Scope::Global, KEYS_SPACE)
            .await?
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice::<KeyRecord>(&v).ok())
            .filter(|r| tenant.is_none_or(|t| &r.tenant == t))
            .map(|r| {
                let u = used.get(&r.id).copied();
                (r, u)
            })
            .collect())
    }

    /// Revokes every key of a tenant (when the tenant is deleted).
    pub async fn revoke_tenant(&self, tenant: &TenantId) -> Result<usize, StorageError> {
        let keys = self.list(Some(tenant)).await?;
        for (r, _) in &keys {
            self.revoke(&r.id).await?;
        }
        Ok(keys.len())
    }
}

/// Parses a duration: seconds (`3600`) or a number with a unit `s`, `m`, `h`, `d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b's' => (&s[..s.len() - 1], 1),
        b'm' => (&s[..s.len() - 1], 60),
        b'h' => (&s[..s.len() - 1], 3600),
        b'd' => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 12 {
        return None;
    }
    let secs = num.parse::<u64>().ok()?.checked_mul(mult)?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_format_and_split_back() {
        let (id, key) = new_key();
        let (i, s) = split_key(key.expose()).unwrap();
        assert_eq!(i, id);
        assert_eq!(s.len(), 43, "256 bits in unpadded base64");
        assert_eq!(key.expose().len(), 3 + 12 + 1 + 43);
        for bad in [
            "",
            "nl_",
            "nl_abc_def",
            "xx_0123456789ab_s",
            "nl_0123456789AB_s",
            "nl_0123456789ab_",
            "nl_0123456789abs",
        ] {
            assert_eq!(split_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keyed_hash_depends_on_the_pepper() {
        let a = KeyHasher::new([1; 32]);
        let b = KeyHasher::new([2; 32]);
        assert_ne!(a.hash_hex("s"), b.hash_hex("s"));
        let h = a.hash_hex("s");
        assert!(a.matches("s", Some(&h)));
        assert!(!a.matches("t", Some(&h)));
        assert!(!a.matches("s", None));
        assert!(!a.matches("s", Some("zz")));
        assert_ne!(
            KeyHasher::derive(b"m").pepper,
            KeyHasher::derive(b"n").pepper
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        for bad in ["", "d", "-1", "1.5h", "1w", "99999999999999999d", "1 d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
