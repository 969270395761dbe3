//! The append path of the Redis backend: one task that group-commits.
//!
//! It drains every append waiting at that moment, orders them by log, numbers their events,
//! packs each log's events into blocks (on the blocking pool: compression is CPU work) and
//! sends one `APPEND` script per log — all of them at once over the multiplexed connection,
//! so a whole group costs one round trip. A batch is acknowledged only after Redis answered
//! for its log's script. When a script reports that the log already holds a newer id
//! (another replica wrote to it meanwhile), that log's share is renumbered above the
//! reported floor and sent again; nothing was written by the refused attempt.

use std::collections::HashMap;
use std::sync::Arc;

use ::redis::Value;
use futures_util::future::join_all;
use neurallog_core::{EntryId, LogName, TenantId, id::IdGenerator, ingest::NewEvent, time::now_ms};
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::keys::{IndexMember, TenantKeys};
use super::scripts::APPEND_SCRIPT;
use crate::block::Builder;
use crate::crypt::{LogCipher, TenantCipher};
use crate::{Result, StorageError};

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
    /// Answers once every append queued before it has been answered.
    Barrier { reply: oneshot::Sender<()> },
}

/// Most events one group takes (bounds memory and the size of one Redis request).
const GROUP_MAX_EVENTS: usize = 64 * 1024;
/// Most event bytes one group takes: Redis refuses requests beyond its query buffer limit
/// (1 GiB by default), and a smaller group keeps latency and memory modest.
const GROUP_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Renumbering attempts before an append gives up (each one means another writer won).
const MAX_ATTEMPTS: usize = 16;

/// Starts the writer task; it ends when every sender is dropped.
pub fn spawn(shared: Arc<Shared>) -> mpsc::Sender<Command> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run(shared, rx));
    tx
}

/// One log's share of a group: its events in arrival order, and who waits for how many.
struct LogGroup {
    tenant: TenantId,
    log: LogName,
    events: Vec<NewEvent>,
    cipher: TenantCipher,
    replies: Vec<(usize, oneshot::Sender<Result<Vec<EntryId>>>)>,
    attempts: usize,
}

