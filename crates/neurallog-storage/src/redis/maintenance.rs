//! Retention, erasure and import on Redis: every one reads blocks, decides in the server,
//! and commits with the `REWRITE` compare-and-swap script, re-reading when a concurrent
//! writer changed a block first. Appends are never blocked and never lost: they only add
//! blocks above the log's id floor, which `REWRITE` checks (import) or never touches.

use std::sync::Arc;

use neurallog_core::{Entry, EntryId, LogName, TenantId, query::Matcher};

use super::keys::{self, IndexMember, LogKeys, TenantKeys};
use super::scripts::REWRITE_SCRIPT;
use super::{MAX_RESTARTS, RedisStorage, blocking, writer};
use crate::block::{Block, Builder};
use crate::crypt::LogCipher;
use crate::{ImportOutcome, PurgeOutcome, ReencryptOutcome, Result, StorageError};

/// Index members read per step of an erasure scan.
const ERASE_CHUNK: usize = 64;

/// One `REWRITE` call being built.
struct Rewrite<'a> {
    keys: &'a TenantKeys,
    lk: &'a LogKeys,
    log: &'a LogName,
    floor: Option<EntryId>,
    span: Option<(i64, i64)>,
    range: Option<(Vec<u8>, Vec<u8>)>,
    old: Vec<Vec<u8>>,
    new: Vec<(IndexMember, Vec<u8>)>,
}

impl<'a> Rewrite<'a> {
    fn new(keys: &'a TenantKeys, lk: &'a LogKeys, log: &'a LogName) -> Self {
        Self {
            keys,
            lk,
            log,
            floor: None,
            span: None,
            range: None,
            old: Vec::new(),
            new: Vec::new(),
        }
    }

    /// Runs the script: `true` when committed, `false` when a block changed meanwhile.
    async fn run(&self, store: &RedisStorage) -> Result<bool> {
        let mut inv = REWRITE_SCRIPT.prepare_invoke();
        inv.key(&self.lk.meta)
            .key(&self.lk.index)
            .key(&self.lk.blocks)
            .key(self.keys.logs())
            .key(self.keys.names())
            .arg(self.log.as_str())
            .arg(
                self.floor
                    .map(|f| f.to_bytes().to_vec())
                    .unwrap_or_default(),
            );
        match self.span {
            Some((lo, hi)) => inv.arg(lo.to_string()).arg(hi.to_string()),
            None => inv.arg("").arg(""),
        };
        match &self.range {
            Some((lo, hi)) => inv.arg(lo.as_slice()).arg(hi.as_slice()),
            None => inv.arg("").arg(""),
        };
        inv.arg(self.old.len());
        for m in &self.old {
            inv.arg(m.as_slice());
        }
        for (m, b) in &self.new {
            inv.arg(m.encode().as_slice()).arg(b.as_slice());
        }
        let mut c = store.shared.conn();
        let done: i64 = store.shared.bounded(inv.invoke_async(&mut c)).await?;
        Ok(done == 1)
    }
}

/// Seals the entries (id order) into blocks.
fn seal_all(
    rows: &[(EntryId, i64, &[u8])],
    cipher: &LogCipher<'_>,
) -> Result<Vec<(IndexMember, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut b = Builder::new();
    for (id, ts, data) in rows {
        if b.is_full_for(data.len()) {
            out.push(writer::seal(&b, cipher)?);
            b = Builder::new();
        }
        b.push(*id, *ts, data);
    }
    if !b.is_empty() {
        out.push(writer::seal(&b, cipher)?);
    }
    Ok(out)
}

/// Whether a block has expired at `cutoff_ms` (see `Storage::purge_before`).
fn expired(m: &IndexMember, cutoff_ms: i64) -> bool {
    m.max_ts < cutoff_ms || m.last_id.millis() < cutoff_ms
}

impl RedisStorage {
    async fn index_range(
        &self,
        index: &str,
        lo: &[u8],
        hi: &[u8],
        n: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut c = self.shared.conn();
        self.shared
            .bounded(
                ::redis::cmd("ZRANGEBYLEX")
                    .arg(index)
                    .arg(lo)
                    .arg(hi)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(n)
                    .query_async(&mut c),
            )
            .await
    }

