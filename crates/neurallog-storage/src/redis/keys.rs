//! Key names and index members of the Redis backend: plain functions, no IO.
//!
//! The schema is described in the parent module and in `docs/redis.md`. Everything that
//! decides which key a tenant's data lives under is here, so that it can be tested without a
//! Redis.

use neurallog_core::{EntryId, LogName, TenantId};

use crate::{Result, StorageError};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "neurallog";

/// Longest accepted key prefix.
const MAX_PREFIX_LEN: usize = 64;

/// Checks a configured key prefix: 1-64 characters of `A-Z a-z 0-9 . _ - :`.
///
/// NB: `{` and `}` are refused because the tenant part of every key is a Redis hash tag
/// (`{tenant}`); a prefix holding braces could move a key into another tenant's hash slot or
/// make two deployments' key spaces overlap. `*`, `?`, `[` and `\` are refused so that the
/// prefix can be written literally in an ACL key pattern.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':');
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !prefix.as_bytes().iter().all(ok) {
        return Err(StorageError::internal(format!(
            "redis key prefix must be 1-{MAX_PREFIX_LEN} characters of A-Z a-z 0-9 . _ - :"
        )));
    }
    Ok(())
}

/// The key names of one tenant: `<prefix>:{<tenant>}:…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantKeys {
    base: String,
}

impl TenantKeys {
    /// Keys of `tenant` under `prefix` (already validated).
    pub fn new(prefix: &str, tenant: &TenantId) -> Self {
        Self {
            base: format!("{prefix}:{{{}}}:", tenant.as_str()),
        }
    }

    /// The common start of every key of the tenant (what an ACL key pattern names, with `*`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sorted set (all scores 0, so ordered by name) of the logs that hold entries.
    pub fn logs(&self) -> String {
        format!("{}logs", self.base)
    }

    /// Sorted set of every log name written since the tenant was last deleted, including
    /// emptied ones whose counters (and id floor) are kept.
    pub fn names(&self) -> String {
        format!("{}names", self.base)
    }

    /// The keys of one log.
    pub fn log(&self, log: &LogName) -> LogKeys {
        LogKeys {
            meta: format!("{}meta:{}", self.base, log.as_str()),
            index: format!("{}index:{}", self.base, log.as_str()),
            blocks: format!("{}blocks:{}", self.base, log.as_str()),
        }
    }
}

/// The three keys of one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKeys {
    /// Hash: `count`, `bytes`, `min_ts`, `max_ts`, `last` (16-byte id floor).
    pub meta: String,
    /// Sorted set of [`IndexMember`]s, all scores 0: lexicographic order is id order.
    pub index: String,
    /// Hash: 16-byte newest id of a block -> encoded block.
    pub blocks: String,
}

/// Length of an encoded [`IndexMember`].
pub const MEMBER_LEN: usize = 40;

/// One block's entry in a log's index.
///
/// Encoded as `last_id [16] | min_ts i64 | max_ts i64 | count u32 | raw_bytes u32`, all
/// big-endian. Only the first 16 bytes decide the order (ids are unique), so range queries by
/// id bound work on the members directly; the rest lets reads skip blocks outside a time
/// window and retention account for a block, without fetching the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexMember {
    pub last_id: EntryId,
    pub min_ts: i64,
    pub max_ts: i64,
    pub count: u32,
    pub raw_bytes: u32,
}

impl IndexMember {
    /// The byte form stored in the sorted set.
    pub fn encode(&self) -> [u8; MEMBER_LEN] {
        let mut out = [0u8; MEMBER_LEN];
        out[0..16].copy_from_slice(&self.last_id.to_bytes());
        out[16..24].copy_from_slice(&self.min_ts.to_be_bytes());
        out[24..32].copy_from_slice(&self.max_ts.to_be_bytes());
        out[32..36].copy_from_slice(&self.count.to_be_bytes());
        out[36..40].copy_from_slice(&self.raw_bytes.to_be_bytes());
        out
    }

