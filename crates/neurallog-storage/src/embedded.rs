//! The embedded backend: an LSM tree (fjall) under the data directory.
//!
//! Layout, in two keyspaces:
//!
//! ```text
//! blocks: <tenant> 0x00 <log> 0x00 <last entry id, 16 bytes BE>  ->  encoded block
//! logs:   <tenant> 0x00 <log>                                     ->  LogMeta (48 bytes)
//! ```
//!
//! With encryption on ([`EmbeddedOptions::encryption`]) every block value is sealed with the
//! tenant's data key, so event content reaches neither the journal nor the segment and blob
//! files in clear; keys, counters and block headers (counts, time spans) stay plain.
//!
//! Tenant ids and log names never contain 0x00, so a tenant's or a log's keys are exactly
//! those under its prefix, and one tenant's iteration can never reach another's keys. Keying
//! blocks by their newest id makes "the block that holds id X" one seek
//! (the first key >= X) and "newest first" a reverse scan.
//!
//! All writes go through one writer thread ([`writer`]), which is the group commit: it
//! drains every append waiting at that moment, assigns their ids, packs each log's events
//! into blocks, writes them and the log counters in one atomic batch, syncs the journal
//! (`fdatasync`) once, and only then acknowledges. Many small concurrent requests thus share
//! one block and one sync. Reads run on the blocking pool against the tree directly.

mod keys;
mod records;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use neurallog_core::{
    Entry, EntryId, LogName, TenantId,
    ingest::NewEvent,
    query::{LogScope, Matcher, ReadQuery, SearchQuery, TimeRange},
};
use tokio::sync::oneshot;

use crate::block::{self, Block};
use crate::crypt::{Encryption, LogCipher, TenantCipher};
use crate::{
    ImportOutcome, LogSummary, Page, PurgeOutcome, ReencryptOutcome, Result, Scope, Storage,
    StorageError,
};
use keys::LogMeta;
use writer::{Command, WriterHandle};

/// The shared state of the embedded store.
struct Tree {
    db: Database,
    blocks: Keyspace,
    logs: Keyspace,
    /// Metadata records and audit sequences.
    records: records::Records,
    /// Decoded blocks by storage key. The newest blocks of busy logs are read over and over
    /// (newest-first pages, tails, searches); decoding them once saves most of a read's CPU.
    /// Keys carry the tenant, so the cache is as isolated as the tree. The writer evicts a
    /// key whenever it rewrites or removes that block.
    cache: crate::block::Cache,
}

/// Decoded-block cache size.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl Tree {
    /// The decoded block stored under `key` with encoded bytes `value`, from the cache when
    /// possible. `fill` caches a block decoded here; scans pass `false` so that one search
    /// over a whole log does not evict the hot blocks of every other reader.
    fn decode(
        &self,
        key: &[u8],
        value: &[u8],
        fill: bool,
        cipher: &LogCipher<'_>,
    ) -> Result<Arc<Block>> {
        if let Some(b) = self.cache.get(key) {
            return Ok(b);
        }
        let b = Arc::new(Block::decode(value, cipher)?);
        if fill {
            self.cache.insert(key.to_vec(), b.clone());
        }
        Ok(b)
    }
}

/// The default storage backend.
#[derive(Clone)]
pub struct EmbeddedStorage {
    tree: Arc<Tree>,
    writer: WriterHandle,
    path: PathBuf,
    encryption: Encryption,
}

/// How to open the embedded store.
#[derive(Clone, Debug, Default)]
pub struct EmbeddedOptions {
    /// Whether blocks are sealed; the server always turns it on.
    pub encryption: Encryption,
}

impl std::fmt::Debug for EmbeddedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_err(e: fjall::Error) -> StorageError {
    StorageError::internal(format!("embedded store: {e}"))
}

