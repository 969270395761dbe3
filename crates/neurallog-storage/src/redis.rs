//! The Redis backend: the same compressed blocks as the embedded store, kept in Redis so
//! that the server is stateless and runs as several replicas against one Redis.
//!
//! # Key schema (also in `docs/redis.md`)
//!
//! Every key starts with `<prefix>:{<tenant>}:` — the configured prefix (default
//! `neurallog`) and the tenant as a Redis hash tag, so one Redis can serve several
//! deployments and tenants, an ACL user can be limited to one tenant with one key pattern,
//! and (should Cluster ever be used) all of a tenant's keys share a slot.
//!
//! ```text
//! <p>:{t}:logs          zset, scores 0   names of the logs holding entries (sorted by name)
//! <p>:{t}:names         zset, scores 0   every log name written (to find counters to delete)
//! <p>:{t}:meta:<log>    hash             count, bytes, min_ts, max_ts, last (16-byte id floor)
//! <p>:{t}:index:<log>   zset, scores 0   one 40-byte member per block: newest id | min_ts |
//!                                        max_ts | count | raw bytes (lex order = id order)
//! <p>:{t}:blocks:<log>  hash             16-byte newest id -> encoded block (opaque blob)
//! ```
//!
//! Metadata records and audit sequences have keys of their own ([`records`]).
//!
//! With encryption on ([`RedisOptions::encryption`]) every block is sealed with the tenant's
//! data key before it is sent, so Redis (and its RDB/AOF files and replicas) hold event
//! content only as ciphertext; names, counters and index members stay plain.
//!
//! # Ids
//!
//! A server numbers a batch itself (so that the ids can go inside the compressed block) from
//! its own monotonic generator: time in ms, then a random start counted up within the ms.
//! The `APPEND` script stores the batch only if its first id is above the log's `last` floor
//! and then moves the floor to the batch's last id, in one atomic step. Hence, with any number
//! of replicas, the id ranges of a log's blocks never overlap and each commit's ids are above
//! every id committed to that log before it: ids are unique per log, and id order is commit
//! order, so a cursor never skips an entry committed later. A replica whose batch is refused
//! (another one committed a higher id meanwhile, or its clock is behind) renumbers above the
//! floor Redis reported and retries; ids then stay close to real time because the floor was
//! itself made from a clock. Nothing of a refused attempt was written.
//!
//! # Reads
//!
//! "Newest first before id X" is `ZRANGEBYLEX [X + LIMIT 0 1` (the one block that may
//! straddle X) and `ZREVRANGEBYLEX (X - LIMIT 0 n` on the index, then `HMGET` of just the
//! blocks needed; the index members' time spans let reads skip blocks outside a time window
//! without fetching them. Searches stream the log in batches of a few blocks, so memory stays
//! bounded however long the log is. Retention removes the oldest wholly expired blocks, decided
//! from the index members alone (their newest id and time span), no block read.
//!
//! # Writes
//!
//! Appends are group-committed by one task ([`writer`]): one script per log per group, all
//! sent at once, so a group costs one round trip. Deletes are compare-and-swap scripts.

mod conn;
mod keys;
mod maintenance;
mod records;
mod scripts;
#[cfg(feature = "testsuite")]
pub mod testing;
mod writer;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::{RedisResult, Value};
use async_trait::async_trait;
use neurallog_core::{
    Entry, EntryId, LogName, TenantId,
    ingest::NewEvent,
    query::{LogScope, Matcher, ReadQuery, SearchQuery, TimeRange},
};
use tokio::sync::{mpsc, oneshot};

use crate::block::Block;
use crate::crypt::{Encryption, LogCipher, TenantCipher};
use crate::{
    ImportOutcome, LogSummary, Page, PurgeOutcome, ReencryptOutcome, Result, Scope, Storage,
    StorageError,
};
use conn::{Connection, map_err};
pub use conn::{DEFAULT_TIMEOUT, RedisOptions, redact_url};
pub use keys::{DEFAULT_PREFIX, TenantKeys};
use keys::{IndexMember, LogKeys};
use scripts::{DELETE_LOG_SCRIPT, DELETE_LOGS_COMPLETELY_SCRIPT, REPLACE_BLOCK_SCRIPT};

