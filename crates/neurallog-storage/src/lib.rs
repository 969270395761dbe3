//! NeuralLog storage.
//!
//! - [`Storage`]: the one interface every backend implements; every call names a tenant, so
//!   no code path can read or write without one.
//! - [`StorageError`]: failures with a [`ErrorKind`] the server maps to HTTP statuses.
//! - [`block`]: the compressed block format events are stored in (shared by all backends).
//! - [`crypt`]: encryption at rest — master key, tenants' data keys, sealing of blocks.
//! - [`embedded`]: the default backend, an LSM tree (fjall) under the data directory.
//! - `redis` (feature): the Redis backend, for stateless servers sharing one Redis.
//! - `testsuite` (feature): the conformance suite every backend runs.

pub mod block;
pub mod crypt;
pub mod embedded;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "testsuite")]
pub mod testsuite;

use std::fmt;

use async_trait::async_trait;
use neurallog_core::{
    Entry, EntryId, LogName, TenantId,
    ingest::NewEvent,
    query::{Matcher, ReadQuery, SearchQuery},
};

pub use embedded::EmbeddedStorage;

/// What kind of failure a storage call met; the server maps it to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The backend cannot be reached or is shutting down (503, retry later).
    Unavailable,
    /// Stored data failed to decode or verify.
    Corrupt,
    /// Anything else: an IO error, a bug.
    Internal,
}

/// A storage failure. Its message is for the server's log, not for clients.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct StorageError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    /// A failure of the given kind.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }

    /// The backend is unreachable.
    pub fn unavailable(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Stored data is damaged.
    pub fn corrupt(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }

    /// Any other failure.
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

/// Result of storage calls.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A page of entries, newest first, and the cursor of the next page when there may be one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next_cursor: Option<EntryId>,
}

/// Counts of one log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// Entries stored.
    pub count: u64,
    /// Bytes of event JSON stored, before compression.
    pub bytes: u64,
    /// Smallest and largest entry timestamp (ms), when the log has entries.
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
}

impl LogSummary {
    /// Adds another summary into this one (for tenant totals).
    pub fn merge(&mut self, o: &LogSummary) {
        self.count += o.count;
        self.bytes += o.bytes;
        self.min_ts = match (self.min_ts, o.min_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ts = match (self.max_ts, o.max_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What one [`Storage::purge_before`] call removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Whole blocks removed.
    pub blocks: u64,
    /// Entries those blocks held.
    pub entries: u64,
    /// The call stopped at its block budget: more expired blocks may follow (call again).
    pub more: bool,
}

/// What one [`Storage::reencrypt`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReencryptOutcome {
    /// Blocks sealed again with the tenant's current data key.
    pub blocks: u64,
    /// The call stopped at its block budget: more blocks of older keys may follow.
    pub more: bool,
}

/// What one [`Storage::import`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Entries stored with their original id and timestamp.
    pub imported: u64,
    /// Entries skipped because the log already holds their id.
    pub skipped: u64,
}

/// Most entries one [`Storage::import`] call accepts (callers send larger sets in chunks).
pub const MAX_IMPORT_ENTRIES: usize = 16 * 1024;

/// Where a metadata record or an audit sequence lives: server-wide, or inside one tenant's
/// space (removed with the tenant by [`Storage::delete_tenant`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    Global,
    Tenant(&'a TenantId),
}

/// Longest `space` or `key` of a metadata record.
pub const MAX_RECORD_NAME: usize = 200;

/// Checks a metadata `space` or `key`: 1-200 bytes of printable ASCII. The server chooses
/// them, but a key id taken from a URL may reach here, so the rule is enforced, not assumed.
pub fn check_record_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_RECORD_NAME
        || !name.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(StorageError::internal(format!(
            "invalid metadata {what}: 1-{MAX_RECORD_NAME} printable ASCII characters expected"
        )));
    }
    Ok(())
}