impl EmbeddedStorage {
    /// Opens (or creates) the store in `dir` without encryption (tests and tools).
    pub fn open_unencrypted(dir: &Path) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default())
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::internal(format!("create {}: {e}", dir.display())))?;
        // Memory and disk bounds: the journal is capped so that data flushed to segments is
        // not kept twice for long, and the blocks' memtable (below) so that sustained ingest
        // stays within a small, predictable RSS.
        let db = Database::builder(dir.join("store"))
            // The journal is synced by the writer after each group commit.
            .manual_journal_persist(true)
            .cache_size(32 * 1024 * 1024)
            .max_journaling_size(64 * 1024 * 1024)
            .open()
            .map_err(io_err)?;
        // Blocks are compressed already; compressing them again would only cost CPU. They go
        // to blob files (key-value separation), so compaction moves small pointers instead of
        // rewriting every block (measured faster in tools/engine-compare).
        let blocks = db
            .keyspace("blocks", || {
                KeyspaceCreateOptions::default()
                    .data_block_compression_policy(fjall::config::CompressionPolicy::disabled())
                    .max_memtable_size(16 * 1024 * 1024)
                    // Erasure must be able to make removed blocks unrecoverable: a blob file
                    // holding any removed block is rewritten by the next compaction that
                    // reaches it (the defaults wait for a third of a file to be stale, and
                    // then rewrite only the oldest fifth of such files). Append-only data
                    // never goes stale, so this costs nothing until blocks are removed.
                    .with_kv_separation(Some(
                        fjall::KvSeparationOptions::default()
                            .compression(fjall::CompressionType::None)
                            .staleness_threshold(f32::MIN_POSITIVE)
                            .age_cutoff(1.0),
                    ))
            })
            .map_err(io_err)?;
        let logs = db
            .keyspace("logs", KeyspaceCreateOptions::default)
            .map_err(io_err)?;
        let records = records::Records::open(&db)?;
        let cache = crate::block::cache(CACHE_BYTES);
        let tree = Arc::new(Tree {
            db,
            blocks,
            logs,
            records,
            cache,
        });
        let floor = newest_id(&tree)?;
        let writer = writer::spawn(tree.clone(), floor)?;
        Ok(Self {
            tree,
            writer,
            path: dir.to_path_buf(),
            encryption: options.encryption,
        })
    }

    /// Test hook: every stored block of a log, raw (key, value), oldest first.
    #[cfg(feature = "testsuite")]
    pub fn raw_blocks(&self, tenant: &TenantId, log: &LogName) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.tree.blocks.prefix(keys::log_prefix(tenant, log)) {
            let (k, v) = kv.into_inner().map_err(io_err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Test hook: overwrites a stored block's value behind the writer's back (an attacker
    /// with the files), and forgets decoded blocks.
    #[cfg(feature = "testsuite")]
    pub fn raw_put_block(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree.blocks.insert(key, value).map_err(io_err)?;
        self.tree.cache.clear();
        Ok(())
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the tenant's blocks are sealed: its data keys (created on first use), or none.
    async fn cipher(&self, tenant: &TenantId) -> Result<TenantCipher> {
        match &self.encryption {
            Encryption::Off => Ok(TenantCipher::plaintext(tenant)),
            Encryption::On(ring) => ring.cipher(self, tenant).await,
        }
    }

    /// The stored (encoded) blocks of a log, oldest first: tests use them to look for a
    /// removed block's bytes in the store's files.
    #[cfg(feature = "testsuite")]
    pub fn raw_block_values(&self, tenant: &TenantId, log: &LogName) -> Result<Vec<Vec<u8>>> {
        self.tree
            .blocks
            .prefix(keys::log_prefix(tenant, log))
            .map(|kv| Ok(kv.into_inner().map_err(io_err)?.1.to_vec()))
            .collect()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tree) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || f(&tree))
            .await
            .map_err(|e| StorageError::internal(format!("storage task failed: {e}")))?
    }

    async fn command<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(make(tx))?;
        rx.await
            .map_err(|_| StorageError::unavailable("storage writer stopped"))?
    }
}

/// A [`Scope`] that can move to the blocking pool.
enum OwnedScope {
    Global,
    Tenant(TenantId),
}

impl OwnedScope {
    fn as_scope(&self) -> Scope<'_> {
        match self {
            OwnedScope::Global => Scope::Global,
            OwnedScope::Tenant(t) => Scope::Tenant(t),
        }
    }
}

fn owned(scope: Scope<'_>, space: &str, key: &str) -> (OwnedScope, String, String) {
    let scope = match scope {
        Scope::Global => OwnedScope::Global,
        Scope::Tenant(t) => OwnedScope::Tenant(t.clone()),
    };
    (scope, space.to_owned(), key.to_owned())
}

#[cfg(feature = "testsuite")]
impl EmbeddedStorage {
    /// Test hook: overwrites one audit record, as an attacker with access to the files could.
    pub async fn audit_overwrite(&self, scope: Scope<'_>, seq: u64, value: Vec<u8>) -> Result<()> {
        let (scope, _, _) = owned(scope, "", "");
        self.blocking(move |t| {
            t.records
                .audit_overwrite(&t.db, scope.as_scope(), seq, value)
        })
        .await
    }