/// Index members fetched by the first `ZREVRANGEBYLEX` of a walk (a newest-N read rarely
/// needs more), and by the following ones (40 bytes each).
const INDEX_FIRST_CHUNK: usize = 16;
const INDEX_CHUNK: usize = 128;
/// Decoded-block cache size.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Most blocks fetched by one `HMGET` (many when blocks are small; the byte budget below
/// bounds memory when they are large).
const BATCH_MAX_BLOCKS: usize = 64;
/// Most uncompressed event bytes in one fetched batch (bounds a search's memory).
const BATCH_RAW_BUDGET: u64 = 8 * 1024 * 1024;
/// Times a read restarts because a block it was about to fetch was rewritten meanwhile.
const MAX_RESTARTS: usize = 64;
/// Logs removed per script while deleting a tenant.
const DELETE_CHUNK: usize = 256;

/// State shared by the storage handle and its writer task.
pub(crate) struct Shared {
    conn: Connection,
    prefix: String,
    /// Upper bound of one Redis operation, reconnect included.
    op_timeout: Duration,
    /// Append shares that were refused for an id below the log's floor and renumbered.
    renumbered: AtomicU64,
    /// Decoded blocks, keyed by the log's blocks key and the block's full index member.
    ///
    /// NB: a member names one immutable block content: a rewrite (entry deleted) changes the
    /// member's count, and ids are never reused within a log, so a cached block can never be
    /// stale — a changed block simply gets a new key and the old one ages out. The key
    /// carries the tenant, so the cache is as isolated as the key space.
    cache: crate::block::Cache,
    encryption: Encryption,
}

/// The cache key of a block: its log's blocks key and its index member.
fn cache_key(lk: &LogKeys, m: &IndexMember) -> Vec<u8> {
    let mut k = Vec::with_capacity(lk.blocks.len() + keys::MEMBER_LEN);
    k.extend_from_slice(lk.blocks.as_bytes());
    k.extend_from_slice(&m.encode());
    k
}

/// A block of a walk: decoded already (cached), or fetched and still encoded.
enum Fetched {
    Hit(Arc<Block>),
    Miss { key: Vec<u8>, bytes: Vec<u8> },
}

impl Fetched {
    /// The decoded block; a miss is decoded here and, when `fill`, cached.
    fn decode(
        self,
        cache: &crate::block::Cache,
        fill: bool,
        cipher: &LogCipher<'_>,
    ) -> Result<Arc<Block>> {
        match self {
            Fetched::Hit(b) => Ok(b),
            Fetched::Miss { key, bytes } => {
                let b = Arc::new(Block::decode(&bytes, cipher)?);
                if fill {
                    cache.insert(key, b.clone());
                }
                Ok(b)
            }
        }
    }
}

impl Shared {
    /// Runs a Redis call with the operation timeout, mapping its error.
    async fn bounded<T>(&self, fut: impl Future<Output = RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(r) => r.map_err(|e| map_err(&self.conn.target, e)),
            Err(_) => Err(StorageError::unavailable(format!(
                "redis at {}: no answer within {} ms",
                self.conn.target,
                self.op_timeout.as_millis()
            ))),
        }
    }

    fn tenant(&self, t: &TenantId) -> TenantKeys {
        TenantKeys::new(&self.prefix, t)
    }

    fn conn(&self) -> ::redis::aio::ConnectionManager {
        self.conn.manager.clone()
    }
}