/// The storage interface. Every call is scoped by tenant; implementations keep tenants'
/// data in disjoint key spaces so that no query of one tenant can reach another's.
///
/// `append` is durable when it returns `Ok`: the events survive a crash of the process.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// A short name of the backend (`embedded`, `redis`).
    fn backend(&self) -> &'static str;

    /// Stores a batch atomically (all or none) and returns the new ids in order.
    /// Events without their own timestamp get the time the store accepted them.
    async fn append(
        &self,
        tenant: &TenantId,
        log: &LogName,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EntryId>>;

    /// Names of the tenant's logs that hold entries, sorted.
    async fn list_logs(&self, tenant: &TenantId) -> Result<Vec<LogName>>;

    /// Entries of one log, newest first; an unknown log reads as empty.
    async fn read(&self, tenant: &TenantId, log: &LogName, q: &ReadQuery) -> Result<Page>;

    /// One entry.
    async fn get(&self, tenant: &TenantId, log: &LogName, id: EntryId) -> Result<Option<Entry>>;

    /// Removes one entry; `false` when it did not exist.
    async fn delete_entry(&self, tenant: &TenantId, log: &LogName, id: EntryId) -> Result<bool>;

    /// Removes a whole log and returns how many entries it held.
    async fn delete_log(&self, tenant: &TenantId, log: &LogName) -> Result<u64>;

    /// Searches one or all logs of the tenant, newest first.
    async fn search(&self, tenant: &TenantId, q: &SearchQuery) -> Result<Page>;

    /// Counts of one log (zero for an unknown log).
    async fn log_summary(&self, tenant: &TenantId, log: &LogName) -> Result<LogSummary>;

    /// Counts of every log of the tenant, sorted by name.
    async fn tenant_summary(&self, tenant: &TenantId) -> Result<Vec<(LogName, LogSummary)>>;

    /// Removes every log of a tenant, its metadata records and its audit sequence; returns the
    /// number of entries removed.
    async fn delete_tenant(&self, tenant: &TenantId) -> Result<u64>;

    /// A small durable record beside the logs (API-key records, the tenant registry, settings,
    /// wrapped data keys). `space` and `key` follow [`check_record_name`].
    async fn meta_get(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Stores a record, replacing any previous value; durable when it returns `Ok`.
    async fn meta_put(
        &self,
        scope: Scope<'_>,
        space: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()>;

    /// Removes a record; `false` when there was none.
    async fn meta_delete(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<bool>;

    /// Every record of one space, sorted by key.
    async fn meta_list(&self, scope: Scope<'_>, space: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Appends records to the scope's append-only audit sequence, atomically and durably, and
    /// returns the sequence number of the first. Numbers start at 0 and have no gaps.
    async fn audit_append(&self, scope: Scope<'_>, records: Vec<Vec<u8>>) -> Result<u64>;

    /// Up to `limit` audit records from sequence number `from` on, ascending.
    async fn audit_read(
        &self,
        scope: Scope<'_>,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>>;

    /// How many records the scope's audit sequence holds (the next sequence number).
    async fn audit_len(&self, scope: Scope<'_>) -> Result<u64>;

    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<()>;

    /// Makes everything written so far durable and quiesces background work (shutdown).
    async fn flush(&self) -> Result<()>;

    /// Bytes the backend occupies on disk, when it can tell.
    async fn disk_usage(&self) -> Result<Option<u64>>;

    /// The re-encryption job: seals again, with the tenant's current data key, up to
    /// `max_blocks` of the log's blocks that an older key sealed, so that the older key can be
    /// retired. Contents, ids and order are unchanged; appends are never blocked. A store
    /// without encryption has nothing to do.
    async fn reencrypt(
        &self,
        tenant: &TenantId,
        log: &LogName,
        max_blocks: usize,
    ) -> Result<ReencryptOutcome>;

    /// Retention: removes, oldest first, up to `max_blocks` whole blocks of the log that have
    /// expired at `cutoff_ms` — every event's timestamp is before it, or every event was
    /// accepted before it (so a far-future timestamp cannot keep data forever). It stops at
    /// the first block that has not expired: a block straddling the cut-off is kept until it
    /// has wholly expired. Bounded work: at most `max_blocks + 1` blocks are examined.
    async fn purge_before(
        &self,
        tenant: &TenantId,
        log: &LogName,
        cutoff_ms: i64,
        max_blocks: usize,
    ) -> Result<PurgeOutcome>;

    /// Erasure: removes every entry of the log whose event `matcher` accepts, rewriting each
    /// affected block atomically (kept entries keep their ids and timestamps; appends running
    /// at the same time are not lost). Returns how many entries were removed.
    async fn erase(&self, tenant: &TenantId, log: &LogName, matcher: &Matcher) -> Result<u64>;

    /// Makes data removed so far (erasure, deletes, retention) physically unrecoverable from
    /// the backend's own files, as far as the backend controls them. May be slow.
    async fn compact(&self) -> Result<()> {
        Ok(())
    }

    /// Restore: stores entries with their original ids and timestamps (at most
    /// [`MAX_IMPORT_ENTRIES`], any order). Ids the log already holds are skipped, so importing
    /// the same archive twice stores everything once. New ids handed out later sort after
    /// every imported one.
    async fn import(
        &self,
        tenant: &TenantId,
        log: &LogName,
        entries: Vec<Entry>,
    ) -> Result<ImportOutcome>;
}

/// Cuts a newest-first list that was read with one entry to spare into a page: the spare
/// entry proves there is a next page, whose cursor is the last entry kept.
pub fn paginate(mut entries: Vec<neurallog_core::Entry>, limit: usize) -> Page {
    if entries.len() > limit {
        entries.truncate(limit);
        let next_cursor = entries.last().map(|e| e.id);
        Page {
            entries,
            next_cursor,
        }
    } else {
        Page {
            entries,
            next_cursor: None,
        }
    }
}
