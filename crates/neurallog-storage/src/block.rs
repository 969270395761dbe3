//! The compressed block: the unit in which events are stored by every backend.
//!
//! A block holds up to [`MAX_ENTRIES`] consecutive entries of one log, in id order. Its value
//! starts with a small plain header — the count and the time span, so that reads can skip a
//! block without decompressing it — followed by a zstd-compressed payload, which is sealed
//! (AES-256-GCM, see [`crate::crypt`]) when encryption is on:
//!
//! ```text
//! header:  version u8 | codec u8 | count u32 | min_ts i64 | max_ts i64 | payload_len u32
//! v1:      header | zstd(payload)
//! v2:      header | key id [8] | nonce [12] | AES-256-GCM(zstd(payload)) | tag [16]
//! payload: count × (id [16] big-endian | ts i64 | end u32)  then the event JSON, concatenated
//! ```
//!
//! A store with encryption on writes and accepts v2 blocks only; one with it off, v1 only.
//!
//! (integers little-endian unless noted). Keeping the JSON of many events together is what
//! makes both compression (several times smaller than the JSON sent) and search (one
//! decompression and one substring scan per block) fast.

use memchr::memmem;
use neurallog_core::{
    Entry, EntryId, LogName,
    query::{Matcher, TimeRange},
};
use serde_json::value::RawValue;

use crate::crypt::LogCipher;
use crate::{Result, StorageError};

/// Most entries in one block.
pub const MAX_ENTRIES: usize = 4096;
/// Most event bytes in one block (uncompressed); a larger single event gets a block of its own.
pub const MAX_RAW_BYTES: usize = 1024 * 1024;
/// Refuse to decompress payloads claiming more than this (a damaged header).
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Block versions: compressed (v1), compressed then sealed (v2).
const VERSION_PLAIN: u8 = 1;
const VERSION_SEALED: u8 = 2;
const CODEC_ZSTD: u8 = 1;
const HEADER_LEN: usize = 26;
const ROW_LEN: usize = 28;
/// zstd level: 3 is zstd's default and compresses log JSON well at several hundred MB/s.
const ZSTD_LEVEL: i32 = 3;

/// Decoded blocks by storage key, weighed by their decoded size. Both backends keep one, so
/// that the newest blocks of busy logs are decompressed once, not on every read.
pub type Cache = quick_cache::sync::Cache<Vec<u8>, std::sync::Arc<Block>, Weight>;

/// Weighs a cached block by its key and decoded size.
#[derive(Clone, Debug)]
pub struct Weight;

impl quick_cache::Weighter<Vec<u8>, std::sync::Arc<Block>> for Weight {
    fn weight(&self, key: &Vec<u8>, block: &std::sync::Arc<Block>) -> u64 {
        (key.len() + block.memory()) as u64
    }
}

/// A block cache holding about `bytes` of decoded blocks.
pub fn cache(bytes: u64) -> Cache {
    Cache::with(64, bytes, Weight, Default::default(), Default::default())
}

/// The plain header of an encoded block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub count: u32,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// Collects entries into a block.
#[derive(Debug, Default)]
pub struct Builder {
    rows: Vec<(EntryId, i64, u32)>,
    data: Vec<u8>,
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether adding an event of `len` bytes would overflow the block.
    pub fn is_full_for(&self, len: usize) -> bool {
        !self.rows.is_empty()
            && (self.rows.len() >= MAX_ENTRIES || self.data.len() + len > MAX_RAW_BYTES)
    }

