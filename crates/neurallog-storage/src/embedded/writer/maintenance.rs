//! The writer's maintenance commands: retention purge, erasure and import (restore).
//!
//! They run on the writer thread like deletes, so that they never interleave with a group
//! commit: a block is read, rewritten and replaced in one atomic batch, and an append queued
//! meanwhile is committed after it, never lost.

use std::sync::Arc;

use fjall::PersistMode;
use neurallog_core::{Entry, EntryId, LogName, TenantId, id::IdGenerator, query::Matcher};

use super::{Writer, flush_block};
use crate::block::{self, Block, Builder};
use crate::crypt::LogCipher;
use crate::embedded::{io_err, keys};
use crate::{ImportOutcome, PurgeOutcome, Result, StorageError};

/// The id stored in a block key (its newest entry).
fn key_id(key: &[u8], prefix_len: usize) -> Result<EntryId> {
    let raw: [u8; 16] = key
        .get(prefix_len..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| StorageError::corrupt("block key is damaged"))?;
    Ok(EntryId::from_bytes(raw))
}

impl Writer {
    pub(super) fn purge(
        &mut self,
        tenant: &TenantId,
        log: &LogName,
        cutoff_ms: i64,
        max_blocks: usize,
        cipher: &LogCipher<'_>,
    ) -> Result<PurgeOutcome> {
        let max_blocks = max_blocks.max(1) as u64;
        let prefix = keys::log_prefix(tenant, log);
        let meta_key = keys::meta_key(tenant, log);
        let mut meta = self.meta(&meta_key)?;
        let mut out = PurgeOutcome::default();
        let mut removed = Vec::new();
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        for kv in self.tree.blocks.prefix(&prefix) {
            let (k, v) = kv.into_inner().map_err(io_err)?;
            // The key's id says when the block's newest entry was accepted; only when that
            // is after the cut-off does the header (the event times) decide.
            let accepted_before = key_id(&k, prefix.len())?.millis() < cutoff_ms;
            if !accepted_before && block::header(&v)?.max_ts >= cutoff_ms {
                break;
            }
            if out.blocks >= max_blocks {
                out.more = true;
                break;
            }
            let b = self.tree.decode(&k, &v, false, cipher)?;
            for i in 0..b.len() {
                meta.remove(b.data(i).len());
            }
            out.blocks += 1;
            out.entries += b.len() as u64;
            batch.remove(&self.tree.blocks, k.to_vec());
            removed.push(k.to_vec());
        }
        if out.blocks == 0 {
            return Ok(out);
        }
        stage_meta(&mut batch, self, &meta_key, &meta);
        let outcome = self.commit(batch, vec![(meta_key, meta)]);
        for k in &removed {
            self.tree.cache.remove(k);
        }
        outcome?;
        Ok(out)
    }

    /// Rewrites the blocks stored under `candidates` (keys of one log) without the entries
    /// `matcher` accepts. A candidate rewritten or removed since it was chosen is read as it is
    /// now (or skipped), so the outcome is the same as if everything ran here.
    pub(super) fn erase(
        &mut self,
        tenant: &TenantId,
        log: &LogName,
        candidates: &[Vec<u8>],
        matcher: &Matcher,
        cipher: &LogCipher<'_>,
    ) -> Result<u64> {
        let prefix = keys::log_prefix(tenant, log);
        let meta_key = keys::meta_key(tenant, log);
        let mut meta = self.meta(&meta_key)?;
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        let mut erased = 0u64;
        let mut touched = Vec::new();
        for key in candidates {
            if !key.starts_with(&prefix) {
                return Err(StorageError::internal("erase candidate outside the log"));
            }
            let Some(v) = self.tree.blocks.get(key).map_err(io_err)? else {
                continue;
            };
            let b = self.tree.decode(key, &v, false, cipher)?;
            let hits = b.matching(matcher, b.len());
            if hits.is_empty() {
                continue;
            }
            let mut rest = Builder::new();
            let mut h = hits.iter().peekable();
            for i in 0..b.len() {
                if h.peek() == Some(&&i) {
                    h.next();
                    meta.remove(b.data(i).len());
                    erased += 1;
                } else {
                    rest.push(b.id(i), b.ts(i), b.data(i));
                }
            }
            // The rewrite keeps the ids, so its key is the old one unless the newest entry
            // went: then the old key must go.
            if rest.last_id() != Some(key_id(key, prefix.len())?) {
                batch.remove(&self.tree.blocks, key.clone());
            }
            flush_block(&mut batch, &self.tree, &prefix, &rest, cipher)?;
            touched.push(key.clone());
        }
        if erased == 0 {
            return Ok(0);
        }
        stage_meta(&mut batch, self, &meta_key, &meta);
        let outcome = self.commit(batch, vec![(meta_key, meta)]);
        for k in &touched {
            self.tree.cache.remove(k);
        }
        outcome?;
        Ok(erased)
    }