/// A log's share, numbered and encoded, ready to send.
struct Prepared {
    ids: Vec<EntryId>,
    args: Vec<Vec<u8>>,
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Command>) {
    let mut ids = IdGenerator::default();
    let mut held: Option<Command> = None;
    loop {
        let first = match held.take() {
            Some(c) => c,
            None => match rx.recv().await {
                Some(c) => c,
                None => break, // every handle dropped
            },
        };
        let mut groups: Vec<LogGroup> = Vec::new();
        let mut index: HashMap<(TenantId, LogName), usize> = HashMap::new();
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Append {
                    tenant,
                    log,
                    mut events,
                    cipher,
                    reply,
                } => {
                    n += events.len();
                    bytes += events.iter().map(|e| e.data.len()).sum::<usize>();
                    let key = (tenant, log);
                    let at = match index.get(&key) {
                        Some(at) => *at,
                        None => {
                            groups.push(LogGroup {
                                tenant: key.0.clone(),
                                log: key.1.clone(),
                                events: Vec::new(),
                                cipher,
                                replies: Vec::new(),
                                attempts: 0,
                            });
                            index.insert(key, groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    let g = &mut groups[at];
                    g.replies.push((events.len(), reply));
                    g.events.append(&mut events);
                }
                Command::Barrier { reply } => {
                    if groups.is_empty() {
                        let _ = reply.send(());
                    } else {
                        // Answered after this group is.
                        held = Some(Command::Barrier { reply });
                        break;
                    }
                }
            }
            if n >= GROUP_MAX_EVENTS || bytes >= GROUP_MAX_BYTES {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !groups.is_empty() {
            commit(&shared, &mut ids, groups).await;
        }
    }
}

/// Commits a group: every log's script goes out at once; each log retries on its own.
async fn commit(shared: &Shared, ids: &mut IdGenerator, mut pending: Vec<LogGroup>) {
    while !pending.is_empty() {
        // Number every share here (the generator is ours), encode them on the blocking pool.
        let mut jobs = Vec::with_capacity(pending.len());
        for g in &mut pending {
            let mut rng = rand::rng();
            let numbered: Vec<EntryId> = g
                .events
                .iter()
                .map(|_| ids.next(now_ms(), rng.random()))
                .collect();
            let events = std::mem::take(&mut g.events);
            let (log, cipher) = (g.log.clone(), g.cipher.clone());
            jobs.push(tokio::task::spawn_blocking(move || {
                let prepared = encode(&log, numbered, &events, &cipher.log(&log));
                (prepared, events)
            }));
        }
        let mut encoded = Vec::with_capacity(jobs.len());
        for (g, job) in pending.iter_mut().zip(join_all(jobs).await) {
            match job {
                Ok((prepared, events)) => {
                    g.events = events;
                    encoded.push(prepared);
                }
                Err(e) => encoded.push(Err(StorageError::internal(format!("encode task: {e}")))),
            }
        }
        let calls = pending
            .iter()
            .zip(&encoded)
            .map(|(g, prepared)| async move {
                let prepared = prepared
                    .as_ref()
                    .map_err(|e| StorageError::new(e.kind, &e.message))?;
                let keys = TenantKeys::new(&shared.prefix, &g.tenant);
                let lk = keys.log(&g.log);
                let mut inv = APPEND_SCRIPT.prepare_invoke();
                inv.key(&lk.meta)
                    .key(&lk.index)
                    .key(&lk.blocks)
                    .key(keys.logs())
                    .key(keys.names());
                for a in &prepared.args {
                    inv.arg(a.as_slice());
                }
                let mut conn = shared.conn.manager.clone();
                let v = shared.bounded(inv.invoke_async::<Value>(&mut conn)).await?;
                parse_append_reply(&shared.conn.target, v)
            });
        let outcomes = join_all(calls).await;
        let mut retry = Vec::new();
        for ((mut g, prepared), outcome) in pending.into_iter().zip(encoded).zip(outcomes) {
            match (outcome, prepared) {
                (Ok(None), Ok(p)) => answer(g, Ok(p.ids)),
                (Ok(Some(floor)), _) if g.attempts + 1 < MAX_ATTEMPTS => {
                    tracing::debug!(log = %g.log, "append raced another writer, renumbering");
                    bump(ids, floor);
                    shared
                        .renumbered
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    g.attempts += 1;
                    retry.push(g);
                }
                (Ok(Some(_)), _) => answer(
                    g,
                    Err(StorageError::unavailable(
                        "append kept racing other writers of the same log; try again",
                    )),
                ),
                (Err(e), _) => answer(g, Err(e)),
                (Ok(None), Err(e)) => answer(g, Err(e)),
            }
        }
        pending = retry;
    }
}

/// Makes the generator hand out ids above `floor` only.
fn bump(ids: &mut IdGenerator, floor: EntryId) {
    let probe = ids.next(0, 0);
    *ids = IdGenerator::starting_after(probe.max(floor));
}

/// Packs one log's numbered events into blocks and the `APPEND` script's arguments.
fn encode(
    log: &LogName,
    ids: Vec<EntryId>,
    events: &[NewEvent],
    cipher: &LogCipher<'_>,
) -> Result<Prepared> {
    let (Some(first), Some(last)) = (ids.first().copied(), ids.last().copied()) else {
        return Err(StorageError::internal("empty append share"));
    };
    let mut blocks: Vec<(IndexMember, Vec<u8>)> = Vec::new();
    let mut builder = Builder::new();
    let (mut bytes, mut min_ts, mut max_ts) = (0u64, i64::MAX, i64::MIN);
    for (id, ev) in ids.iter().zip(events) {
        let ts = ev.timestamp.unwrap_or(id.millis());
        if builder.is_full_for(ev.data.len()) {
            blocks.push(seal(&builder, cipher)?);
            builder = Builder::new();
        }
        builder.push(*id, ts, &ev.data);
        bytes += ev.data.len() as u64;
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
    }
    if !builder.is_empty() {
        blocks.push(seal(&builder, cipher)?);
    }
    let mut args = Vec::with_capacity(7 + 2 * blocks.len());
    args.push(log.as_str().as_bytes().to_vec());
    args.push(first.to_bytes().to_vec());
    args.push(last.to_bytes().to_vec());
    args.push(ids.len().to_string().into_bytes());
    args.push(bytes.to_string().into_bytes());
    args.push(min_ts.to_string().into_bytes());
    args.push(max_ts.to_string().into_bytes());
    for (m, b) in blocks {
        args.push(m.encode().to_vec());
        args.push(b);
    }
    Ok(Prepared { ids, args })
}

/// Encodes (and, when the cipher says so, seals) a block, and makes its index member.
pub fn seal(b: &Builder, cipher: &LogCipher<'_>) -> Result<(IndexMember, Vec<u8>)> {
    let Some(last_id) = b.last_id() else {
        return Err(StorageError::internal("empty block"));
    };
    let h = b.header();
    let member = IndexMember {
        last_id,
        min_ts: h.min_ts,
        max_ts: h.max_ts,
        count: h.count,
        // NB: a block holds at most MAX_RAW_BYTES plus one event, far below 4 GiB.
        raw_bytes: b.raw_bytes() as u32,
    };
    Ok((member, b.encode(cipher)?))
}

/// `{1}` -> stored; `{0, floor}` -> refused, renumber above `floor`.
fn parse_append_reply(target: &str, v: Value) -> Result<Option<EntryId>> {
    let bad = || StorageError::internal(format!("redis at {target}: unexpected append reply"));
    let Value::Array(items) = v else {
        return Err(bad());
    };
    match items.as_slice() {
        [Value::Int(1)] => Ok(None),
        [Value::Int(0), Value::BulkString(floor)] if floor.len() == 16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(floor);
            Ok(Some(EntryId::from_bytes(b)))
        }
        _ => Err(bad()),
    }
}

/// Answers every append of a log's share: each gets its own slice of the ids.
fn answer(g: LogGroup, outcome: Result<Vec<EntryId>>) {
    match outcome {
        Ok(ids) => {
            let mut rest = ids.as_slice();
            for (n, reply) in g.replies {
                let (mine, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                // The requester may have gone away; the data is stored either way.
                let _ = reply.send(Ok(mine.to_vec()));
            }
        }
        Err(e) => {
            for (_, reply) in g.replies {
                let _ = reply.send(Err(StorageError::new(e.kind, &e.message)));
            }
        }
    }
}