    /// Adds an entry; ids must be pushed in increasing order.
    pub fn push(&mut self, id: EntryId, ts: i64, data: &[u8]) {
        self.data.extend_from_slice(data);
        // NB: events are bounded far below 4 GiB, and so is a block.
        self.rows.push((id, ts, self.data.len() as u32));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes of event JSON.
    pub fn raw_bytes(&self) -> usize {
        self.data.len()
    }

    /// The newest id (the block's storage key).
    pub fn last_id(&self) -> Option<EntryId> {
        self.rows.last().map(|r| r.0)
    }

    /// The header this block will have.
    pub fn header(&self) -> Header {
        let (min_ts, max_ts) = self.rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
            (lo.min(r.1), hi.max(r.1))
        });
        Header {
            count: self.rows.len() as u32,
            min_ts,
            max_ts,
        }
    }

    /// Encodes and compresses the block, and seals it when `cipher` says so.
    pub fn encode(&self, cipher: &LogCipher<'_>) -> Result<Vec<u8>> {
        let mut payload = Vec::with_capacity(self.rows.len() * ROW_LEN + self.data.len());
        for (id, ts, end) in &self.rows {
            payload.extend_from_slice(&id.to_bytes());
            payload.extend_from_slice(&ts.to_le_bytes());
            payload.extend_from_slice(&end.to_le_bytes());
        }
        payload.extend_from_slice(&self.data);
        let compressed = zstd::bulk::compress(&payload, ZSTD_LEVEL)
            .map_err(|e| StorageError::internal(format!("compress block: {e}")))?;
        let h = self.header();
        let mut out = Vec::with_capacity(HEADER_LEN + compressed.len() + 36);
        out.push(if cipher.is_sealed() {
            VERSION_SEALED
        } else {
            VERSION_PLAIN
        });
        out.push(CODEC_ZSTD);
        out.extend_from_slice(&h.count.to_le_bytes());
        out.extend_from_slice(&h.min_ts.to_le_bytes());
        out.extend_from_slice(&h.max_ts.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        cipher.seal(&mut out, &compressed)?;
        Ok(out)
    }
}

/// The id of the data key that sealed an encoded block, read without opening it; `None` for a
/// block stored in clear. (The re-encryption job uses it to find blocks of retired keys.)
pub fn sealed_key_id(bytes: &[u8]) -> Option<[u8; crate::crypt::KEY_ID_LEN]> {
    if bytes.first() != Some(&VERSION_SEALED) {
        return None;
    }
    bytes
        .get(HEADER_LEN..HEADER_LEN + crate::crypt::KEY_ID_LEN)
        .and_then(|b| b.try_into().ok())
}

