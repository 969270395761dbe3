//! The key ring: tenants' data keys, wrapped by the master key, kept as storage metadata.
//!
//! ```text
//! meta Tenant(t) "datakeys"         <key id, 16 hex>  ->  wrapped data key record (77 bytes)
//! meta Global    "datakey-tenants"  <tenant>          ->  empty (which tenants have keys)
//! ```
//!
//! A record is `version 1 | master key id [8] | created_at i64 LE | nonce [12] | key [32] |
//! tag [16]`: the data key sealed with AES-256-GCM under the master key, the associated data
//! binding it to its tenant, its key id and its creation time (so a record copied to another
//! tenant or id does not unwrap). The master key id says which master key wrapped it, so a
//! server holding a new and a previous master key knows which to use and re-wraps records
//! of the previous one ([`Keyring::check_and_rewrap`]).
//!
//! Keys are created on a tenant's first write, and loaded into memory on first use; the
//! cache is reloaded every [`REFRESH`] so that replicas sharing a Redis pick up a rotation.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use neurallog_core::{TenantId, time::now_ms};
use zeroize::Zeroizing;

use super::{Arc, TenantCipher};
use super::{CONTEXT, DataKey, KEY_LEN, KeyId, MasterKey, NONCE_LEN, TAG_LEN, TenantKeys};
use crate::{Result, Scope, Storage, StorageError};

/// Metadata space of a tenant's wrapped data keys.
pub const KEYS_SPACE: &str = "datakeys";
/// Global metadata space listing the tenants that have data keys.
pub const TENANTS_SPACE: &str = "datakey-tenants";
/// How long a replica trusts its cached keys before reading them again.
pub const REFRESH: Duration = Duration::from_secs(30);

const RECORD_VERSION: u8 = 1;
const RECORD_LEN: usize = 1 + 8 + 8 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Where wrapped data keys are kept: every [`Storage`] through its metadata records.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every wrapped key record of a tenant, by key id.
    async fn load_keys(&self, tenant: &TenantId) -> Result<Vec<(String, Vec<u8>)>>;
    /// Stores (or replaces) one record.
    async fn save_key(&self, tenant: &TenantId, id: &str, record: Vec<u8>) -> Result<()>;
    /// The tenants that have keys.
    async fn key_tenants(&self) -> Result<Vec<String>>;
    /// Notes that a tenant has keys.
    async fn add_key_tenant(&self, tenant: &TenantId) -> Result<()>;
}

#[async_trait]
impl<S: Storage + ?Sized> KeyStore for S {
    async fn load_keys(&self, tenant: &TenantId) -> Result<Vec<(String, Vec<u8>)>> {
        self.meta_list(Scope::Tenant(tenant), KEYS_SPACE).await
    }

    async fn save_key(&self, tenant: &TenantId, id: &str, record: Vec<u8>) -> Result<()> {
        self.meta_put(Scope::Tenant(tenant), KEYS_SPACE, id, record)
            .await
    }

    async fn key_tenants(&self) -> Result<Vec<String>> {
        Ok(self
            .meta_list(Scope::Global, TENANTS_SPACE)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    async fn add_key_tenant(&self, tenant: &TenantId) -> Result<()> {
        self.meta_put(Scope::Global, TENANTS_SPACE, tenant.as_str(), Vec::new())
            .await
    }
}

/// What [`Keyring::check_and_rewrap`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub tenants: usize,
    pub keys: usize,
    /// Keys that were wrapped by the previous master key and now are by the current one.
    pub rewrapped: usize,
}

struct Cached {
    loaded: Instant,
    keys: Arc<TenantKeys>,
}

/// The master key(s) and the cache of unwrapped data keys. One per server, shared by the
/// storage backend (which seals and opens) and the admin API (which rotates).
pub struct Keyring {
    master: MasterKey,
    previous: Option<MasterKey>,
    cache: RwLock<HashMap<TenantId, Cached>>,
    /// Serialises loading and creating, so that one process creates one first key.
    create: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("master", &self.master)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

fn mismatch(tenant: &TenantId, id: &str, wrapped_by: &str, configured: &str) -> StorageError {
    StorageError::corrupt(format!(
        "the master key does not match the stored data keys (data key {id} of tenant \
         {tenant} was wrapped by master key {wrapped_by}; the configured master key is \
         {configured})"
    ))
}

impl Keyring {
    /// A key ring wrapping with `master`; `previous` (during a master key rotation) still
    /// unwraps the records it wrapped.
    pub fn new(master: MasterKey, previous: Option<MasterKey>) -> Self {
        Self {
            master,
            previous,
            cache: RwLock::new(HashMap::new()),
            create: tokio::sync::Mutex::new(()),
        }
    }