    async fn fetch_blocks(
        &self,
        lk: &LogKeys,
        members: &[IndexMember],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(&lk.blocks);
        for m in members {
            cmd.arg(m.field().as_slice());
        }
        let mut c = self.shared.conn();
        self.shared.bounded(cmd.query_async(&mut c)).await
    }

    pub(super) async fn purge_impl(
        &self,
        tenant: &TenantId,
        log: &LogName,
        cutoff_ms: i64,
        max_blocks: usize,
    ) -> Result<PurgeOutcome> {
        let max_blocks = max_blocks.max(1);
        let keys = self.shared.tenant(tenant);
        let lk = keys.log(log);
        for _ in 0..MAX_RESTARTS {
            // The oldest `max_blocks + 1` members say everything: which expired, and
            // whether one more expired block waits behind the budget.
            let raw = self
                .index_range(&lk.index, b"-", b"+", max_blocks + 1)
                .await?;
            let mut out = PurgeOutcome::default();
            let mut rw = Rewrite::new(&keys, &lk, log);
            for r in raw {
                let m = IndexMember::decode(&r)?;
                if !expired(&m, cutoff_ms) {
                    break;
                }
                if rw.old.len() == max_blocks {
                    out.more = true;
                    break;
                }
                out.blocks += 1;
                out.entries += u64::from(m.count);
                rw.old.push(r);
            }
            if rw.old.is_empty() || rw.run(self).await? {
                return Ok(out);
            }
        }
        Err(StorageError::unavailable(
            "log changed too often during the purge; try again",
        ))
    }

    pub(super) async fn erase_impl(
        &self,
        tenant: &TenantId,
        log: &LogName,
        matcher: &Matcher,
    ) -> Result<u64> {
        let cipher = self.cipher(tenant).await?;
        let keys = self.shared.tenant(tenant);
        let lk = keys.log(log);
        let mut erased = 0u64;
        let mut lo = b"-".to_vec();
        while let Some((members, blobs)) = self.next_chunk(&lk, &mut lo).await? {
            for (m, blob) in members.into_iter().zip(blobs) {
                // A block gone since the index was read was rewritten or purged: the rewrite
                // is looked up by id below, like any block that changed under us.
                let mut current = blob.map(|b| (m, b));
                let mut attempts = 0;
                loop {
                    let (member, bytes) = match current.take() {
                        Some(c) => c,
                        None => match self.refetch(&lk, m.last_id).await? {
                            Some(c) => c,
                            None => break,
                        },
                    };
                    let (matcher, c, l) = (matcher.clone(), cipher.clone(), log.clone());
                    let prepared =
                        blocking(move || prepare_erase(&bytes, &matcher, &c.log(&l))).await?;
                    let Some((n, rest)) = prepared else {
                        break;
                    };
                    let mut rw = Rewrite::new(&keys, &lk, log);
                    rw.old.push(member.encode().to_vec());
                    rw.new = rest;
                    if rw.run(self).await? {
                        erased += n;
                        break;
                    }
                    attempts += 1;
                    if attempts > MAX_RESTARTS {
                        return Err(StorageError::unavailable(
                            "log changed too often during the erasure; try again",
                        ));
                    }
                }
            }
        }
        Ok(erased)
    }