/// The Redis storage backend.
#[derive(Clone)]
pub struct RedisStorage {
    shared: Arc<Shared>,
    writer: mpsc::Sender<writer::Command>,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("target", &self.shared.conn.target)
            .field("prefix", &self.shared.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStorage {
    /// Connects, checks the credentials and loads the scripts. Must run inside a Tokio
    /// runtime, which then also runs the backend's writer task.
    ///
    /// Fails with [`crate::ErrorKind::Unavailable`] and a one-line reason (unreachable,
    /// authentication, TLS, permission) that names the server but no secret.
    pub async fn connect(opts: RedisOptions) -> Result<Self> {
        let conn = conn::connect(&opts).await?;
        let shared = Arc::new(Shared {
            conn,
            prefix: opts
                .key_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            op_timeout: opts.timeout * 2,
            renumbered: AtomicU64::new(0),
            cache: crate::block::cache(CACHE_BYTES),
            encryption: opts.encryption.clone(),
        });
        let writer = writer::spawn(shared.clone());
        Ok(Self { shared, writer })
    }

    /// How the tenant's blocks are sealed: its data keys (created on first use), or none.
    async fn cipher(&self, tenant: &TenantId) -> Result<TenantCipher> {
        match &self.shared.encryption {
            Encryption::Off => Ok(TenantCipher::plaintext(tenant)),
            Encryption::On(ring) => ring.cipher(self, tenant).await,
        }
    }

    /// After a read failed on a block sealed with a key this replica does not know: the
    /// tenant's keys read again (another replica may have created or rotated one), to retry
    /// once with. `None` when retrying cannot help.
    async fn cipher_after(
        &self,
        tenant: &TenantId,
        e: &StorageError,
    ) -> Result<Option<TenantCipher>> {
        match &self.shared.encryption {
            Encryption::On(ring) if crate::crypt::is_unknown_key(e) => {
                Ok(Some(ring.reload(self, tenant).await?))
            }
            _ => Ok(None),
        }
    }

    /// `host:port db N` of the server (no credentials), for logs.
    pub fn target(&self) -> &str {
        &self.shared.conn.target
    }

    /// How many append shares had to be renumbered because another writer had committed a
    /// higher id to the same log first (a measure of contention between replicas).
    pub fn renumbered(&self) -> u64 {
        self.shared.renumbered.load(Ordering::Relaxed)
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<LogName>> {
        let mut c = self.shared.conn();
        let names: Vec<String> = self
            .shared
            .bounded(
                ::redis::cmd("ZRANGE")
                    .arg(self.shared.tenant(tenant).logs())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c),
            )
            .await?;
        names
            .into_iter()
            .map(|n| {
                LogName::new(n).map_err(|_| StorageError::corrupt("stored log name is invalid"))
            })
            .collect()
    }

    /// The block holding `id`: its raw index member, decoded member and decoded block.
    async fn block_holding(
        &self,
        lk: &LogKeys,
        id: EntryId,
        log: &LogName,
        cipher: &TenantCipher,
    ) -> Result<Option<(Vec<u8>, IndexMember, Arc<Block>)>> {
        for _ in 0..MAX_RESTARTS {
            let mut c = self.shared.conn();
            let members: Vec<Vec<u8>> = self
                .shared
                .bounded(
                    ::redis::cmd("ZRANGEBYLEX")
                        .arg(&lk.index)
                        .arg(keys::lex_at_or_above(id))
                        .arg("+")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1)
                        .query_async(&mut c),
                )
                .await?;
            let Some(raw) = members.into_iter().next() else {
                return Ok(None);
            };
            let m = IndexMember::decode(&raw)?;
            let key = cache_key(lk, &m);
            if let Some(b) = self.shared.cache.get(&key) {
                return Ok(Some((raw, m, b)));
            }
            let blob: Option<Vec<u8>> = self
                .shared
                .bounded(
                    ::redis::cmd("HGET")
                        .arg(&lk.blocks)
                        .arg(m.field().as_slice())
                        .query_async(&mut c),
                )
                .await?;
            let Some(bytes) = blob else {
                continue; // rewritten between the two calls: look again
            };
            let shared = self.shared.clone();
            let (log, cipher) = (log.clone(), cipher.clone());
            let block = blocking(move || {
                Fetched::Miss { key, bytes }.decode(&shared.cache, true, &cipher.log(&log))
            })
            .await?;
            return Ok(Some((raw, m, block)));
        }
        Err(StorageError::unavailable(
            "log changed too often during the read; try again",
        ))
    }
}

/// Runs CPU work (decompression, matching) on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::internal(format!("storage task failed: {e}")))?
}

/// Walks a log's blocks newest first, from the block that may hold ids just below `before`,
/// fetching the index in chunks and blocks in small batches.
struct Walk<'a> {
    shared: &'a Shared,
    keys: LogKeys,
    before: EntryId,
    range: TimeRange,
    /// The straddling block (newest id >= `before`) is still to be fetched.
    first_pending: bool,
    /// Exclusive upper bound of the next index chunk; `None` when the index is exhausted.
    upper: Option<Vec<u8>>,
    queue: VecDeque<IndexMember>,
    restarts: usize,
    /// Members to ask for in the next index chunk.
    chunk: usize,
}