    /// The id of the current master key (public).
    pub fn master_id(&self) -> String {
        self.master.id_hex()
    }

    /// The cipher of a tenant: its keys, loaded (or, on first use, created) when needed.
    pub async fn cipher(
        &self,
        store: &(impl KeyStore + ?Sized),
        tenant: &TenantId,
    ) -> Result<TenantCipher> {
        Ok(TenantCipher::sealed(
            tenant,
            self.tenant_keys(store, tenant).await?,
        ))
    }

    fn cached(&self, tenant: &TenantId) -> Option<(bool, Arc<TenantKeys>)> {
        let cache = self.cache.read().ok()?;
        cache
            .get(tenant)
            .map(|c| (c.loaded.elapsed() < REFRESH, c.keys.clone()))
    }

    fn remember(&self, tenant: &TenantId, keys: Arc<TenantKeys>) {
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(
                tenant.clone(),
                Cached {
                    loaded: Instant::now(),
                    keys,
                },
            );
        }
    }

    /// Reads a tenant's keys again now (a block named a key this replica does not have).
    pub async fn reload(
        &self,
        store: &(impl KeyStore + ?Sized),
        tenant: &TenantId,
    ) -> Result<TenantCipher> {
        let keys = {
            let _guard = self.create.lock().await;
            self.load(store, tenant).await?
        };
        match keys {
            Some(keys) => {
                let keys = Arc::new(keys);
                self.remember(tenant, keys.clone());
                Ok(TenantCipher::sealed(tenant, keys))
            }
            None => self.cipher(store, tenant).await,
        }
    }