    /// Seals the blocks stored under `candidates` again with the current data key. A block
    /// rewritten since it was chosen (by an erasure or a delete) is taken as it is now; the
    /// contents and the key stay the same, so readers and the cache see no change.
    pub(super) fn reseal(
        &mut self,
        tenant: &TenantId,
        log: &LogName,
        candidates: &[Vec<u8>],
        cipher: &LogCipher<'_>,
    ) -> Result<u64> {
        let prefix = keys::log_prefix(tenant, log);
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        let mut done = 0u64;
        for key in candidates {
            if !key.starts_with(&prefix) {
                return Err(StorageError::internal("reseal candidate outside the log"));
            }
            let Some(v) = self.tree.blocks.get(key).map_err(io_err)? else {
                continue;
            };
            if block::sealed_key_id(&v).is_none() {
                continue;
            }
            let b = self.tree.decode(key, &v, false, cipher)?;
            let mut same = Builder::new();
            for i in 0..b.len() {
                same.push(b.id(i), b.ts(i), b.data(i));
            }
            flush_block(&mut batch, &self.tree, &prefix, &same, cipher)?;
            done += 1;
        }
        if done > 0 {
            batch.commit().map_err(io_err)?;
        }
        Ok(done)
    }

    pub(super) fn import(
        &mut self,
        tenant: &TenantId,
        log: &LogName,
        mut entries: Vec<Entry>,
        cipher: &LogCipher<'_>,
    ) -> Result<ImportOutcome> {
        entries.sort_by_key(|e| e.id);
        let before = entries.len();
        entries.dedup_by_key(|e| e.id);
        let mut out = ImportOutcome {
            imported: 0,
            skipped: (before - entries.len()) as u64,
        };
        let (Some(lo), Some(hi)) = (entries.first().map(|e| e.id), entries.last().map(|e| e.id))
        else {
            return Ok(out);
        };
        let prefix = keys::log_prefix(tenant, log);
        let meta_key = keys::meta_key(tenant, log);
        let mut meta = self.meta(&meta_key)?;
        // Blocks whose id span meets [lo, hi]: from the first key >= lo up to the first key
        // >= hi, that one only if it starts at or below hi. They are merged with the import so
        // spans never overlap. (A restore imports a log newest chunk first, so usually no
        // block meets the span and nothing is rewritten.)
        let mut old: Vec<(Vec<u8>, Arc<Block>)> = Vec::new();
        let from = keys::block_key(&prefix, lo);
        let to = keys::block_key(&prefix, EntryId::MAX);
        for kv in self.tree.blocks.range(from..=to) {
            let (k, v) = kv.into_inner().map_err(io_err)?;
            let last = key_id(&k, prefix.len())?;
            let b = self.tree.decode(&k, &v, false, cipher)?;
            if last >= hi {
                if !b.is_empty() && b.id(0) <= hi {
                    old.push((k.to_vec(), b));
                }
                break;
            }
            old.push((k.to_vec(), b));
        }
        let mut merged: Vec<(EntryId, i64, &[u8])> = Vec::new();
        for (_, b) in &old {
            for i in 0..b.len() {
                merged.push((b.id(i), b.ts(i), b.data(i)));
            }
        }
        let existing = merged.len();
        for e in &entries {
            if merged[..existing]
                .binary_search_by_key(&e.id, |r| r.0)
                .is_ok()
            {
                out.skipped += 1;
                continue;
            }
            let data = e.data.get().as_bytes();
            meta.add(e.timestamp, data.len(), e.id);
            merged.push((e.id, e.timestamp, data));
            out.imported += 1;
        }
        if out.imported == 0 {
            return Ok(out);
        }
        merged.sort_by_key(|r| r.0);
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        let mut new_keys = Vec::new();
        let mut builder = Builder::new();
        for (id, ts, data) in merged {
            if builder.is_full_for(data.len()) {
                flush_block(&mut batch, &self.tree, &prefix, &builder, cipher)?;
                new_keys.extend(builder.last_id().map(|l| keys::block_key(&prefix, l)));
                builder = Builder::new();
            }
            builder.push(id, ts, data);
        }
        flush_block(&mut batch, &self.tree, &prefix, &builder, cipher)?;
        new_keys.extend(builder.last_id().map(|l| keys::block_key(&prefix, l)));
        for (k, _) in &old {
            if !new_keys.contains(k) {
                batch.remove(&self.tree.blocks, k.clone());
            }
        }
        stage_meta(&mut batch, self, &meta_key, &meta);
        let outcome = self.commit(batch, vec![(meta_key, meta)]);
        for (k, _) in &old {
            self.tree.cache.remove(k);
        }
        outcome?;
        // New appends must sort after every imported id. (`next` with a zero clock reads the
        // generator's floor plus one.)
        let floor = self.ids.next(0, 0).max(hi);
        self.ids = IdGenerator::starting_after(floor);
        Ok(out)
    }
}

/// Writes the log's counters, or removes them once the log is empty (the id floor stays in
/// the writer's cache, as for deletes).
fn stage_meta(
    batch: &mut fjall::OwnedWriteBatch,
    w: &Writer,
    meta_key: &[u8],
    meta: &keys::LogMeta,
) {
    if meta.count == 0 {
        batch.remove(&w.tree.logs, meta_key.to_vec());
    } else {
        batch.insert(&w.tree.logs, meta_key.to_vec(), meta.encode().to_vec());
    }
}