    pub(super) async fn reencrypt_impl(
        &self,
        tenant: &TenantId,
        log: &LogName,
        max_blocks: usize,
    ) -> Result<ReencryptOutcome> {
        let cipher = self.cipher(tenant).await?;
        let Some(current) = cipher.current_key().map(|k| k.to_bytes()) else {
            return Ok(ReencryptOutcome::default());
        };
        let keys = self.shared.tenant(tenant);
        let lk = keys.log(log);
        let mut out = ReencryptOutcome::default();
        let mut lo = b"-".to_vec();
        while let Some((members, blobs)) = self.next_chunk(&lk, &mut lo).await? {
            for (member, blob) in members.into_iter().zip(blobs) {
                let Some(bytes) = blob else {
                    continue; // rewritten or purged meanwhile, with the current key
                };
                if crate::block::sealed_key_id(&bytes).is_none_or(|id| id == current) {
                    continue;
                }
                if out.blocks as usize >= max_blocks.max(1) {
                    out.more = true;
                    return Ok(out);
                }
                let (c, l) = (cipher.clone(), log.clone());
                let new = blocking(move || {
                    let lc = c.log(&l);
                    let b = Block::decode(&bytes, &lc)?;
                    let rows: Vec<(EntryId, i64, &[u8])> = (0..b.len())
                        .map(|i| (b.id(i), b.ts(i), b.data(i)))
                        .collect();
                    seal_all(&rows, &lc)
                })
                .await?;
                let mut rw = Rewrite::new(&keys, &lk, log);
                rw.old.push(member.encode().to_vec());
                rw.new = new;
                // NB: a block changed meanwhile (an erasure, a delete) was written again with
                // the current key by that change, so a refused rewrite needs no retry.
                if rw.run(self).await? {
                    out.blocks += 1;
                }
            }
        }
        Ok(out)
    }

    /// The next chunk of a log's index after `lo` (advanced past it), with the blocks it
    /// names (`None` for one gone since the index was read); `None` at the end of the log.
    #[allow(clippy::type_complexity)] // private helper
    async fn next_chunk(
        &self,
        lk: &LogKeys,
        lo: &mut Vec<u8>,
    ) -> Result<Option<(Vec<IndexMember>, Vec<Option<Vec<u8>>>)>> {
        let raw = self.index_range(&lk.index, lo, b"+", ERASE_CHUNK).await?;
        let Some(last) = raw.last() else {
            return Ok(None);
        };
        *lo = [b"(".as_slice(), last].concat();
        let members = raw
            .iter()
            .map(|r| IndexMember::decode(r))
            .collect::<Result<Vec<_>>>()?;
        let blobs = self.fetch_blocks(lk, &members).await?;
        Ok(Some((members, blobs)))
    }

    /// The block that now holds ids up to `id` (the first whose newest id is >= `id`), with
    /// its member; `None` when there is none.
    async fn refetch(&self, lk: &LogKeys, id: EntryId) -> Result<Option<(IndexMember, Vec<u8>)>> {
        for _ in 0..MAX_RESTARTS {
            let raw = self
                .index_range(&lk.index, &keys::lex_at_or_above(id), b"+", 1)
                .await?;
            let Some(r) = raw.first() else {
                return Ok(None);
            };
            let m = IndexMember::decode(r)?;
            if let Some(Some(b)) = self.fetch_blocks(lk, &[m]).await?.pop() {
                return Ok(Some((m, b)));
            }
        }
        Err(StorageError::unavailable(
            "log changed too often; try again",
        ))
    }