    /// Drops a tenant's cached keys (after its data and keys were deleted).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(tenant);
        }
    }

    /// A tenant's keys, creating its first key when it has none.
    pub async fn tenant_keys(
        &self,
        store: &(impl KeyStore + ?Sized),
        tenant: &TenantId,
    ) -> Result<Arc<TenantKeys>> {
        let stale = match self.cached(tenant) {
            Some((true, keys)) => return Ok(keys),
            Some((false, keys)) => Some(keys),
            None => None,
        };
        let _guard = self.create.lock().await;
        if let Some((true, keys)) = self.cached(tenant) {
            return Ok(keys); // loaded while we waited
        }
        match self.load(store, tenant).await {
            Ok(Some(keys)) => {
                let keys = Arc::new(keys);
                self.remember(tenant, keys.clone());
                Ok(keys)
            }
            Ok(None) => {
                let key = DataKey::generate(now_ms());
                store.add_key_tenant(tenant).await?;
                store
                    .save_key(tenant, &key.id.to_string(), self.record(tenant, &key)?)
                    .await?;
                tracing::info!(%tenant, key_id = %key.id, "created the tenant's data key");
                let keys = Arc::new(
                    TenantKeys::new(vec![key])
                        .ok_or_else(|| StorageError::internal("no data key"))?,
                );
                self.remember(tenant, keys.clone());
                Ok(keys)
            }
            // A replica that cannot read the keys again (e.g. during a rolling master key
            // rotation) keeps the ones it has rather than failing every request.
            Err(e) => match stale {
                Some(keys) => {
                    tracing::warn!(%tenant, error = %e, "cannot reload data keys, using cached");
                    self.remember(tenant, keys.clone());
                    Ok(keys)
                }
                None => Err(e),
            },
        }
    }

    /// Makes a new data key current for the tenant's new blocks; older blocks keep opening
    /// with their own keys. Returns the new key's id.
    pub async fn rotate(
        &self,
        store: &(impl KeyStore + ?Sized),
        tenant: &TenantId,
    ) -> Result<KeyId> {
        let _guard = self.create.lock().await;
        let mut created = now_ms();
        // The new key must be the newest even if the clock went back.
        if let Some(old) = self.load(store, tenant).await? {
            created = created.max(old.keys().map(|k| k.created_at).max().unwrap_or(0) + 1);
        }
        let key = DataKey::generate(created);
        let id = key.id;
        store.add_key_tenant(tenant).await?;
        store
            .save_key(tenant, &id.to_string(), self.record(tenant, &key)?)
            .await?;
        let keys = self
            .load(store, tenant)
            .await?
            .ok_or_else(|| StorageError::internal("rotated key is missing"))?;
        self.remember(tenant, Arc::new(keys));
        tracing::info!(%tenant, key_id = %id, "rotated the tenant's data key");
        Ok(id)
    }

    /// Start-up check: every stored data key must unwrap with the current or the previous
    /// master key; those of the previous one are re-wrapped with the current one. Fails with
    /// "the master key does not match the stored data keys" otherwise.
    pub async fn check_and_rewrap(&self, store: &(impl KeyStore + ?Sized)) -> Result<RewrapReport> {
        let mut report = RewrapReport::default();
        for name in store.key_tenants().await? {
            let tenant = TenantId::new(name)
                .map_err(|_| StorageError::corrupt("stored data key tenant is invalid"))?;
            report.tenants += 1;
            for (id, record) in store.load_keys(&tenant).await? {
                let (key, by_previous) = self.open_record(&tenant, &id, &record)?;
                report.keys += 1;
                if by_previous {
                    store
                        .save_key(&tenant, &id, self.record(&tenant, &key)?)
                        .await?;
                    report.rewrapped += 1;
                }
            }
        }
        Ok(report)
    }

    /// Reads and unwraps a tenant's keys; `None` when it has none.
    async fn load(
        &self,
        store: &(impl KeyStore + ?Sized),
        tenant: &TenantId,
    ) -> Result<Option<TenantKeys>> {
        let mut keys = Vec::new();
        for (id, record) in store.load_keys(tenant).await? {
            keys.push(self.open_record(tenant, &id, &record)?.0);
        }
        Ok(TenantKeys::new(keys))
    }

    fn aad(tenant: &TenantId, id: KeyId, created_at: i64) -> Vec<u8> {
        let mut aad = Vec::with_capacity(CONTEXT.len() + 64);
        aad.extend_from_slice(CONTEXT);
        aad.extend_from_slice(b"datakey\0");
        aad.extend_from_slice(tenant.as_str().as_bytes());
        aad.push(0);
        aad.extend_from_slice(id.to_string().as_bytes());
        aad.push(0);
        aad.extend_from_slice(&created_at.to_le_bytes());
        aad
    }

    /// A key wrapped by the current master key, as stored.
    fn record(&self, tenant: &TenantId, key: &DataKey) -> Result<Vec<u8>> {
        let wrapped = self
            .master
            .wrap(&key.bytes, &Self::aad(tenant, key.id, key.created_at))?;
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.master.id());
        out.extend_from_slice(&key.created_at.to_le_bytes());
        out.extend_from_slice(&wrapped);
        Ok(out)
    }

    /// Unwraps a stored record; also says whether the previous master key wrapped it.
    fn open_record(&self, tenant: &TenantId, id: &str, record: &[u8]) -> Result<(DataKey, bool)> {
        let damaged = || {
            StorageError::corrupt(format!(
                "data key record {id} of tenant {tenant} is damaged"
            ))
        };
        let key_id = KeyId::parse(id).ok_or_else(damaged)?;
        if record.len() != RECORD_LEN || record[0] != RECORD_VERSION {
            return Err(damaged());
        }
        let mut master_id = [0u8; 8];
        master_id.copy_from_slice(&record[1..9]);
        let mut created = [0u8; 8];
        created.copy_from_slice(&record[9..17]);
        let created_at = i64::from_le_bytes(created);
        let (master, by_previous) = if master_id == self.master.id() {
            (&self.master, false)
        } else {
            match &self.previous {
                Some(p) if master_id == p.id() => (p, true),
                _ => {
                    let hex: String = master_id.iter().map(|b| format!("{b:02x}")).collect();
                    return Err(mismatch(tenant, id, &hex, &self.master.id_hex()));
                }
            }
        };
        let bytes: Zeroizing<[u8; KEY_LEN]> = master
            .unwrap_key(&record[17..], &Self::aad(tenant, key_id, created_at))
            .ok_or_else(|| {
                StorageError::corrupt(format!(
                    "data key {id} of tenant {tenant} failed its integrity check"
                ))
            })?;
        Ok((DataKey::new(key_id, created_at, bytes), by_previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records in memory, to test the ring apart from any backend.
    #[derive(Default)]
    struct Memory {
        keys: Mutex<HashMap<(String, String), Vec<u8>>>,
        tenants: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl KeyStore for Memory {
        async fn load_keys(&self, tenant: &TenantId) -> Result<Vec<(String, Vec<u8>)>> {
            let keys = self.keys.lock().expect("lock");
            let mut v: Vec<_> = keys
                .iter()
                .filter(|((t, _), _)| t == tenant.as_str())
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect();
            v.sort();
            Ok(v)
        }
        async fn save_key(&self, tenant: &TenantId, id: &str, record: Vec<u8>) -> Result<()> {
            self.keys
                .lock()
                .expect("lock")
                .insert((tenant.to_string(), id.to_owned()), record);
            Ok(())
        }
        async fn key_tenants(&self) -> Result<Vec<String>> {
            Ok(self.tenants.lock().expect("lock").clone())
        }
        async fn add_key_tenant(&self, tenant: &TenantId) -> Result<()> {
            let mut t = self.tenants.lock().expect("lock");
            if !t.contains(&tenant.to_string()) {
                t.push(tenant.to_string());
            }
            Ok(())
        }
    }

    fn master(b: u8) -> MasterKey {
        MasterKey::from_bytes(&[b; 32])
    }

    #[tokio::test]
    async fn keys_are_created_once_and_found_again() {
        let store = Memory::default();
        let t = TenantId::new("acme").expect("tenant");
        let ring = Keyring::new(master(1), None);
        let a = ring.tenant_keys(&store, &t).await.expect("create");
        let b = ring.tenant_keys(&store, &t).await.expect("cached");
        assert_eq!(a.current(), b.current());
        // Another replica (same master key) finds the same key.
        let other = Keyring::new(master(1), None);
        assert_eq!(
            other.tenant_keys(&store, &t).await.expect("load").current(),
            a.current()
        );
        assert_eq!(store.key_tenants().await.expect("tenants"), vec!["acme"]);
    }

    #[tokio::test]
    async fn rotation_keeps_old_keys() {
        let store = Memory::default();
        let t = TenantId::new("acme").expect("tenant");
        let ring = Keyring::new(master(1), None);
        let first = ring
            .tenant_keys(&store, &t)
            .await
            .expect("create")
            .current();
        let second = ring.rotate(&store, &t).await.expect("rotate");
        assert_ne!(first, second);
        let keys = ring.tenant_keys(&store, &t).await.expect("keys");
        assert_eq!(keys.current(), second);
        assert!(keys.get(first).is_some());
    }

    #[tokio::test]
    async fn wrong_master_key_is_refused_and_previous_is_rewrapped() {
        let store = Memory::default();
        let t = TenantId::new("acme").expect("tenant");
        let old = Keyring::new(master(1), None);
        let id = old.tenant_keys(&store, &t).await.expect("create").current();

        let wrong = Keyring::new(master(2), None);
        let e = wrong.check_and_rewrap(&store).await.expect_err("wrong key");
        assert!(
            e.message
                .starts_with("the master key does not match the stored data keys"),
            "{}",
            e.message
        );
        assert!(wrong.tenant_keys(&store, &t).await.is_err());

        let rotating = Keyring::new(master(2), Some(master(1)));
        let r = rotating.check_and_rewrap(&store).await.expect("rewrap");
        assert_eq!((r.tenants, r.keys, r.rewrapped), (1, 1, 1));
        // Now the new key alone suffices and the key is the same one.
        let new = Keyring::new(master(2), None);
        assert_eq!(
            new.check_and_rewrap(&store).await.expect("check").rewrapped,
            0
        );
        assert_eq!(
            new.tenant_keys(&store, &t).await.expect("keys").current(),
            id
        );
        assert!(old.check_and_rewrap(&store).await.is_err());
    }

    #[tokio::test]
    async fn records_cannot_move_between_tenants_or_be_edited() {
        let store = Memory::default();
        let (a, b) = (
            TenantId::new("a").expect("tenant"),
            TenantId::new("b").expect("tenant"),
        );
        let ring = Keyring::new(master(1), None);
        let id = ring
            .tenant_keys(&store, &a)
            .await
            .expect("create")
            .current();
        let record = store.load_keys(&a).await.expect("load").remove(0).1;
        // The record of tenant a, planted as tenant b's key.
        store
            .save_key(&b, &id.to_string(), record.clone())
            .await
            .expect("plant");
        let fresh = Keyring::new(master(1), None);
        let e = fresh.tenant_keys(&store, &b).await.expect_err("moved");
        assert!(e.message.contains("integrity"), "{}", e.message);
        for i in 0..record.len() {
            let mut r = record.clone();
            r[i] ^= 1;
            store.save_key(&a, &id.to_string(), r).await.expect("edit");
            assert!(
                Keyring::new(master(1), None)
                    .tenant_keys(&store, &a)
                    .await
                    .is_err(),
                "flip at {i}"
            );
        }
    }
}