impl<'a> Walk<'a> {
    fn new(shared: &'a Shared, keys: LogKeys, before: Option<EntryId>, range: TimeRange) -> Self {
        let before = before.unwrap_or(EntryId::MAX);
        let top = before == EntryId::MAX;
        Self {
            shared,
            keys,
            before,
            range,
            first_pending: !top,
            upper: Some(if top {
                b"+".to_vec()
            } else {
                keys::lex_below(before)
            }),
            queue: VecDeque::new(),
            restarts: 0,
            chunk: INDEX_FIRST_CHUNK,
        }
    }

    /// Reads the next chunk of index members into the queue.
    async fn fill(&mut self) -> Result<()> {
        let Some(upper) = self.upper.take() else {
            return Ok(());
        };
        let mut pipe = ::redis::pipe();
        if self.first_pending {
            pipe.cmd("ZRANGEBYLEX")
                .arg(&self.keys.index)
                .arg(keys::lex_at_or_above(self.before))
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(1);
        }
        pipe.cmd("ZREVRANGEBYLEX")
            .arg(&self.keys.index)
            .arg(upper)
            .arg("-")
            .arg("LIMIT")
            .arg(0)
            .arg(self.chunk);
        let mut c = self.shared.conn();
        let mut lists: Vec<Vec<Vec<u8>>> = self.shared.bounded(pipe.query_async(&mut c)).await?;
        let chunk = lists.pop().unwrap_or_default();
        if self.first_pending {
            self.first_pending = false;
            for raw in lists.into_iter().flatten() {
                self.queue.push_back(IndexMember::decode(&raw)?);
            }
        }
        if chunk.len() == self.chunk {
            self.upper = chunk.last().map(|last| keys::lex_below_member(last));
        }
        self.chunk = INDEX_CHUNK;
        for raw in chunk {
            self.queue.push_back(IndexMember::decode(&raw)?);
        }
        Ok(())
    }

    /// The next blocks, newest first: about `want` entries' worth, at most a bounded batch.
    /// `None` when the log has no more blocks in the window.
    async fn next_batch(&mut self, want: usize) -> Result<Option<Vec<Fetched>>> {
        loop {
            let mut chosen: Vec<IndexMember> = Vec::new();
            let (mut entries, mut raw) = (0usize, 0u64);
            while chosen.len() < BATCH_MAX_BLOCKS && entries < want && raw < BATCH_RAW_BUDGET {
                if self.queue.is_empty() {
                    if self.upper.is_none() {
                        break;
                    }
                    self.fill().await?;
                    continue;
                }
                let Some(m) = self.queue.pop_front() else {
                    break;
                };
                if self.range.overlaps(m.min_ts, m.max_ts) {
                    entries += m.count as usize;
                    raw += u64::from(m.raw_bytes);
                    chosen.push(m);
                }
            }
            if chosen.is_empty() {
                return Ok(None);
            }
            // Cached blocks need no fetch; the rest come in one HMGET.
            let mut got: Vec<Option<Fetched>> = Vec::with_capacity(chosen.len());
            let mut missing: Vec<(usize, Vec<u8>)> = Vec::new();
            for m in &chosen {
                let key = cache_key(&self.keys, m);
                match self.shared.cache.get(&key) {
                    Some(b) => got.push(Some(Fetched::Hit(b))),
                    None => {
                        missing.push((got.len(), key));
                        got.push(None);
                    }
                }
            }
            if !missing.is_empty() {
                let mut cmd = ::redis::cmd("HMGET");
                cmd.arg(&self.keys.blocks);
                for (at, _) in &missing {
                    cmd.arg(chosen[*at].field().as_slice());
                }
                let mut c = self.shared.conn();
                let blobs: Vec<Option<Vec<u8>>> =
                    self.shared.bounded(cmd.query_async(&mut c)).await?;
                for ((at, key), blob) in missing.into_iter().zip(blobs) {
                    if let Some(bytes) = blob {
                        got[at] = Some(Fetched::Miss { key, bytes });
                    }
                }
            }
            // Blocks in order up to the first one that vanished: rewritten (an entry deleted)
            // or removed since the index was read. The walk then reads the index again from
            // that block down.
            let mut complete = Vec::with_capacity(got.len());
            for (m, f) in chosen.iter().zip(got) {
                match f {
                    Some(f) => complete.push(f),
                    None => {
                        self.restarts += 1;
                        if self.restarts > MAX_RESTARTS {
                            return Err(StorageError::unavailable(
                                "log changed too often during the read; try again",
                            ));
                        }
                        self.queue.clear();
                        self.upper = Some(keys::lex_at_or_below(m.last_id));
                        break;
                    }
                }
            }
            let got = complete;
            if got.is_empty() {
                continue;
            }
            return Ok(Some(got));
        }
    }
}