    /// Test hook: removes one audit record.
    pub async fn audit_remove(&self, scope: Scope<'_>, seq: u64) -> Result<()> {
        let (scope, _, _) = owned(scope, "", "");
        self.blocking(move |t| t.records.audit_remove(&t.db, scope.as_scope(), seq))
            .await
    }
}

/// The newest id stored anywhere, so that new ids sort after it even if the clock moved back.
fn newest_id(tree: &Tree) -> Result<EntryId> {
    let mut newest = EntryId::MIN;
    for kv in tree.logs.iter() {
        let (_, v) = kv.into_inner().map_err(io_err)?;
        newest = newest.max(LogMeta::decode(&v)?.last_id);
    }
    Ok(newest)
}

fn meta(tree: &Tree, tenant: &TenantId, log: &LogName) -> Result<Option<LogMeta>> {
    match tree.logs.get(keys::meta_key(tenant, log)).map_err(io_err)? {
        Some(v) => Ok(Some(LogMeta::decode(&v)?)),
        None => Ok(None),
    }
}

/// Finds the block that holds `id`: the first block whose newest id is >= `id`.
fn block_holding(
    tree: &Tree,
    tenant: &TenantId,
    log: &LogName,
    id: EntryId,
    cipher: &LogCipher<'_>,
) -> Result<Option<(Vec<u8>, Arc<Block>)>> {
    let prefix = keys::log_prefix(tenant, log);
    let lo = keys::block_key(&prefix, id);
    let hi = keys::block_key(&prefix, EntryId::MAX);
    let Some(kv) = tree.blocks.range(lo..=hi).next() else {
        return Ok(None);
    };
    let (k, v) = kv.into_inner().map_err(io_err)?;
    let block = tree.decode(&k, &v, true, cipher)?;
    Ok(Some((k.to_vec(), block)))
}

/// Walks a log's blocks newest first, from the block that may hold ids just below `before`,
/// handing each block that overlaps `range` to `visit` with the number of its entries below
/// `before`. `visit` returns `false` to stop.
#[allow(clippy::too_many_arguments)] // private; the cipher joined the walk's parameters
fn walk_newest_first(
    tree: &Tree,
    tenant: &TenantId,
    log: &LogName,
    before: EntryId,
    range: TimeRange,
    fill_cache: bool,
    cipher: &LogCipher<'_>,
    mut visit: impl FnMut(&Block, usize) -> Result<bool>,
) -> Result<()> {
    let prefix = keys::log_prefix(tenant, log);
    let split = keys::block_key(&prefix, before);
    let lo = keys::block_key(&prefix, EntryId::MIN);
    let hi = keys::block_key(&prefix, EntryId::MAX);
    // Only the first block at or above `before` can hold ids below it; then every block
    // below `split` in reverse.
    let first = tree.blocks.range(split.clone()..=hi).next();
    let rest = tree.blocks.range(lo..split).rev();
    for kv in first.into_iter().chain(rest) {
        let (k, v) = kv.into_inner().map_err(io_err)?;
        let h = block::header(&v)?;
        if !range.overlaps(h.min_ts, h.max_ts) {
            continue;
        }
        let b = tree.decode(&k, &v, fill_cache, cipher)?;
        let upto = b.count_before(before);
        if upto > 0 && !visit(&b, upto)? {
            break;
        }
    }
    Ok(())
}

/// Up to `limit + 1` entries of one log, newest first, below `before` and inside `range`;
/// all of them (a read, which fills the block cache) or those `matcher` accepts (a search,
/// which does not).
#[allow(clippy::too_many_arguments)] // private; the cipher joined the read's parameters
fn collect_newest(
    tree: &Tree,
    tenant: &TenantId,
    log: &LogName,
    before: Option<EntryId>,
    range: TimeRange,
    limit: usize,
    matcher: Option<&Matcher>,
    cipher: &TenantCipher,
) -> Result<Vec<neurallog_core::Entry>> {
    let mut entries = Vec::new();
    let want = limit + 1;
    let before = before.unwrap_or(EntryId::MAX);
    walk_newest_first(
        tree,
        tenant,
        log,
        before,
        range,
        matcher.is_none(),
        &cipher.log(log),
        |b, upto| Ok(!b.take_newest(log, upto, range, matcher, want, &mut entries)?),
    )?;
    Ok(entries)
}

