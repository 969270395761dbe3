//! Metadata records and audit sequences of the embedded store.
//!
//! Two keyspaces beside the logs:
//!
//! ```text
//! meta:   <scope> <space> 0x00 <key>     ->  value
//! audit:  <scope> <sequence, 8 bytes BE>  ->  record
//! scope:  0x01 (server-wide) | 0x02 <tenant> 0x00
//! ```
//!
//! Space and key names are printable ASCII and tenant ids never contain 0x00, so one scope's
//! keys are exactly those under its prefix. These writes are rare (keys, settings, one audit
//! batch at a time) and do not go through the block writer: each is its own atomic batch,
//! synced before it returns. Audit appends are serialised by a lock so that sequence numbers
//! are dense.

use std::sync::Mutex;

use fjall::{Database, Keyspace, PersistMode};

use super::io_err;
use crate::{Result, Scope, StorageError, check_record_name};

/// The two keyspaces and the lock that orders audit appends.
pub(super) struct Records {
    meta: Keyspace,
    audit: Keyspace,
    audit_lock: Mutex<()>,
}

/// The key prefix of a scope.
fn scope_prefix(scope: Scope<'_>) -> Vec<u8> {
    match scope {
        Scope::Global => vec![1],
        Scope::Tenant(t) => {
            let mut p = Vec::with_capacity(t.as_str().len() + 2);
            p.push(2);
            p.extend_from_slice(t.as_str().as_bytes());
            p.push(0);
            p
        }
    }
}

fn space_prefix(scope: Scope<'_>, space: &str) -> Result<Vec<u8>> {
    check_record_name("space", space)?;
    let mut p = scope_prefix(scope);
    p.extend_from_slice(space.as_bytes());
    p.push(0);
    Ok(p)
}

fn record_key(scope: Scope<'_>, space: &str, key: &str) -> Result<Vec<u8>> {
    check_record_name("key", key)?;
    let mut k = space_prefix(scope, space)?;
    k.extend_from_slice(key.as_bytes());
    Ok(k)
}

fn audit_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn decode_seq(prefix_len: usize, key: &[u8]) -> Result<u64> {
    key.get(prefix_len..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StorageError::corrupt("audit key has a bad sequence number"))
}

impl Records {
    pub(super) fn open(db: &Database) -> Result<Self> {
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .map_err(io_err)?;
        let audit = db
            .keyspace("audit", fjall::KeyspaceCreateOptions::default)
            .map_err(io_err)?;
        Ok(Self {
            meta,
            audit,
            audit_lock: Mutex::new(()),
        })
    }

    pub(super) fn get(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let k = record_key(scope, space, key)?;
        Ok(self.meta.get(k).map_err(io_err)?.map(|v| v.to_vec()))
    }

    pub(super) fn put(
        &self,
        db: &Database,
        scope: Scope<'_>,
        space: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        let k = record_key(scope, space, key)?;
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.meta, k, value);
        batch.commit().map_err(io_err)
    }

    pub(super) fn delete(
        &self,
        db: &Database,
        scope: Scope<'_>,
        space: &str,
        key: &str,
    ) -> Result<bool> {
        let k = record_key(scope, space, key)?;
        if !self.meta.contains_key(&k).map_err(io_err)? {
            return Ok(false);
        }
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.meta, k);
        batch.commit().map_err(io_err)?;
        Ok(true)
    }

    pub(super) fn list(&self, scope: Scope<'_>, space: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = space_prefix(scope, space)?;
        let mut out = Vec::new();
        for kv in self.meta.prefix(&prefix) {
            let (k, v) = kv.into_inner().map_err(io_err)?;
            let name = k
                .get(prefix.len()..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| StorageError::corrupt("metadata key is not text"))?;
            out.push((name.to_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn next_seq(&self, prefix: &[u8]) -> Result<u64> {
        match self.audit.prefix(prefix).next_back() {
            None => Ok(0),
            Some(kv) => {
                let (k, _) = kv.into_inner().map_err(io_err)?;
                Ok(decode_seq(prefix.len(), &k)? + 1)
            }
        }
    }

    pub(super) fn audit_append(
        &self,
        db: &Database,
        scope: Scope<'_>,
        records: Vec<Vec<u8>>,
    ) -> Result<u64> {
        let prefix = scope_prefix(scope);
        let _order = self
            .audit_lock
            .lock()
            .map_err(|_| StorageError::internal("audit lock poisoned"))?;
        let first = self.next_seq(&prefix)?;
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        for (i, r) in records.into_iter().enumerate() {
            batch.insert(&self.audit, audit_key(&prefix, first + i as u64), r);
        }
        batch.commit().map_err(io_err)?;
        Ok(first)
    }

    pub(super) fn audit_read(
        &self,
        scope: Scope<'_>,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let prefix = scope_prefix(scope);
        let start = audit_key(&prefix, from);
        let end = audit_key(&prefix, u64::MAX);
        let mut out = Vec::new();
        for kv in self.audit.range(start..=end).take(limit) {
            let (k, v) = kv.into_inner().map_err(io_err)?;
            out.push((decode_seq(prefix.len(), &k)?, v.to_vec()));
        }
        Ok(out)
    }

    pub(super) fn audit_len(&self, scope: Scope<'_>) -> Result<u64> {
        self.next_seq(&scope_prefix(scope))
    }

    /// Removes a tenant's records and audit sequence.
    pub(super) fn delete_scope(&self, db: &Database, scope: Scope<'_>) -> Result<()> {
        let prefix = scope_prefix(scope);
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        for ks in [&self.meta, &self.audit] {
            for k in ks.prefix(&prefix) {
                let k = k.key().map_err(io_err)?;
                batch.remove(ks, k);
            }
        }
        batch.commit().map_err(io_err)
    }

    /// Test hook: replaces one audit record in place, as an attacker with disk access could.
    #[cfg(feature = "testsuite")]
    pub(super) fn audit_overwrite(
        &self,
        db: &Database,
        scope: Scope<'_>,
        seq: u64,
        value: Vec<u8>,
    ) -> Result<()> {
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.audit, audit_key(&scope_prefix(scope), seq), value);
        batch.commit().map_err(io_err)
    }

    /// Test hook: removes one audit record.
    #[cfg(feature = "testsuite")]
    pub(super) fn audit_remove(&self, db: &Database, scope: Scope<'_>, seq: u64) -> Result<()> {
        let mut batch = db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.audit, audit_key(&scope_prefix(scope), seq));
        batch.commit().map_err(io_err)
    }
}
