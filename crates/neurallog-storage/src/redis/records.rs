//! Metadata records and audit sequences in Redis.
//!
//! ```text
//! <p>:rec:<space>        | <p>:{t}:rec:<space>     hash   key -> value
//! <p>:recspaces          | <p>:{t}:recspaces       set    spaces in use (to delete a tenant's)
//! <p>:audit              | <p>:{t}:audit           list   audit records; index = sequence number
//! ```
//!
//! Server-wide records sit outside every tenant's hash tag, so an ACL user limited to one
//! tenant's keys cannot reach them. An audit append is one `RPUSH`, which is atomic and gives
//! the new length, hence the first sequence number, without a lock across replicas.

use ::redis::AsyncCommands;

use super::{Shared, keys::TenantKeys};
use crate::{Result, Scope, StorageError, check_record_name};

/// The keys of one scope.
pub(super) struct ScopeKeys {
    base: String,
}

impl ScopeKeys {
    pub(super) fn new(shared: &Shared, scope: Scope<'_>) -> Self {
        let base = match scope {
            Scope::Global => format!("{}:", shared.prefix),
            Scope::Tenant(t) => TenantKeys::new(&shared.prefix, t).base().to_owned(),
        };
        Self { base }
    }

    fn space(&self, space: &str) -> Result<String> {
        check_record_name("space", space)?;
        Ok(format!("{}rec:{space}", self.base))
    }

    fn spaces(&self) -> String {
        format!("{}recspaces", self.base)
    }

    fn audit(&self) -> String {
        format!("{}audit", self.base)
    }
}

pub(super) async fn get(
    shared: &Shared,
    scope: Scope<'_>,
    space: &str,
    key: &str,
) -> Result<Option<Vec<u8>>> {
    check_record_name("key", key)?;
    let k = ScopeKeys::new(shared, scope).space(space)?;
    let mut c = shared.conn();
    shared.bounded(c.hget(k, key)).await
}

pub(super) async fn put(
    shared: &Shared,
    scope: Scope<'_>,
    space: &str,
    key: &str,
    value: Vec<u8>,
) -> Result<()> {
    check_record_name("key", key)?;
    let keys = ScopeKeys::new(shared, scope);
    let k = keys.space(space)?;
    let mut pipe = ::redis::pipe();
    pipe.atomic()
        .sadd(keys.spaces(), space)
        .ignore()
        .hset(k, key, value)
        .ignore();
    let mut c = shared.conn();
    shared.bounded(pipe.query_async::<()>(&mut c)).await
}

pub(super) async fn delete(
    shared: &Shared,
    scope: Scope<'_>,
    space: &str,
    key: &str,
) -> Result<bool> {
    check_record_name("key", key)?;
    let k = ScopeKeys::new(shared, scope).space(space)?;
    let mut c = shared.conn();
    let n: i64 = shared.bounded(c.hdel(k, key)).await?;
    Ok(n > 0)
}

pub(super) async fn list(
    shared: &Shared,
    scope: Scope<'_>,
    space: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let k = ScopeKeys::new(shared, scope).space(space)?;
    let mut c = shared.conn();
    let mut all: Vec<(String, Vec<u8>)> = shared.bounded(c.hgetall(k)).await?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(all)
}

pub(super) async fn audit_append(
    shared: &Shared,
    scope: Scope<'_>,
    records: Vec<Vec<u8>>,
) -> Result<u64> {
    let n = records.len() as u64;
    let key = ScopeKeys::new(shared, scope).audit();
    if n == 0 {
        return audit_len(shared, scope).await;
    }
    let mut c = shared.conn();
    let len: u64 = shared.bounded(c.rpush(key, records)).await?;
    len.checked_sub(n)
        .ok_or_else(|| StorageError::corrupt("audit list shorter than the records just added"))
}

pub(super) async fn audit_read(
    shared: &Shared,
    scope: Scope<'_>,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let key = ScopeKeys::new(shared, scope).audit();
    let start = i64::try_from(from).unwrap_or(i64::MAX);
    let stop = start.saturating_add(limit as i64 - 1);
    let mut c = shared.conn();
    let items: Vec<Vec<u8>> = shared
        .bounded(c.lrange(key, start as isize, stop as isize))
        .await?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (from + i as u64, v))
        .collect())
}

pub(super) async fn audit_len(shared: &Shared, scope: Scope<'_>) -> Result<u64> {
    let key = ScopeKeys::new(shared, scope).audit();
    let mut c = shared.conn();
    shared.bounded(c.llen(key)).await
}

/// Removes every record space and the audit list of a scope.
pub(super) async fn delete_scope(shared: &Shared, scope: Scope<'_>) -> Result<()> {
    let keys = ScopeKeys::new(shared, scope);
    let mut c = shared.conn();
    let spaces: Vec<String> = shared.bounded(c.smembers(keys.spaces())).await?;
    let mut pipe = ::redis::pipe();
    pipe.atomic();
    for s in &spaces {
        pipe.del(format!("{}rec:{s}", keys.base)).ignore();
    }
    pipe.del(keys.spaces()).ignore().del(keys.audit()).ignore();
    shared.bounded(pipe.query_async::<()>(&mut c)).await
}