/// Reads the header of an encoded block without decompressing it.
pub fn header(bytes: &[u8]) -> Result<Header> {
    let version_ok = matches!(bytes.first(), Some(&(VERSION_PLAIN | VERSION_SEALED)));
    if bytes.len() < HEADER_LEN || !version_ok || bytes[1] != CODEC_ZSTD {
        return Err(StorageError::corrupt("block header is damaged"));
    }
    Ok(Header {
        count: u32::from_le_bytes(arr(&bytes[2..6])),
        min_ts: i64::from_le_bytes(arr(&bytes[6..14])),
        max_ts: i64::from_le_bytes(arr(&bytes[14..22])),
    })
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// A decoded block.
#[derive(Debug)]
pub struct Block {
    ids: Vec<EntryId>,
    ts: Vec<i64>,
    ends: Vec<u32>,
    /// The decompressed payload; the event JSON starts at `data_start`.
    payload: Vec<u8>,
    data_start: usize,
}

impl Block {
    /// Opens (when sealed), decompresses and checks an encoded block.
    pub fn decode(bytes: &[u8], cipher: &LogCipher<'_>) -> Result<Self> {
        let h = header(bytes)?;
        let payload_len = u32::from_le_bytes(arr(&bytes[22..26])) as usize;
        let count = h.count as usize;
        if payload_len > MAX_PAYLOAD || count * ROW_LEN > payload_len {
            return Err(StorageError::corrupt("block sizes are damaged"));
        }
        let opened;
        let compressed = match (bytes[0] == VERSION_SEALED, cipher.is_sealed()) {
            (false, false) => &bytes[HEADER_LEN..],
            (true, _) => {
                opened = cipher.open(bytes, HEADER_LEN)?;
                &opened[..]
            }
            // NB: a plain block where blocks are sealed was not written by this store.
            (false, true) => return Err(StorageError::corrupt("block is not encrypted")),
        };
        let payload = zstd::bulk::decompress(compressed, payload_len)
            .map_err(|e| StorageError::corrupt(format!("decompress block: {e}")))?;
        if payload.len() != payload_len {
            return Err(StorageError::corrupt("block payload has the wrong length"));
        }
        let data_start = count * ROW_LEN;
        let (table, data) = payload.split_at(data_start);
        let mut ids = Vec::with_capacity(count);
        let mut ts = Vec::with_capacity(count);
        let mut ends = Vec::with_capacity(count);
        let mut prev_end = 0u32;
        for row in table.chunks_exact(ROW_LEN) {
            let end = u32::from_le_bytes(arr(&row[24..28]));
            if end < prev_end || end as usize > data.len() {
                return Err(StorageError::corrupt("block offsets are damaged"));
            }
            prev_end = end;
            ids.push(EntryId::from_bytes(arr(&row[0..16])));
            ts.push(i64::from_le_bytes(arr(&row[16..24])));
            ends.push(end);
        }
        Ok(Self {
            ids,
            ts,
            ends,
            payload,
            data_start,
        })
    }

    fn events(&self) -> &[u8] {
        &self.payload[self.data_start..]
    }

    /// Decoded size in bytes (for cache accounting).
    pub fn memory(&self) -> usize {
        self.payload.len() + self.ids.len() * 28
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the block holds no entry.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Id of entry `i`.
    pub fn id(&self, i: usize) -> EntryId {
        self.ids[i]
    }

    /// Timestamp of entry `i`.
    pub fn ts(&self, i: usize) -> i64 {
        self.ts[i]
    }

    /// Event JSON of entry `i`.
    pub fn data(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.events()[start..self.ends[i] as usize]
    }

    /// Position of `id`, if the block holds it.
    pub fn find(&self, id: EntryId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// Number of entries with an id below `id`.
    pub fn count_before(&self, id: EntryId) -> usize {
        self.ids.partition_point(|x| *x < id)
    }

    /// Entry `i` as an [`Entry`] of log `log`.
    pub fn entry(&self, i: usize, log: &LogName) -> Result<Entry> {
        let text = String::from_utf8(self.data(i).to_vec())
            .map_err(|_| StorageError::corrupt("stored event is not UTF-8"))?;
        let data = RawValue::from_string(text)
            .map_err(|_| StorageError::corrupt("stored event is not JSON"))?;
        Ok(Entry {
            id: self.ids[i],
            name: log.clone(),
            timestamp: self.ts[i],
            data,
        })
    }

    /// A builder holding every entry but `skip` (to delete one entry).
    pub fn rebuild_without(&self, skip: usize) -> Builder {
        let mut b = Builder::new();
        for i in (0..self.len()).filter(|i| *i != skip) {
            b.push(self.ids[i], self.ts[i], self.data(i));
        }
        b
    }

    /// Appends to `out`, newest first, the entries among the first `upto` that lie in `range`
    /// and that `matcher` accepts (all of them when there is none), until `out` holds `want`.
    /// Returns whether `out` is full. Every backend's reads and searches end here.
    pub fn take_newest(
        &self,
        log: &LogName,
        upto: usize,
        range: TimeRange,
        matcher: Option<&Matcher>,
        want: usize,
        out: &mut Vec<Entry>,
    ) -> Result<bool> {
        let picked: Vec<usize> = match matcher {
            None => (0..upto).collect(),
            Some(m) => self.matching(m, upto),
        };
        for i in picked.into_iter().rev() {
            if out.len() >= want {
                break;
            }
            if range.contains(self.ts[i]) {
                out.push(self.entry(i, log)?);
            }
        }
        Ok(out.len() >= want)
    }

    /// Positions (ascending) of the entries among the first `upto` that match.
    ///
    /// The text condition runs as one substring scan over the block's lowercased JSON; only
    /// the entries it hits are parsed for field filters.
    pub fn matching(&self, matcher: &Matcher, upto: usize) -> Vec<usize> {
        let needle = matcher.needle();
        let candidates: Vec<usize> = if needle.is_empty() {
            (0..upto).collect()
        } else {
            let end = if upto == 0 {
                0
            } else {
                self.ends[upto - 1] as usize
            };
            let lowered = self.events()[..end].to_ascii_lowercase();
            let mut hits = Vec::new();
            let mut from = 0usize;
            let finder = memmem::Finder::new(needle);
            while let Some(pos) = finder.find(&lowered[from..]).map(|p| p + from) {
                let i = self.ends.partition_point(|e| (*e as usize) <= pos);
                let entry_end = self.ends[i] as usize;
                if pos + needle.len() <= entry_end {
                    hits.push(i);
                    from = entry_end; // one hit per entry is enough
                } else {
                    from = pos + 1; // straddles two events: not a match
                }
            }
            hits
        };
        if !matcher.has_filters() {
            return candidates;
        }
        candidates
            .into_iter()
            .filter(|i| matcher.filters_match(self.data(*i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::TenantCipher;
    use neurallog_core::TenantId;
    use neurallog_core::query::FieldFilter;

    fn plain() -> TenantCipher {
        TenantCipher::plaintext(&TenantId::new("t").unwrap())
    }

    fn log() -> LogName {
        LogName::new("l").unwrap()
    }

    fn sample() -> Builder {
        let mut b = Builder::new();
        b.push(EntryId::from_u128(1), 30, br#"{"msg":"Hello"}"#);
        b.push(EntryId::from_u128(2), 10, br#"{"msg":"ab","status":500}"#);
        b.push(EntryId::from_u128(3), 20, br#"{"msg":"cd"}"#);
        b
    }

    #[test]
    fn round_trip() {
        let tc = plain();
        let c = tc.log(&log());
        let enc = sample().encode(&c).unwrap();
        assert_eq!(
            header(&enc).unwrap(),
            Header {
                count: 3,
                min_ts: 10,
                max_ts: 30
            }
        );
        let b = Block::decode(&enc, &c).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.data(1), br#"{"msg":"ab","status":500}"#);
        assert_eq!(b.find(EntryId::from_u128(3)), Some(2));
        assert_eq!(b.find(EntryId::from_u128(4)), None);
        let e = b.entry(0, &LogName::new("l").unwrap()).unwrap();
        assert_eq!(e.data.get(), r#"{"msg":"Hello"}"#);
        let without = Block::decode(&b.rebuild_without(1).encode(&c).unwrap(), &c).unwrap();
        assert_eq!(without.len(), 2);
        assert_eq!(without.data(1), br#"{"msg":"cd"}"#);
    }

    #[test]
    fn search_does_not_match_across_events() {
        let tc = plain();
        let c = tc.log(&log());
        let b = Block::decode(&sample().encode(&c).unwrap(), &c).unwrap();
        assert_eq!(b.matching(&Matcher::new("HELLO", vec![]), 3), vec![0]);
        assert_eq!(b.matching(&Matcher::new("msg", vec![]), 3), vec![0, 1, 2]);
        // `"}{"` only exists where one event ends and the next begins.
        assert!(b.matching(&Matcher::new("}{", vec![]), 3).is_empty());
        let f = vec![FieldFilter::new("status", "500").unwrap()];
        assert_eq!(b.matching(&Matcher::new("", f), 3), vec![1]);
        assert_eq!(b.matching(&Matcher::new("msg", vec![]), 1), vec![0]);
    }

    #[test]
    fn damaged_blocks_are_refused_not_panicked() {
        let tc = plain();
        let c = tc.log(&log());
        let enc = sample().encode(&c).unwrap();
        for cut in [0, 1, 10, 25, enc.len() - 1] {
            assert!(Block::decode(&enc[..cut], &c).is_err(), "cut at {cut}");
        }
        let mut flipped = enc.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0xff;
        let _ = Block::decode(&flipped, &c); // may or may not detect, must not panic
        let mut huge = enc.clone();
        huge[22..26].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Block::decode(&huge, &c).is_err());
        let mut bad_count = enc;
        bad_count[2..6].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert!(Block::decode(&bad_count, &c).is_err());
    }

    #[test]
    fn sealed_blocks_round_trip_and_refuse_tampering() {
        let t = TenantId::new("t").unwrap();
        let tc = TenantCipher::sealed(&t, crate::crypt::test_keys());
        let c = tc.log(&log());
        let enc = sample().encode(&c).unwrap();
        assert_eq!(enc[0], VERSION_SEALED);
        assert!(!enc.windows(5).any(|w| w == b"Hello"));
        assert_eq!(header(&enc).unwrap().count, 3);
        let b = Block::decode(&enc, &c).unwrap();
        assert_eq!(b.data(0), br#"{"msg":"Hello"}"#);
        for i in 0..enc.len() {
            let mut f = enc.clone();
            f[i] ^= 0x10;
            let e = Block::decode(&f, &c).expect_err("tampered");
            assert_eq!(e.kind, crate::ErrorKind::Corrupt, "flip at {i}");
        }
        for cut in 0..enc.len() {
            assert!(Block::decode(&enc[..cut], &c).is_err(), "cut at {cut}");
        }
        // Another log of the same tenant, with the same keys: refused.
        assert!(Block::decode(&enc, &tc.log(&LogName::new("m").unwrap())).is_err());
        // A plain block where blocks are sealed, and the reverse: refused.
        let pt = plain();
        let plain_block = sample().encode(&pt.log(&log())).unwrap();
        assert!(Block::decode(&plain_block, &c).is_err());
        assert!(Block::decode(&enc, &pt.log(&log())).is_err());
    }
}
