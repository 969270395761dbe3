//! The storage engines under test, behind one small trait.
//!
//! Each engine stores two "tables": `blocks` (the compressed event blocks, keyed
//! `<tenant>\0<log>\0<16-byte big-endian id>`) and `logs` (a small per-log metadata record).
//! A commit writes both tables atomically and is durable when `commit` returns, which is
//! what NeuralLog's writer thread needs before it acknowledges an append.

use std::error::Error;
use std::path::Path;

pub type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Block-cache budget given to every engine, matching NeuralLog's embedded backend.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What a read returned: how many blocks and how many value bytes.
#[derive(Default, Clone, Copy)]
pub struct ReadStats {
    pub blocks: u64,
    pub bytes: u64,
}

impl ReadStats {
    fn add(&mut self, value: &[u8]) {
        self.blocks += 1;
        self.bytes += value.len() as u64;
        // Touch both ends of the value so that no engine gets away with not fetching it.
        std::hint::black_box((value.first(), value.last()));
    }
}

/// The operations the benchmark needs from an engine.
pub trait Engine {
    /// Atomically and durably writes `blocks` into the blocks table and `metas` into the
    /// logs table.
    fn commit(&mut self, blocks: &[(Vec<u8>, &[u8])], metas: &[(Vec<u8>, Vec<u8>)]) -> Res<()>;

    /// Walks `lo..=hi` from the newest key down, reading at most `limit` values.
    fn scan_rev(&self, lo: &[u8], hi: &[u8], limit: usize) -> Res<ReadStats>;

    /// Reads the first block whose key is `>= from` and `<= hi`.
    fn first_at_or_after(&self, from: &[u8], hi: &[u8]) -> Res<ReadStats>;
}

/// The engines this tool knows, by the name used on the command line and in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// fjall configured exactly as NeuralLog's embedded backend configures it.
    Fjall,
    /// The same, plus fjall's key-value separation (large values go to blob files).
    FjallKvSep,
    /// redb with its defaults (Durability::Immediate), cache set to the same budget.
    Redb,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fjall => "fjall",
            Kind::FjallKvSep => "fjall-kvsep",
            Kind::Redb => "redb",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Fjall, Kind::FjallKvSep, Kind::Redb]
            .into_iter()
            .find(|k| k.name() == s)
    }

    /// Opens (creating if needed) the engine's store under `dir`.
    pub fn open(self, dir: &Path) -> Res<Box<dyn Engine>> {
        Ok(match self {
            Kind::Fjall => Box::new(FjallEngine::open(dir, false)?),
            Kind::FjallKvSep => Box::new(FjallEngine::open(dir, true)?),
            Kind::Redb => Box::new(RedbEngine::open(dir)?),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// fjall

/// fjall: one database (one shared journal) with two keyspaces.
struct FjallEngine {
    db: fjall::Database,
    blocks: fjall::Keyspace,
    logs: fjall::Keyspace,
}

impl FjallEngine {
    fn open(dir: &Path, kv_separation: bool) -> Res<Self> {
        let db = fjall::Database::builder(dir.join("fjall"))
            // As in NeuralLog: the journal is only synced when a batch asks for it.
            .manual_journal_persist(true)
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let blocks = db.keyspace("blocks", || {
            // Blocks are zstd-compressed already; compressing them again would only cost CPU.
            let opts = fjall::KeyspaceCreateOptions::default()
                .data_block_compression_policy(fjall::config::CompressionPolicy::disabled());
            if kv_separation {
                opts.with_kv_separation(Some(
                    fjall::KvSeparationOptions::default().compression(fjall::CompressionType::None),
                ))
            } else {
                opts
            }
        })?;
        let logs = db.keyspace("logs", fjall::KeyspaceCreateOptions::default)?;
        Ok(Self { db, blocks, logs })
    }
}

impl Engine for FjallEngine {
    fn commit(&mut self, blocks: &[(Vec<u8>, &[u8])], metas: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        // One batch spanning both keyspaces; SyncData makes commit() fdatasync the journal.
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        for (k, v) in blocks {
            batch.insert(&self.blocks, k.as_slice(), *v);
        }
        for (k, v) in metas {
            batch.insert(&self.logs, k.as_slice(), v.as_slice());
        }
        batch.commit()?;
        Ok(())
    }

    fn scan_rev(&self, lo: &[u8], hi: &[u8], limit: usize) -> Res<ReadStats> {
        let mut stats = ReadStats::default();
        for kv in self.blocks.range(lo..=hi).rev().take(limit) {
            let (_, v) = kv.into_inner()?;
            stats.add(&v);
        }
        Ok(stats)
    }

    fn first_at_or_after(&self, from: &[u8], hi: &[u8]) -> Res<ReadStats> {
        let mut stats = ReadStats::default();
        if let Some(kv) = self.blocks.range(from..=hi).next() {
            let (_, v) = kv.into_inner()?;
            stats.add(&v);
        }
        Ok(stats)
    }
}

// ---------------------------------------------------------------------------------------------
// redb

const BLOCKS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("blocks");
const LOGS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("logs");

/// redb: one file, a copy-on-write B+tree per table.
struct RedbEngine {
    db: redb::Database,
}

impl RedbEngine {
    fn open(dir: &Path) -> Res<Self> {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("store.redb"))?;
        // Create both tables up front so that readers never meet a missing table.
        let tx = db.begin_write()?;
        tx.open_table(BLOCKS)?;
        tx.open_table(LOGS)?;
        tx.commit()?;
        Ok(Self { db })
    }
}

impl Engine for RedbEngine {
    fn commit(&mut self, blocks: &[(Vec<u8>, &[u8])], metas: &[(Vec<u8>, Vec<u8>)]) -> Res<()> {
        // One write transaction per commit; the default durability is Durability::Immediate,
        // so commit() returns only after the data and the new root are on disk.
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(BLOCKS)?;
            for (k, v) in blocks {
                t.insert(k.as_slice(), *v)?;
            }
            let mut t = tx.open_table(LOGS)?;
            for (k, v) in metas {
                t.insert(k.as_slice(), v.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn scan_rev(&self, lo: &[u8], hi: &[u8], limit: usize) -> Res<ReadStats> {
        use redb::{ReadableDatabase, ReadableTable};
        // A read transaction per query, as a server handling independent requests would do.
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOCKS)?;
        let mut stats = ReadStats::default();
        for kv in t.range(lo..=hi)?.rev().take(limit) {
            let (_, v) = kv?;
            stats.add(v.value());
        }
        Ok(stats)
    }

    fn first_at_or_after(&self, from: &[u8], hi: &[u8]) -> Res<ReadStats> {
        use redb::{ReadableDatabase, ReadableTable};
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOCKS)?;
        let mut stats = ReadStats::default();
        if let Some(kv) = t.range(from..=hi)?.next() {
            let (_, v) = kv?;
            stats.add(v.value());
        }
        Ok(stats)
    }
}