/// Entries of `blocks` (newest first) below `before`, in `range`, accepted by `matcher` (when
/// given), at most `want`. Blocks decoded here are cached by reads, not by searches, so that
/// one scan of a whole log does not evict every reader's hot blocks.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn collect(
    cache: &crate::block::Cache,
    blocks: Vec<Fetched>,
    log: &LogName,
    before: EntryId,
    range: TimeRange,
    matcher: Option<&Matcher>,
    want: usize,
    cipher: &TenantCipher,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let cipher = cipher.log(log);
    for f in blocks {
        let b = f.decode(cache, matcher.is_none(), &cipher)?;
        let upto = b.count_before(before);
        if b.take_newest(log, upto, range, matcher, want, &mut out)? {
            return Ok(out);
        }
    }
    Ok(out)
}

impl RedisStorage {
    /// Newest-first entries of one log, at most `want`, optionally matching a search.
    #[allow(clippy::too_many_arguments)] // private; the cipher joined the scan's parameters
    async fn scan_log(
        &self,
        tenant: &TenantId,
        log: &LogName,
        before: Option<EntryId>,
        range: TimeRange,
        matcher: Option<&Matcher>,
        want: usize,
        cipher: &TenantCipher,
    ) -> Result<Vec<Entry>> {
        let keys = self.shared.tenant(tenant).log(log);
        let mut walk = Walk::new(&self.shared, keys, before, range);
        let bound = before.unwrap_or(EntryId::MAX);
        let mut entries = Vec::new();
        // A read knows from the index how many blocks hold the entries it needs, and asks for
        // just those. A search cannot tell how many will match: it starts with as many blocks
        // as would hold `want` entries and asks for four times more each round; from the
        // second round on it fetches the next batch while the blocking pool scans the current
        // one. So a common word costs one small fetch, and a rare one streams at full speed.
        let search = matcher.is_some();
        let mut hint = want;
        let mut next = walk.next_batch(hint).await?;
        let mut ahead = false;
        while entries.len() < want {
            let Some(blocks) = next.take() else {
                break;
            };
            let shared = self.shared.clone();
            let (log, matcher, need) = (log.clone(), matcher.cloned(), want - entries.len());
            let cipher = cipher.clone();
            let scan = blocking(move || {
                collect(
                    &shared.cache,
                    blocks,
                    &log,
                    bound,
                    range,
                    matcher.as_ref(),
                    need,
                    &cipher,
                )
            });
            let got = if ahead {
                hint = hint.saturating_mul(4);
                let (got, fetched) = tokio::join!(scan, walk.next_batch(hint));
                next = fetched?;
                got?
            } else {
                let got = scan.await?;
                let have = entries.len() + got.len();
                if have < want {
                    hint = if search {
                        hint.saturating_mul(4)
                    } else {
                        want - have
                    };
                    next = walk.next_batch(hint).await?;
                }
                ahead = search;
                got
            };
            entries.extend(got);
        }
        Ok(entries)
    }
}

fn parse_i64(v: &Option<String>) -> Result<Option<i64>> {
    v.as_deref()
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| StorageError::corrupt("redis log counters are damaged"))
        })
        .transpose()
}

fn summary_of(fields: &[Option<String>]) -> Result<LogSummary> {
    let [count, bytes, min_ts, max_ts] = fields else {
        return Err(StorageError::corrupt("redis log counters are damaged"));
    };
    let count = parse_i64(count)?.unwrap_or(0).max(0) as u64;
    if count == 0 {
        return Ok(LogSummary::default());
    }
    Ok(LogSummary {
        count,
        bytes: parse_i64(bytes)?.unwrap_or(0).max(0) as u64,
        min_ts: parse_i64(min_ts)?,
        max_ts: parse_i64(max_ts)?,
    })
}

