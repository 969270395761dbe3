//! Key encoding and the per-log counters of the embedded store (layout in the parent module).

use neurallog_core::{EntryId, LogName, TenantId};

use crate::{LogSummary, Result, StorageError};

/// `<tenant> 0x00`: every log counter of a tenant.
pub fn tenant_prefix(t: &TenantId) -> Vec<u8> {
    let mut k = Vec::with_capacity(t.as_str().len() + 1);
    k.extend_from_slice(t.as_str().as_bytes());
    k.push(0);
    k
}

/// `<tenant> 0x00 <log>`: the key of a log's counters.
pub fn meta_key(t: &TenantId, l: &LogName) -> Vec<u8> {
    let mut k = tenant_prefix(t);
    k.extend_from_slice(l.as_str().as_bytes());
    k
}

/// `<tenant> 0x00 <log> 0x00`: every block of a log.
pub fn log_prefix(t: &TenantId, l: &LogName) -> Vec<u8> {
    let mut k = meta_key(t, l);
    k.push(0);
    k
}

/// A block's key: the log prefix and the block's newest id.
pub fn block_key(log_prefix: &[u8], last_id: EntryId) -> Vec<u8> {
    let mut k = Vec::with_capacity(log_prefix.len() + 16);
    k.extend_from_slice(log_prefix);
    k.extend_from_slice(&last_id.to_bytes());
    k
}

/// Counters of one log, kept in the same atomic batch as its blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogMeta {
    pub count: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// The newest id ever written to this log.
    pub last_id: EntryId,
}

const META_LEN: usize = 48;

impl LogMeta {
    /// Fixed-width little-endian encoding.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut out = [0u8; META_LEN];
        out[0..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..16].copy_from_slice(&self.bytes.to_le_bytes());
        out[16..24].copy_from_slice(&self.min_ts.to_le_bytes());
        out[24..32].copy_from_slice(&self.max_ts.to_le_bytes());
        out[32..48].copy_from_slice(&self.last_id.to_bytes());
        out
    }

    /// Reads [`LogMeta::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != META_LEN {
            return Err(StorageError::corrupt("log counters are damaged"));
        }
        let u = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[r]);
            a
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[32..48]);
        Ok(Self {
            count: u64::from_le_bytes(u(0..8)),
            bytes: u64::from_le_bytes(u(8..16)),
            min_ts: i64::from_le_bytes(u(16..24)),
            max_ts: i64::from_le_bytes(u(24..32)),
            last_id: EntryId::from_bytes(id),
        })
    }

    /// Adds one entry.
    pub fn add(&mut self, ts: i64, len: usize, id: EntryId) {
        if self.count == 0 {
            self.min_ts = ts;
            self.max_ts = ts;
        } else {
            self.min_ts = self.min_ts.min(ts);
            self.max_ts = self.max_ts.max(ts);
        }
        self.count += 1;
        self.bytes += len as u64;
        self.last_id = self.last_id.max(id);
    }

    /// Removes one entry. The time span is not narrowed (it stays a bound).
    pub fn remove(&mut self, len: usize) {
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(len as u64);
    }

    /// The public view.
    pub fn summary(&self) -> LogSummary {
        let has = self.count > 0;
        LogSummary {
            count: self.count,
            bytes: self.bytes,
            min_ts: has.then_some(self.min_ts),
            max_ts: has.then_some(self.max_ts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_do_not_overlap_between_tenants_or_logs() {
        let a = TenantId::new("a").unwrap();
        let ab = TenantId::new("ab").unwrap();
        let x = LogName::new("x").unwrap();
        let xy = LogName::new("xy").unwrap();
        assert!(!meta_key(&ab, &x).starts_with(&tenant_prefix(&a)));
        assert!(!log_prefix(&a, &xy).starts_with(&log_prefix(&a, &x)));
        assert!(block_key(&log_prefix(&a, &x), EntryId::MAX).starts_with(&log_prefix(&a, &x)));
    }

    #[test]
    fn meta_round_trip() {
        let mut m = LogMeta::default();
        m.add(5, 10, EntryId::from_u128(9));
        m.add(3, 10, EntryId::from_u128(10));
        assert_eq!(LogMeta::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.summary().min_ts, Some(3));
        assert!(LogMeta::decode(&[1, 2]).is_err());
    }
}
