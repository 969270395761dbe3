//! The single writer thread of the embedded store: group commit of appends, and the
//! read-modify-write operations (deletes, retention, erasure, import) that must not
//! interleave with them.

mod maintenance;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

use fjall::PersistMode;
use neurallog_core::{
    Entry, EntryId, LogName, TenantId, id::IdGenerator, ingest::NewEvent, query::Matcher,
    time::now_ms,
};
use rand::Rng;
use tokio::sync::oneshot;

use super::keys::{self, LogMeta};
use super::{Tree, block_holding, io_err};
use crate::block::Builder;
use crate::crypt::{LogCipher, TenantCipher};
use crate::{ImportOutcome, PurgeOutcome, Result, StorageError};

/// Work for the writer.
pub enum Command {
    Append {
        tenant: TenantId,
        log: LogName,
        events: Vec<NewEvent>,
        /// Seals the blocks (the tenant's current data key, or none).
        cipher: TenantCipher,
        reply: oneshot::Sender<Result<Vec<EntryId>>>,
    },
    DeleteEntry {
        tenant: TenantId,
        log: LogName,
        id: EntryId,
        cipher: TenantCipher,
        reply: oneshot::Sender<Result<bool>>,
    },
    DeleteLog {
        tenant: TenantId,
        log: LogName,
        reply: oneshot::Sender<Result<u64>>,
    },
    DeleteTenant {
        tenant: TenantId,
        reply: oneshot::Sender<Result<u64>>,
    },
    Flush {
        reply: oneshot::Sender<Result<()>>,
    },
    Purge {
        tenant: TenantId,
        log: LogName,
        cutoff_ms: i64,
        max_blocks: usize,
        cipher: TenantCipher,
        reply: oneshot::Sender<Result<PurgeOutcome>>,
    },
    /// Rewrites the listed blocks (found by a scan off the writer thread) without the
    /// entries the matcher accepts.
    Erase {
        tenant: TenantId,
        log: LogName,
        candidates: Vec<Vec<u8>>,
        matcher: Matcher,
        cipher: TenantCipher,
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Seals the listed blocks again with the tenant's current data key.
    Reseal {
        tenant: TenantId,
        log: LogName,
        candidates: Vec<Vec<u8>>,
        cipher: TenantCipher,
        reply: oneshot::Sender<Result<u64>>,
    },
    Import {
        tenant: TenantId,
        log: LogName,
        entries: Vec<Entry>,
        cipher: TenantCipher,
        reply: oneshot::Sender<Result<ImportOutcome>>,
    },
    /// Does nothing: sending it proves the writer is still there.
    Ping,
}

/// Most events one group commit takes before it writes (bounds memory and latency).
const GROUP_MAX_EVENTS: usize = 64 * 1024;

/// The sending side, held by every clone of the storage.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: Sender<Command>,
}

impl WriterHandle {
    /// Queues a command.
    pub fn send(&self, cmd: Command) -> Result<()> {
        self.tx
            .send(cmd)
            .map_err(|_| StorageError::unavailable("storage writer stopped"))
    }

    /// Fails when the writer thread is gone. Cheap: readiness probes call it, so it must not
    /// sync anything.
    pub fn check(&self) -> Result<()> {
        self.send(Command::Ping)
    }
}