fn hmget_summary(meta: &str) -> ::redis::Cmd {
    let mut cmd = ::redis::cmd("HMGET");
    cmd.arg(meta).arg(&["count", "bytes", "min_ts", "max_ts"]);
    cmd
}

#[async_trait]
impl Storage for RedisStorage {
    fn backend(&self) -> &'static str {
        "redis"
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
        let (reply, rx) = oneshot::channel();
        let cmd = writer::Command::Append {
            tenant: tenant.clone(),
            log: log.clone(),
            events,
            cipher,
            reply,
        };
        self.writer
            .send(cmd)
            .await
            .map_err(|_| StorageError::unavailable("redis writer stopped"))?;
        rx.await
            .map_err(|_| StorageError::unavailable("redis writer stopped"))?
    }

    async fn list_logs(&self, tenant: &TenantId) -> Result<Vec<LogName>> {
        self.list(tenant).await
    }

    async fn read(&self, tenant: &TenantId, log: &LogName, q: &ReadQuery) -> Result<Page> {
        let mut cipher = self.cipher(tenant).await?;
        let entries = loop {
            match self
                .scan_log(tenant, log, q.before, q.range, None, q.limit + 1, &cipher)
                .await
            {
                Err(e) => match self.cipher_after(tenant, &e).await? {
                    Some(c) if c.keys_differ(&cipher) => cipher = c,
                    _ => return Err(e),
                },
                Ok(entries) => break entries,
            }
        };
        Ok(crate::paginate(entries, q.limit))
    }

    async fn get(&self, tenant: &TenantId, log: &LogName, id: EntryId) -> Result<Option<Entry>> {
        let mut cipher = self.cipher(tenant).await?;
        let lk = self.shared.tenant(tenant).log(log);
        let found = loop {
            match self.block_holding(&lk, id, log, &cipher).await {
                Err(e) => match self.cipher_after(tenant, &e).await? {
                    Some(c) if c.keys_differ(&cipher) => cipher = c,
                    _ => return Err(e),
                },
                Ok(found) => break found,
            }
        };
        let Some((_, _, b)) = found else {
            return Ok(None);
        };
        b.find(id).map(|i| b.entry(i, log)).transpose()
    }

    async fn delete_entry(&self, tenant: &TenantId, log: &LogName, id: EntryId) -> Result<bool> {
        let mut cipher = self.cipher(tenant).await?;
        let keys = self.shared.tenant(tenant);
        let lk = keys.log(log);
        for _ in 0..MAX_RESTARTS {
            let held = match self.block_holding(&lk, id, log, &cipher).await {
                Err(e) => match self.cipher_after(tenant, &e).await? {
                    Some(c) if c.keys_differ(&cipher) => {
                        cipher = c;
                        continue;
                    }
                    _ => return Err(e),
                },
                Ok(held) => held,
            };
            let Some((raw, _, block)) = held else {
                return Ok(false);
            };
            let Some(pos) = block.find(id) else {
                return Ok(false);
            };
            let removed = block.data(pos).len();
            let rest = block.rebuild_without(pos);
            let sealed = if rest.is_empty() {
                None
            } else {
                let (log, cipher) = (log.clone(), cipher.clone());
                Some(blocking(move || writer::seal(&rest, &cipher.log(&log))).await?)
            };
            let (new_member, new_block) = match &sealed {
                Some((m, b)) => (m.encode().to_vec(), b.as_slice()),
                None => (Vec::new(), &[][..]),
            };
            let mut inv = REPLACE_BLOCK_SCRIPT.prepare_invoke();
            inv.key(&lk.meta)
                .key(&lk.index)
                .key(&lk.blocks)
                .key(keys.logs())
                .arg(log.as_str())
                .arg(raw.as_slice())
                .arg(new_member.as_slice())
                .arg(new_block)
                .arg(format!("-{removed}"));
            let mut c = self.shared.conn();
            let done: i64 = self.shared.bounded(inv.invoke_async(&mut c)).await?;
            if done == 1 {
                return Ok(true);
            }
            // The block changed since it was read: read it again.
        }
        Err(StorageError::unavailable(
            "log changed too often during the delete; try again",
        ))
    }

    async fn delete_log(&self, tenant: &TenantId, log: &LogName) -> Result<u64> {
        let keys = self.shared.tenant(tenant);
        let lk = keys.log(log);
        let mut inv = DELETE_LOG_SCRIPT.prepare_invoke();
        inv.key(&lk.meta)
            .key(&lk.index)
            .key(&lk.blocks)
            .key(keys.logs())
            .arg(log.as_str());
        let mut c = self.shared.conn();
        let n: i64 = self.shared.bounded(inv.invoke_async(&mut c)).await?;
        Ok(n.max(0) as u64)
    }

    async fn search(&self, tenant: &TenantId, q: &SearchQuery) -> Result<Page> {
        let logs = match &q.scope {
            LogScope::One(l) => vec![l.clone()],
            LogScope::All => self.list(tenant).await?,
        };
        let mut cipher = self.cipher(tenant).await?;
        let mut all = Vec::new();
        for log in &logs {
            let (m, want) = (Some(&q.matcher), q.limit + 1);
            let found = loop {
                match self
                    .scan_log(tenant, log, q.before, q.range, m, want, &cipher)
                    .await
                {
                    Err(e) => match self.cipher_after(tenant, &e).await? {
                        Some(c) if c.keys_differ(&cipher) => cipher = c,
                        _ => return Err(e),
                    },
                    Ok(found) => break found,
                }
            };
            all.extend(found);
        }
        all.sort_by_key(|e| std::cmp::Reverse(e.id));
        all.truncate(q.limit + 1);
        Ok(crate::paginate(all, q.limit))
    }

    async fn log_summary(&self, tenant: &TenantId, log: &LogName) -> Result<LogSummary> {
        let lk = self.shared.tenant(tenant).log(log);
        let mut c = self.shared.conn();
        let fields: Vec<Option<String>> = self
            .shared
            .bounded(hmget_summary(&lk.meta).query_async(&mut c))
            .await?;
        summary_of(&fields)
    }

    async fn tenant_summary(&self, tenant: &TenantId) -> Result<Vec<(LogName, LogSummary)>> {
        let logs = self.list(tenant).await?;
        if logs.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.shared.tenant(tenant);
        let mut pipe = ::redis::pipe();
        for l in &logs {
            pipe.add_command(hmget_summary(&keys.log(l).meta));
        }
        let mut c = self.shared.conn();
        let all: Vec<Vec<Option<String>>> = self.shared.bounded(pipe.query_async(&mut c)).await?;
        let mut out = Vec::with_capacity(logs.len());
        for (l, fields) in logs.into_iter().zip(all) {
            let s = summary_of(&fields)?;
            if s.count > 0 {
                out.push((l, s));
            }
        }
        Ok(out)
    }

    async fn delete_tenant(&self, tenant: &TenantId) -> Result<u64> {
        let keys = self.shared.tenant(tenant);
        let mut removed = 0u64;
        loop {
            let mut c = self.shared.conn();
            let mut names: Vec<String> = self
                .shared
                .bounded(
                    ::redis::cmd("ZRANGE")
                        .arg(keys.names())
                        .arg(0)
                        .arg(DELETE_CHUNK - 1)
                        .query_async(&mut c),
                )
                .await?;
            if names.is_empty() {
                // Logs written before `names` existed, if any.
                names = self
                    .shared
                    .bounded(
                        ::redis::cmd("ZRANGE")
                            .arg(keys.logs())
                            .arg(0)
                            .arg(DELETE_CHUNK - 1)
                            .query_async(&mut c),
                    )
                    .await?;
            }
            if names.is_empty() {
                break;
            }
            let mut inv = DELETE_LOGS_COMPLETELY_SCRIPT.prepare_invoke();
            inv.key(keys.logs()).key(keys.names());
            for n in &names {
                let l = LogName::new(n.as_str())
                    .map_err(|_| StorageError::corrupt("stored log name is invalid"))?;
                let lk = keys.log(&l);
                inv.key(lk.meta).key(lk.index).key(lk.blocks);
                inv.arg(n.as_str());
            }
            let n: i64 = self.shared.bounded(inv.invoke_async(&mut c)).await?;
            removed += n.max(0) as u64;
        }
        records::delete_scope(&self.shared, Scope::Tenant(tenant)).await?;
        // Its data keys went with its metadata: a later write creates new ones.
        if let Some(ring) = self.shared.encryption.keyring() {
            ring.forget(tenant);
        }
        Ok(removed)
    }

    async fn meta_get(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<Option<Vec<u8>>> {
        records::get(&self.shared, scope, space, key).await
    }

    async fn meta_put(
        &self,
        scope: Scope<'_>,
        space: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        records::put(&self.shared, scope, space, key, value).await
    }

    async fn meta_delete(&self, scope: Scope<'_>, space: &str, key: &str) -> Result<bool> {
        records::delete(&self.shared, scope, space, key).await
    }

    async fn meta_list(&self, scope: Scope<'_>, space: &str) -> Result<Vec<(String, Vec<u8>)>> {
        records::list(&self.shared, scope, space).await
    }

    async fn audit_append(&self, scope: Scope<'_>, records: Vec<Vec<u8>>) -> Result<u64> {
        records::audit_append(&self.shared, scope, records).await
    }

    async fn audit_read(
        &self,
        scope: Scope<'_>,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        records::audit_read(&self.shared, scope, from, limit).await
    }

    async fn audit_len(&self, scope: Scope<'_>) -> Result<u64> {
        records::audit_len(&self.shared, scope).await
    }

    async fn ping(&self) -> Result<()> {
        let mut c = self.shared.conn();
        let _: String = self
            .shared
            .bounded(::redis::cmd("PING").query_async(&mut c))
            .await?;
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        // Every acknowledged append is already in Redis (and as durable as its persistence
        // settings make it); wait for the queued ones, then check Redis answers.
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Command::Barrier { reply })
            .await
            .map_err(|_| StorageError::unavailable("redis writer stopped"))?;
        rx.await
            .map_err(|_| StorageError::unavailable("redis writer stopped"))?;
        self.ping().await
    }

    async fn disk_usage(&self) -> Result<Option<u64>> {
        // The memory of the whole dataset (Redis keeps it all in memory; its files hold the
        // same data). An ACL user without INFO (it is @dangerous) gets `None`.
        let mut c = self.shared.conn();
        let info: Value = match self
            .shared
            .bounded(::redis::cmd("INFO").arg("memory").query_async(&mut c))
            .await
        {
            Ok(v) => v,
            Err(e) if e.message.contains("permission") => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = match info {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::VerbatimString { text, .. } => text,
            _ => return Ok(None),
        };
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("used_memory_dataset:"))
            .and_then(|v| v.trim().parse().ok()))
    }

    async fn purge_before(
        &self,
        tenant: &TenantId,
        log: &LogName,
        cutoff_ms: i64,
        max_blocks: usize,
    ) -> Result<PurgeOutcome> {
        self.purge_impl(tenant, log, cutoff_ms, max_blocks).await
    }

    async fn erase(&self, tenant: &TenantId, log: &LogName, matcher: &Matcher) -> Result<u64> {
        self.erase_impl(tenant, log, matcher).await
    }

    async fn reencrypt(
        &self,
        tenant: &TenantId,
        log: &LogName,
        max_blocks: usize,
    ) -> Result<ReencryptOutcome> {
        self.reencrypt_impl(tenant, log, max_blocks).await
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
        self.import_impl(tenant, log, entries).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_from_counters() {
        let s = |v: &[Option<&str>]| {
            summary_of(&v.iter().map(|x| x.map(str::to_owned)).collect::<Vec<_>>())
        };
        assert_eq!(
            s(&[None, None, None, None]).expect("test value"),
            LogSummary::default()
        );
        assert_eq!(
            s(&[Some("2"), Some("15"), Some("3000"), Some("5000")]).expect("test value"),
            LogSummary {
                count: 2,
                bytes: 15,
                min_ts: Some(3000),
                max_ts: Some(5000)
            }
        );
        assert_eq!(
            s(&[Some("0"), Some("0"), None, None]).expect("test value"),
            LogSummary::default()
        );
        assert!(s(&[Some("x"), None, None, None]).is_err());
    }
}