fn list_logs(tree: &Tree, tenant: &TenantId) -> Result<Vec<(LogName, LogMeta)>> {
    let prefix = keys::tenant_prefix(tenant);
    let mut out = Vec::new();
    for kv in tree.logs.prefix(&prefix) {
        let (k, v) = kv.into_inner().map_err(io_err)?;
        let name = std::str::from_utf8(&k[prefix.len()..])
            .ok()
            .and_then(|s| LogName::new(s).ok())
            .ok_or_else(|| StorageError::corrupt("stored log name is invalid"))?;
        let m = LogMeta::decode(&v)?;
        if m.count > 0 {
            out.push((name, m));
        }
    }
    Ok(out)
}

#[async_trait]
impl Storage for EmbeddedStorage {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn append(
        &self,
        tenant: &TenantId,
        log: &LogName,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EntryId>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let cipher = self.cipher(tenant).await?;
        let (tenant, log) = (tenant.clone(), log.clone());
        self.command(|reply| Command::Append {
            tenant,
            log,
            events,
            cipher,
            reply,
        })
        .await
    }

    async fn list_logs(&self, tenant: &TenantId) -> Result<Vec<LogName>> {
        let tenant = tenant.clone();
        self.blocking(move |t| Ok(list_logs(t, &tenant)?.into_iter().map(|(n, _)| n).collect()))
            .await
    }

    async fn read(&self, tenant: &TenantId, log: &LogName, q: &ReadQuery) -> Result<Page> {
        let cipher = self.cipher(tenant).await?;
        let (tenant, log, q) = (tenant.clone(), log.clone(), q.clone());
        self.blocking(move |t| {
            let entries =
                collect_newest(t, &tenant, &log, q.before, q.range, q.limit, None, &cipher)?;
            Ok(crate::paginate(entries, q.limit))
        })
        .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        log: &LogName,
        id: EntryId,
    ) -> Result<Option<neurallog_core::Entry>> {
        let cipher = self.cipher(tenant).await?;
        let (tenant, log) = (tenant.clone(), log.clone());
        self.blocking(move |t| {
            let Some((_, b)) = block_holding(t, &tenant, &log, id, &cipher.log(&log))? else {
                return Ok(None);
            };
            b.find(id).map(|i| b.entry(i, &log)).transpose()
        })
        .await
    }

    async fn delete_entry(&self, tenant: &TenantId, log: &LogName, id: EntryId) -> Result<bool> {
        let cipher = self.cipher(tenant).await?;
        let (tenant, log) = (tenant.clone(), log.clone());
        self.command(|reply| Command::DeleteEntry {
            tenant,
            log,
            id,
            cipher,
            reply,
        })
        .await
    }

    async fn delete_log(&self, tenant: &TenantId, log: &LogName) -> Result<u64> {
        let (tenant, log) = (tenant.clone(), log.clone());
        self.command(|reply| Command::DeleteLog { tenant, log, reply })
            .await
    }

    async fn search(&self, tenant: &TenantId, q: &SearchQuery) -> Result<Page> {
        let cipher = self.cipher(tenant).await?;
        let (tenant, q) = (tenant.clone(), q.clone());
        self.blocking(move |t| {
            let logs = match &q.scope {
                LogScope::One(l) => vec![l.clone()],
                LogScope::All => list_logs(t, &tenant)?.into_iter().map(|(n, _)| n).collect(),
            };
            let mut all = Vec::new();
            for log in &logs {
                all.extend(collect_newest(
                    t,
                    &tenant,
                    log,
                    q.before,
                    q.range,
                    q.limit,
                    Some(&q.matcher),
                    &cipher,
                )?);
            }
            all.sort_by_key(|e| std::cmp::Reverse(e.id));
            all.truncate(q.limit + 1);
            Ok(crate::paginate(all, q.limit))
        })
        .await
    }

    async fn log_summary(&self, tenant: &TenantId, log: &LogName) -> Result<LogSummary> {
        let (tenant, log) = (tenant.clone(), log.clone());
        self.blocking(move |t| {
            Ok(meta(t, &tenant, &log)?
                .map(|m| m.summary())
                .unwrap_or_default())
        })
        .await
    }

    async fn tenant_summary(&self, tenant: &TenantId) -> Result<Vec<(LogName, LogSummary)>> {
        let tenant = tenant.clone();
        self.blocking(move |t| {
            Ok(list_logs(t, &tenant)?
                .into_iter()
                .map(|(n, m)| (n, m.summary()))
                .collect())
        })
        .await
    }