/// Starts the writer thread; ids it hands out sort after `floor`.
pub fn spawn(tree: Arc<Tree>, floor: EntryId) -> Result<WriterHandle> {
    let (tx, rx) = mpsc::channel();
    let mut w = Writer {
        tree,
        ids: IdGenerator::starting_after(floor),
        metas: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("neurallog-writer".into())
        .spawn(move || w.run(rx))
        .map_err(|e| StorageError::internal(format!("start writer: {e}")))?;
    Ok(WriterHandle { tx })
}

struct Writer {
    tree: Arc<Tree>,
    ids: IdGenerator,
    /// Cache of log counters; cleared when a commit fails so it never runs ahead of disk.
    metas: HashMap<Vec<u8>, LogMeta>,
}

struct PendingAppend {
    tenant: TenantId,
    log: LogName,
    events: Vec<NewEvent>,
    cipher: TenantCipher,
    reply: oneshot::Sender<Result<Vec<EntryId>>>,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Command>) {
        let mut held: Option<Command> = None;
        loop {
            let first = match held.take() {
                Some(c) => c,
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => break, // every handle dropped
                },
            };
            let Command::Append {
                tenant,
                log,
                events,
                cipher,
                reply,
            } = first
            else {
                self.other(first);
                continue;
            };
            let mut group = vec![PendingAppend {
                tenant,
                log,
                events,
                cipher,
                reply,
            }];
            let mut n = group[0].events.len();
            // Take every append already waiting; stop at anything else, which runs after.
            while n < GROUP_MAX_EVENTS {
                match rx.try_recv() {
                    Ok(Command::Append {
                        tenant,
                        log,
                        events,
                        cipher,
                        reply,
                    }) => {
                        n += events.len();
                        group.push(PendingAppend {
                            tenant,
                            log,
                            events,
                            cipher,
                            reply,
                        });
                    }
                    // A liveness ping must not cut a group commit short.
                    Ok(Command::Ping) => {}
                    Ok(other) => {
                        held = Some(other);
                        break;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.commit_appends(group);
        }
        if let Err(e) = self.tree.db.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "final storage sync failed");
        }
    }

    fn meta(&mut self, key: &[u8]) -> Result<LogMeta> {
        if let Some(m) = self.metas.get(key) {
            return Ok(*m);
        }
        let m = match self.tree.logs.get(key).map_err(io_err)? {
            Some(v) => LogMeta::decode(&v)?,
            None => LogMeta::default(),
        };
        self.metas.insert(key.to_vec(), m);
        Ok(m)
    }

    fn commit_appends(&mut self, group: Vec<PendingAppend>) {
        // Appends to the same log share blocks: order the group by log, keeping arrival
        // order within a log.
        let mut by_log: Vec<(Vec<u8>, Vec<PendingAppend>)> = Vec::new();
        for p in group {
            let key = keys::meta_key(&p.tenant, &p.log);
            match by_log.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(p),
                None => by_log.push((key, vec![p])),
            }
        }
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        let mut replies = Vec::new();
        let mut staged: Vec<(Vec<u8>, LogMeta)> = Vec::new();
        for (meta_key, appends) in by_log {
            match self.stage_log(&mut batch, &meta_key, &appends) {
                Ok((meta, ids)) => {
                    staged.push((meta_key, meta));
                    for (p, ids) in appends.into_iter().zip(ids) {
                        replies.push((p.reply, Ok(ids)));
                    }
                }
                Err(e) => {
                    for p in appends {
                        replies.push((p.reply, Err(StorageError::new(e.kind, &e.message))));
                    }
                }
            }
        }
        let outcome = batch.commit().map_err(io_err);
        match &outcome {
            Ok(()) => {
                for (k, m) in staged {
                    self.metas.insert(k, m);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                self.metas.clear();
            }
        }
        for (reply, r) in replies {
            let r = match (&outcome, r) {
                (Ok(()), r) => r,
                (Err(e), _) => Err(StorageError::new(e.kind, &e.message)),
            };
            // The requester may have gone away; the data is stored either way.
            let _ = reply.send(r);
        }
    }

    /// Writes one log's share of a group commit into `batch`; returns the log's new counters
    /// and each append's ids.
    fn stage_log(
        &mut self,
        batch: &mut fjall::OwnedWriteBatch,
        meta_key: &[u8],
        appends: &[PendingAppend],
    ) -> Result<(LogMeta, Vec<Vec<EntryId>>)> {
        let mut meta = self.meta(meta_key)?;
        let mut prefix = meta_key.to_vec();
        prefix.push(0);
        let mut rng = rand::rng();
        let mut builder = Builder::new();
        let mut all_ids = Vec::with_capacity(appends.len());
        let Some(first) = appends.first() else {
            return Err(StorageError::internal("empty append share"));
        };
        // Every append of the share is to the same tenant and log: one cipher seals them.
        let cipher = first.cipher.log(&first.log);
        // One clock reading per log share: the generator keeps ids strictly increasing
        // within the millisecond, and every event of the share was accepted at this moment.
        let now = now_ms();
        for p in appends {
            let mut ids = Vec::with_capacity(p.events.len());
            for ev in &p.events {
                let id = self.ids.next(now, rng.random());
                let ts = ev.timestamp.unwrap_or(id.millis());
                if builder.is_full_for(ev.data.len()) {
                    flush_block(batch, &self.tree, &prefix, &builder, &cipher)?;
                    builder = Builder::new();
                }
                builder.push(id, ts, &ev.data);
                meta.add(ts, ev.data.len(), id);
                ids.push(id);
            }
            all_ids.push(ids);
        }
        if !builder.is_empty() {
            flush_block(batch, &self.tree, &prefix, &builder, &cipher)?;
        }
        batch.insert(&self.tree.logs, meta_key.to_vec(), meta.encode().to_vec());
        Ok((meta, all_ids))
    }

    fn other(&mut self, cmd: Command) {
        match cmd {
            Command::Append { .. } => {} // handled by run
            Command::DeleteEntry {
                tenant,
                log,
                id,
                cipher,
                reply,
            } => {
                let r = self.delete_entry(&tenant, &log, id, &cipher.log(&log));
                let _ = reply.send(r);
            }
            Command::DeleteLog { tenant, log, reply } => {
                let r = self.delete_logs(&[(tenant, log)]);
                let _ = reply.send(r);
            }
            Command::DeleteTenant { tenant, reply } => {
                let r = self
                    .tenant_logs(&tenant)
                    .and_then(|logs| self.delete_logs(&logs));
                let _ = reply.send(r);
            }
            Command::Flush { reply } => {
                let r = self.tree.db.persist(PersistMode::SyncAll).map_err(io_err);
                let _ = reply.send(r);
            }
            Command::Purge {
                tenant,
                log,
                cutoff_ms,
                max_blocks,
                cipher,
                reply,
            } => {
                let r = self.purge(&tenant, &log, cutoff_ms, max_blocks, &cipher.log(&log));
                let _ = reply.send(r);
            }
            Command::Erase {
                tenant,
                log,
                candidates,
                matcher,
                cipher,
                reply,
            } => {
                let r = self.erase(&tenant, &log, &candidates, &matcher, &cipher.log(&log));
                let _ = reply.send(r);
            }
            Command::Reseal {
                tenant,
                log,
                candidates,
                cipher,
                reply,
            } => {
                let r = self.reseal(&tenant, &log, &candidates, &cipher.log(&log));
                let _ = reply.send(r);
            }
            Command::Import {
                tenant,
                log,
                entries,
                cipher,
                reply,
            } => {
                let r = self.import(&tenant, &log, entries, &cipher.log(&log));
                let _ = reply.send(r);
            }
            Command::Ping => {}
        }
    }

    fn delete_entry(
        &mut self,
        tenant: &TenantId,
        log: &LogName,
        id: EntryId,
        cipher: &LogCipher<'_>,
    ) -> Result<bool> {
        let Some((key, block)) = block_holding(&self.tree, tenant, log, id, cipher)? else {
            return Ok(false);
        };
        let Some(pos) = block.find(id) else {
            return Ok(false);
        };
        let meta_key = keys::meta_key(tenant, log);
        let mut meta = self.meta(&meta_key)?;
        meta.remove(block.data(pos).len());
        let rest = block.rebuild_without(pos);
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.tree.blocks, key.clone());
        if !rest.is_empty() {
            flush_block(
                &mut batch,
                &self.tree,
                &keys::log_prefix(tenant, log),
                &rest,
                cipher,
            )?;
        }
        if meta.count == 0 {
            batch.remove(&self.tree.logs, meta_key.clone());
        } else {
            batch.insert(&self.tree.logs, meta_key.clone(), meta.encode().to_vec());
        }
        let outcome = self.commit(batch, vec![(meta_key, meta)]);
        // Evicted whatever the outcome: the block under this key changed or may have.
        self.tree.cache.remove(&key);
        outcome?;
        Ok(true)
    }

    fn tenant_logs(&self, tenant: &TenantId) -> Result<Vec<(TenantId, LogName)>> {
        let prefix = keys::tenant_prefix(tenant);
        let mut out = Vec::new();
        for kv in self.tree.logs.prefix(&prefix) {
            let k = kv.key().map_err(io_err)?;
            let name = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| LogName::new(s).ok())
                .ok_or_else(|| StorageError::corrupt("stored log name is invalid"))?;
            out.push((tenant.clone(), name));
        }
        Ok(out)
    }

    fn delete_logs(&mut self, logs: &[(TenantId, LogName)]) -> Result<u64> {
        let mut batch = self.tree.db.batch().durability(Some(PersistMode::SyncData));
        let mut removed = 0;
        let mut staged = Vec::new();
        for (tenant, log) in logs {
            let meta_key = keys::meta_key(tenant, log);
            removed += self.meta(&meta_key)?.count;
            for kv in self.tree.blocks.prefix(keys::log_prefix(tenant, log)) {
                let key = kv.key().map_err(io_err)?;
                self.tree.cache.remove(key.as_ref());
                batch.remove(&self.tree.blocks, key);
            }
            batch.remove(&self.tree.logs, meta_key.clone());
            staged.push((meta_key, LogMeta::default()));
        }
        self.commit(batch, staged)?;
        Ok(removed)
    }

    fn commit(
        &mut self,
        batch: fjall::OwnedWriteBatch,
        staged: Vec<(Vec<u8>, LogMeta)>,
    ) -> Result<()> {
        match batch.commit() {
            Ok(()) => {
                for (k, mut m) in staged {
                    if m.count == 0 {
                        // Keep the id floor: a deleted log's ids are never handed out again.
                        m.last_id = self.metas.get(&k).map_or(EntryId::MIN, |old| old.last_id);
                    }
                    self.metas.insert(k, m);
                }
                Ok(())
            }
            Err(e) => {
                self.metas.clear();
                Err(io_err(e))
            }
        }
    }
}

fn flush_block(
    batch: &mut fjall::OwnedWriteBatch,
    tree: &Tree,
    prefix: &[u8],
    b: &Builder,
    cipher: &LogCipher<'_>,
) -> Result<()> {
    let Some(last) = b.last_id() else {
        return Ok(());
    };
    batch.insert(
        &tree.blocks,
        keys::block_key(prefix, last),
        b.encode(cipher)?,
    );
    Ok(())
}