    pub(super) async fn import_impl(
        &self,
        tenant: &TenantId,
        log: &LogName,
        mut entries: Vec<Entry>,
    ) -> Result<ImportOutcome> {
        entries.sort_by_key(|e| e.id);
        let before = entries.len();
        entries.dedup_by_key(|e| e.id);
        let dups = (before - entries.len()) as u64;
        let (Some(lo), Some(hi)) = (entries.first().map(|e| e.id), entries.last().map(|e| e.id))
        else {
            return Ok(ImportOutcome {
                imported: 0,
                skipped: dups,
            });
        };
        let cipher = self.cipher(tenant).await?;
        let keys = self.shared.tenant(tenant);
        let lk = keys.log(log);
        let entries = Arc::new(entries);
        for _ in 0..MAX_RESTARTS {
            // The blocks the import's id span meets: those with a newest id in [lo, hi], and
            // the first one above hi (it may hold ids below hi).
            let mut raw = self
                .index_range(
                    &lk.index,
                    &keys::lex_at_or_above(lo),
                    &keys::lex_at_or_below(hi),
                    usize::MAX >> 1,
                )
                .await?;
            let above = self
                .index_range(&lk.index, &keys::lex_at_or_below(hi), b"+", 1)
                .await?;
            raw.extend(above);
            let members = raw
                .iter()
                .map(|r| IndexMember::decode(r))
                .collect::<Result<Vec<_>>>()?;
            let blobs = self.fetch_blocks(&lk, &members).await?;
            let Some(blobs) = blobs.into_iter().collect::<Option<Vec<_>>>() else {
                continue; // a block changed between the two reads
            };
            let (ents, c, l) = (entries.clone(), cipher.clone(), log.clone());
            let (out, span, new, above_used) =
                blocking(move || merge_import(&blobs, &ents, hi, &c.log(&l))).await?;
            if !above_used && members.last().is_some_and(|m| m.last_id > hi) {
                raw.pop(); // the block above does not reach down into the import: untouched
            }
            let top = match raw.last() {
                Some(r) => IndexMember::decode(r)?.last_id.max(hi),
                None => hi,
            };
            let out = ImportOutcome {
                imported: out.imported,
                skipped: out.skipped + dups,
            };
            if out.imported == 0 {
                return Ok(out);
            }
            let mut rw = Rewrite::new(&keys, &lk, log);
            rw.floor = Some(hi);
            rw.span = span;
            rw.range = Some((keys::lex_at_or_above(lo), keys::lex_at_or_below(top)));
            rw.old = raw;
            rw.new = new;
            if rw.run(self).await? {
                return Ok(out);
            }
        }
        Err(StorageError::unavailable(
            "log changed too often during the import; try again",
        ))
    }
}

/// The block without the entries `matcher` accepts: `None` when none matches, else the
/// number removed and the rewritten block (none when it is now empty).
#[allow(clippy::type_complexity)] // private helper
fn prepare_erase(
    bytes: &[u8],
    matcher: &Matcher,
    cipher: &LogCipher<'_>,
) -> Result<Option<(u64, Vec<(IndexMember, Vec<u8>)>)>> {
    let b = Block::decode(bytes, cipher)?;
    let hits = b.matching(matcher, b.len());
    if hits.is_empty() {
        return Ok(None);
    }
    let rows: Vec<(EntryId, i64, &[u8])> = (0..b.len())
        .filter(|i| hits.binary_search(i).is_err())
        .map(|i| (b.id(i), b.ts(i), b.data(i)))
        .collect();
    // Kept entries all came from one block, so they fit in one.
    Ok(Some((hits.len() as u64, seal_all(&rows, cipher)?)))
}

/// Merges imported entries (sorted, unique, up to id `hi`) with the existing blocks they may
/// meet; the last block is left out (and the flag says so) when it starts above `hi`.
#[allow(clippy::type_complexity)] // private helper
fn merge_import(
    blobs: &[Vec<u8>],
    entries: &[Entry],
    hi: EntryId,
    cipher: &LogCipher<'_>,
) -> Result<(
    ImportOutcome,
    Option<(i64, i64)>,
    Vec<(IndexMember, Vec<u8>)>,
    bool,
)> {
    let mut blocks = blobs
        .iter()
        .map(|b| Block::decode(b, cipher))
        .collect::<Result<Vec<_>>>()?;
    let above_used = match blocks.last() {
        Some(b) if !b.is_empty() && b.id(0) > hi => {
            blocks.pop();
            false
        }
        _ => true,
    };
    let mut rows: Vec<(EntryId, i64, &[u8])> = Vec::new();
    for b in &blocks {
        for i in 0..b.len() {
            rows.push((b.id(i), b.ts(i), b.data(i)));
        }
    }
    let existing = rows.len();
    let mut out = ImportOutcome::default();
    let mut span: Option<(i64, i64)> = None;
    for e in entries {
        if rows[..existing]
            .binary_search_by_key(&e.id, |r| r.0)
            .is_ok()
        {
            out.skipped += 1;
            continue;
        }
        rows.push((e.id, e.timestamp, e.data.get().as_bytes()));
        out.imported += 1;
        span = Some(match span {
            Some((lo, hi)) => (lo.min(e.timestamp), hi.max(e.timestamp)),
            None => (e.timestamp, e.timestamp),
        });
    }
    rows.sort_by_key(|r| r.0);
    Ok((out, span, seal_all(&rows, cipher)?, above_used))
}