    async fn delete_tenant(&self, tenant: &TenantId) -> Result<u64> {
        let t = tenant.clone();
        let removed = self
            .command(|reply| Command::DeleteTenant { tenant: t, reply })
            .await?;
        let t = tenant.clone();
        self.blocking(move |tree| tree.records.delete_scope(&tree.db, Scope::Tenant(&t)))
            .await?;
        // Its data keys went with its metadata: a later write creates new ones.
        if let Some(ring) = self.encryption.keyring() {
            ring.forget(tenant);
        }
        Ok(removed)
    }

    async fn meta_get(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<Option<Vec<u8>>> {
        // A point read in a small keyspace: cheaper inline than a trip to the blocking pool.
        self.tree.records.get(scope, space, key)
    }

    async fn meta_put(
        &self,
        scope: Scope<'_>,
        space: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        let (scope, space, key) = owned(scope, space, key);
        self.blocking(move |t| t.records.put(&t.db, scope.as_scope(), &space, &key, value))
            .await
    }

    async fn meta_delete(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<bool> {
        let (scope, space, key) = owned(scope, space, key);
        self.blocking(move |t| t.records.delete(&t.db, scope.as_scope(), &space, &key))
            .await
    }

    async fn meta_list(&self, scope: Scope<'_>, space: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let (scope, space, _) = owned(scope, space, "");
        self.blocking(move |t| t.records.list(scope.as_scope(), &space))
            .await
    }

    async fn audit_append(&self, scope: Scope<'_>, records: Vec<Vec<u8>>) -> Result<u64> {
        let (scope, _, _) = owned(scope, "", "");
        self.blocking(move |t| t.records.audit_append(&t.db, scope.as_scope(), records))
            .await
    }

    async fn audit_read(
        &self,
        scope: Scope<'_>,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let (scope, _, _) = owned(scope, "", "");
        self.blocking(move |t| t.records.audit_read(scope.as_scope(), from, limit))
            .await
    }

    async fn audit_len(&self, scope: Scope<'_>) -> Result<u64> {
        self.tree.records.audit_len(scope)
    }

    async fn ping(&self) -> Result<()> {
        self.writer.check()?;
        self.blocking(|t| t.logs.first_key_value().map(|_| ()).map_or(Ok(()), Ok))
            .await
    }

    async fn flush(&self) -> Result<()> {
        self.command(|reply| Command::Flush { reply }).await
    }

    async fn disk_usage(&self) -> Result<Option<u64>> {
        self.blocking(|t| {
            t.db.persist(PersistMode::SyncAll).map_err(io_err)?;
            Ok(Some(t.db.disk_space().map_err(io_err)?))
        })
        .await
    }

    async fn purge_before(
        &self,
        tenant: &TenantId,
        log: &LogName,
        cutoff_ms: i64,
        max_blocks: usize,
    ) -> Result<PurgeOutcome> {
        let cipher = self.cipher(tenant).await?;
        let (tenant, log) = (tenant.clone(), log.clone());
        self.command(|reply| Command::Purge {
            tenant,
            log,
            cutoff_ms,
            max_blocks,
            cipher,
            reply,
        })
        .await
    }

    async fn erase(&self, tenant: &TenantId, log: &LogName, matcher: &Matcher) -> Result<u64> {
        // The scan (decompression, JSON parsing) runs here, on the blocking pool; the writer
        // only rewrites the blocks found, checking each again, in chunks so that appends
        // keep flowing between them.
        let cipher = self.cipher(tenant).await?;
        let (t2, l2, m2, c2) = (tenant.clone(), log.clone(), matcher.clone(), cipher.clone());
        let candidates = self
            .blocking(move |t| erase_candidates(t, &t2, &l2, &m2, &c2.log(&l2)))
            .await?;
        let mut erased = 0;
        for chunk in candidates.chunks(ERASE_CHUNK) {
            let (tenant, log, matcher) = (tenant.clone(), log.clone(), matcher.clone());
            let candidates = chunk.to_vec();
            let cipher = cipher.clone();
            erased += self
                .command(|reply| Command::Erase {
                    tenant,
                    log,
                    candidates,
                    matcher,
                    cipher,
                    reply,
                })
                .await?;
        }
        Ok(erased)
    }

    async fn reencrypt(
        &self,
        tenant: &TenantId,
        log: &LogName,
        max_blocks: usize,
    ) -> Result<ReencryptOutcome> {
        let cipher = self.cipher(tenant).await?;
        let Some(current) = cipher.current_key() else {
            return Ok(ReencryptOutcome::default());
        };
        let (t2, l2) = (tenant.clone(), log.clone());
        let budget = max_blocks.max(1);
        let (candidates, more) = self
            .blocking(move |t| reseal_candidates(t, &t2, &l2, current.to_bytes(), budget))
            .await?;
        let mut out = ReencryptOutcome { blocks: 0, more };
        for chunk in candidates.chunks(ERASE_CHUNK) {
            let (tenant, log, cipher) = (tenant.clone(), log.clone(), cipher.clone());
            let candidates = chunk.to_vec();
            out.blocks += self
                .command(|reply| Command::Reseal {
                    tenant,
                    log,
                    candidates,
                    cipher,
                    reply,
                })
                .await?;
        }
        Ok(out)
    }

    async fn compact(&self) -> Result<()> {
        self.blocking(|t| {
            // Flush the memtable into a table, then compact every table into one: versions
            // of removed or rewritten blocks are dropped and (with the blob settings in
            // `open`) every blob file holding one is rewritten without it.
            //
            // Twice, because the engine only drops what lies below its garbage-collection
            // watermark, which trails the newest write, and deletes the files of an old
            // table set only once a newer set is itself below the watermark: each round's
            // tombstone (of a key outside every tenant's prefix, so no reader sees it) moves
            // the watermark past the previous round. The journal segments holding removed
            // blocks are dropped once their memtables are flushed.
            for _ in 0..2 {
                t.blocks.remove(COMPACTION_MARK).map_err(io_err)?;
                t.blocks.rotate_memtable_and_wait().map_err(io_err)?;
                t.blocks.major_compact().map_err(io_err)?;
            }
            t.blocks.remove(COMPACTION_MARK).map_err(io_err)?;
            t.blocks.rotate_memtable_and_wait().map_err(io_err)?;
            t.db.persist(PersistMode::SyncAll).map_err(io_err)
        })
        .await
    }

    async fn import(
        &self,
        tenant: &TenantId,
        log: &LogName,
        entries: Vec<Entry>,
    ) -> Result<ImportOutcome> {
        if entries.len() > crate::MAX_IMPORT_ENTRIES {
            return Err(StorageError::internal("import holds too many entries"));
        }
        if entries.is_empty() {
            return Ok(ImportOutcome::default());
        }
        let cipher = self.cipher(tenant).await?;
        let (tenant, log) = (tenant.clone(), log.clone());
        self.command(|reply| Command::Import {
            tenant,
            log,
            entries,
            cipher,
            reply,
        })
        .await
    }
}

/// A key of the `blocks` keyspace outside every tenant's prefix (tenant ids do not start
/// with 0x00), written only as a tombstone by `compact`.
const COMPACTION_MARK: &[u8] = b"\0compaction";

/// Blocks rewritten by one erase command.
const ERASE_CHUNK: usize = 32;

/// Keys of up to `max` of the log's blocks sealed with a key other than `current`, and
/// whether more follow. Only the key id in each block's clear header is read.
fn reseal_candidates(
    tree: &Tree,
    tenant: &TenantId,
    log: &LogName,
    current: [u8; crate::crypt::KEY_ID_LEN],
    max: usize,
) -> Result<(Vec<Vec<u8>>, bool)> {
    let mut out = Vec::new();
    for kv in tree.blocks.prefix(keys::log_prefix(tenant, log)) {
        let (k, v) = kv.into_inner().map_err(io_err)?;
        if block::sealed_key_id(&v).is_some_and(|id| id != current) {
            if out.len() == max {
                return Ok((out, true));
            }
            out.push(k.to_vec());
        }
    }
    Ok((out, false))
}

/// Keys of the log's blocks holding an entry `matcher` accepts.
fn erase_candidates(
    tree: &Tree,
    tenant: &TenantId,
    log: &LogName,
    matcher: &Matcher,
    cipher: &LogCipher<'_>,
) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for kv in tree.blocks.prefix(keys::log_prefix(tenant, log)) {
        let (k, v) = kv.into_inner().map_err(io_err)?;
        let b = tree.decode(&k, &v, false, cipher)?;
        if !b.matching(matcher, b.len()).is_empty() {
            out.push(k.to_vec());
        }
    }
    Ok(out)
}
