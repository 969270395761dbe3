//! The tenant registry: which tenants exist.
//!
//! Tenants are records in the global metadata space [`TENANTS_SPACE`], created and deleted by
//! system principals through `/api/tenants`. One tenant exists without a record: the pinned
//! tenant (`TENANT_ID`) on a pinned server, else the default tenant. A pinned server serves
//! its tenant only. Existence checks are cached for at most [`CACHE_TTL`], so a deleted
//! tenant is refused on every replica within a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neurallog_core::TenantId;
use neurallog_core::admin::TenantInfo;
use neurallog_core::time::{format_ms, now_ms};
use neurallog_storage::{Scope, Storage, StorageError};
use serde::{Deserialize, Serialize};

pub const TENANTS_SPACE: &str = "tenants";
pub const CACHE_TTL: Duration = Duration::from_secs(1);
const CACHE_MAX: usize = 10_000;
/// Longest display name.
pub const MAX_DISPLAY_NAME: usize = 200;

/// A stored tenant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub display_name: Option<String>,
    pub created_at: i64,
    pub created_by: String,
}

impl TenantRecord {
    pub fn info(&self) -> TenantInfo {
        TenantInfo {
            id: self.id.to_string(),
            display_name: self.display_name.clone(),
            created_at: Some(format_ms(self.created_at)),
            created_by: Some(self.created_by.clone()),
        }
    }
}

/// The registry.
#[derive(Debug)]
pub struct Tenants {
    storage: Arc<dyn Storage>,
    /// The tenant that exists without a record.
    implicit: TenantId,
    /// Whether the server is pinned to `implicit`.
    pinned: bool,
    cache: Mutex<HashMap<TenantId, (Instant, bool)>>,
}

impl Tenants {
    pub fn new(storage: Arc<dyn Storage>, pinned: Option<TenantId>) -> Self {
        Self {
            storage,
            pinned: pinned.is_some(),
            implicit: pinned.unwrap_or_else(TenantId::default_tenant),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The pinned tenant, or the default one.
    pub fn implicit(&self) -> &TenantId {
        &self.implicit
    }

    pub fn pinned(&self) -> bool {
        self.pinned
    }

    /// Whether requests may act on `tenant`.
    pub async fn exists(&self, tenant: &TenantId) -> Result<bool, StorageError> {
        if tenant == &self.implicit {
            return Ok(true);
        }
        if self.pinned {
            return Ok(false);
        }
        if let Ok(c) = self.cache.lock()
            && let Some((at, known)) = c.get(tenant)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(*known);
        }
        let known = self
            .storage
            .meta_get(Scope::Global, TENANTS_SPACE, tenant.as_str())
            .await?
            .is_some();
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(tenant.clone(), (Instant::now(), known));
        }
        Ok(known)
    }

    /// Every tenant: the implicit one first, then the records by id.
    pub async fn list(&self) -> Result<Vec<TenantInfo>, StorageError> {
        let mut out = vec![TenantInfo {
            id: self.implicit.to_string(),
            display_name: None,
            created_at: None,
            created_by: None,
        }];
        if self.pinned {
            return Ok(out);
        }
        for (_, v) in self.storage.meta_list(Scope::Global, TENANTS_SPACE).await? {
            if let Ok(r) = serde_json::from_slice::<TenantRecord>(&v)
                && r.id != self.implicit
            {
                out.push(r.info());
            }
        }
        Ok(out)
    }

    /// Creates a tenant; None when it already exists.
    pub async fn create(
        &self,
        id: TenantId,
        display_name: Option<String>,
        created_by: String,
    ) -> Result<Option<TenantRecord>, StorageError> {
        if self.exists(&id).await? {
            return Ok(None);
        }
        let record = TenantRecord {
            id: id.clone(),
            display_name,
            created_at: now_ms(),
            created_by,
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.storage
            .meta_put(Scope::Global, TENANTS_SPACE, id.as_str(), bytes)
            .await?;
        self.forget(&id);
        Ok(Some(record))
    }

    /// Removes a tenant's record (its data is removed by the caller); `false` when absent.
    pub async fn remove(&self, id: &TenantId) -> Result<bool, StorageError> {
        let existed = self
            .storage
            .meta_delete(Scope::Global, TENANTS_SPACE, id.as_str())
            .await?;
        self.forget(id);
        Ok(existed)
    }

    fn forget(&self, id: &TenantId) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(id);
        }
    }
}