    /// Reads [`IndexMember::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != MEMBER_LEN {
            return Err(StorageError::corrupt("redis block index member is damaged"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[0..16]);
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        let u32_at = |at: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[at..at + 4]);
            u32::from_be_bytes(a)
        };
        Ok(Self {
            last_id: EntryId::from_bytes(id),
            min_ts: i64_at(16),
            max_ts: i64_at(24),
            count: u32_at(32),
            raw_bytes: u32_at(36),
        })
    }

    /// The field of the block in the log's `blocks` hash.
    pub fn field(&self) -> [u8; 16] {
        self.last_id.to_bytes()
    }
}

/// `[<id>`: an inclusive lexicographic bound. Every member whose id is >= `id` sorts at or
/// above it (a member is longer than the bound, so equal ids sort above).
pub fn lex_at_or_above(id: EntryId) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    b.push(b'[');
    b.extend_from_slice(&id.to_bytes());
    b
}

/// `(<id>`: an exclusive upper bound that admits exactly the members whose id is < `id`.
pub fn lex_below(id: EntryId) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    b.push(b'(');
    b.extend_from_slice(&id.to_bytes());
    b
}

/// `(<member>`: an exclusive upper bound just below a member already seen (to continue a
/// newest-first walk).
pub fn lex_below_member(member: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + member.len());
    b.push(b'(');
    b.extend_from_slice(member);
    b
}

/// `(<id> ff…`: an exclusive upper bound that admits every member whose id is <= `id`,
/// whatever its suffix (used to re-read the index after a block was rewritten under us).
pub fn lex_at_or_below(id: EntryId) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + MEMBER_LEN + 1);
    b.push(b'(');
    b.extend_from_slice(&id.to_bytes());
    b.extend_from_slice(&[0xff; MEMBER_LEN - 16 + 1]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::new(s).expect("test value")
    }

    #[test]
    fn keys_carry_prefix_and_tenant_hash_tag() {
        let k = TenantKeys::new("nl", &t("acme"));
        assert_eq!(k.logs(), "nl:{acme}:logs");
        let l = k.log(&LogName::new("app.v2").expect("test value"));
        assert_eq!(l.meta, "nl:{acme}:meta:app.v2");
        assert_eq!(l.index, "nl:{acme}:index:app.v2");
        assert_eq!(l.blocks, "nl:{acme}:blocks:app.v2");
        assert!(l.blocks.starts_with(k.base()));
    }

    #[test]
    fn tenants_never_share_a_key_space() {
        // `p` is a prefix of `pq`, but the closing brace keeps their key spaces apart.
        let p = TenantKeys::new("nl", &t("p"));
        let pq = TenantKeys::new("nl", &t("pq"));
        assert!(!pq.logs().starts_with(p.base()));
        assert!(!p.logs().starts_with(pq.base()));
        // A log name cannot reach another key kind: names hold no ':'.
        let a = p.log(&LogName::new("x").expect("test value"));
        let b = p.log(&LogName::new("x.y").expect("test value"));
        assert_ne!(a.index, b.index);
    }

    #[test]
    fn prefix_rules() {
        for ok in ["neurallog", "prod:eu-1", "a.b_c"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a{b", "x}", "a*", "a b", "a?", "[a]", &"x".repeat(65)] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn member_round_trip_and_order() {
        let m = |id: u128, count| IndexMember {
            last_id: EntryId::from_u128(id),
            min_ts: -5,
            max_ts: 1_700_000_000_000,
            count,
            raw_bytes: 99,
        };
        let a = m(7, 3);
        assert_eq!(IndexMember::decode(&a.encode()).expect("test value"), a);
        assert!(IndexMember::decode(&[0; 39]).is_err());
        // The id alone orders members, whatever the suffix.
        assert!(m(7, u32::MAX).encode() < m(8, 0).encode());
        // Bounds, without their leading '[' / '(' (Redis compares the rest bytewise).
        let at = lex_at_or_above(EntryId::from_u128(7));
        assert!(a.encode().as_slice() >= &at[1..]);
        let below = lex_below(EntryId::from_u128(7));
        assert!(a.encode().as_slice() > &below[1..], "id 7 is not below 7");
        assert!(m(6, 3).encode().as_slice() < &below[1..]);
        let upto = lex_at_or_below(EntryId::from_u128(7));
        assert!(m(7, u32::MAX).encode().as_slice() < &upto[1..]);
        assert!(m(8, 0).encode().as_slice() > &upto[1..]);
    }
}
