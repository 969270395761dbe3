//! The hash chain of audit records: their canonical encoding, their hashes, and verification.
//!
//! Each stored record is the event plus `chain` (the id of the writer that produced it),
//! `prev` (the hash of that chain's previous record, zeros for its first) and `hash`:
//! `SHA-256("neurallog-audit-v1" || prev || canonical JSON of the event and chain id)`. The
//! canonical JSON is serde's output of [`Canonical`], whose field order is fixed, so a parsed
//! record re-encodes to the same bytes.
//!
//! Several writers (one per process, and a new one after a tenant is deleted) append to the
//! same sequence, so one sequence interleaves several chains; verification follows each chain
//! on its own. A chain's newest hash is also kept as its *head* in the metadata store, so
//! removing the newest records of a chain (which leaves no broken link) is detected too.

use std::collections::{BTreeMap, HashMap, HashSet};

use neurallog_core::admin::AuditBreak;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of a chain's first record.
pub const GENESIS: [u8; 32] = [0; 32];

const DOMAIN: &[u8] = b"neurallog-audit-v1";

/// The recorded facts of one call (spec §7).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    /// Epoch milliseconds.
    pub ts: i64,
    pub tenant: Option<String>,
    pub principal: Option<String>,
    pub auth_method: Option<String>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub status: u16,
    pub client: Option<String>,
    pub request_id: String,
    /// How many calls the event stands for (see the ingest aggregation in the writer).
    pub count: u64,
}

/// What the hash covers, in a fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    chain: &'a str,
    event: &'a AuditEvent,
}

/// A record as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredRecord {
    pub chain: String,
    /// Hex SHA-256.
    pub prev: String,
    pub hash: String,
    pub event: AuditEvent,
}

/// The hash of `event` in `chain` after `prev`.
pub fn hash(chain: &str, prev: &[u8; 32], event: &AuditEvent) -> [u8; 32] {
    let canonical = serde_json::to_vec(&Canonical { chain, event })
        // NB: serialising plain strings and integers cannot fail.
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(&canonical);
    h.finalize().into()
}

/// Seals `event` as the record after `prev`, returning its bytes and its hash.
pub fn seal(chain: &str, prev: &[u8; 32], event: AuditEvent) -> (Vec<u8>, [u8; 32]) {
    let h = hash(chain, prev, &event);
    let record = StoredRecord {
        chain: chain.to_owned(),
        prev: hex(prev),
        hash: hex(&h),
        event,
    };
    (serde_json::to_vec(&record).unwrap_or_default(), h)
}

/// Lowercase hex.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(b.len() * 2);
    for byte in b {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Checks a sequence record by record, chain by chain. Feed the records in ascending
/// sequence order, then call [`Verifier::finish`] with the stored chain heads.
#[derive(Default)]
pub struct Verifier {
    last: HashMap<String, [u8; 32]>,
    seen: HashMap<String, HashSet<[u8; 32]>>,
    pub events: u64,
    pub first_bad: Option<AuditBreak>,
}

impl Verifier {
    /// Checks one record; after the first failure, only counts.
    pub fn push(&mut self, seq: u64, bytes: &[u8]) {
        self.events += 1;
        if self.first_bad.is_some() {
            return;
        }
        let bad = |chain: &str, reason: &str| AuditBreak {
            seq: Some(seq),
            chain: chain.to_owned(),
            reason: reason.to_owned(),
        };
        let Ok(rec) = serde_json::from_slice::<StoredRecord>(bytes) else {
            self.first_bad = Some(bad("", "unreadable"));
            return;
        };
        let (Some(prev), Some(stated)) = (unhex32(&rec.prev), unhex32(&rec.hash)) else {
            self.first_bad = Some(bad(&rec.chain, "unreadable"));
            return;
        };
        let expected_prev = self.last.get(&rec.chain).copied().unwrap_or(GENESIS);
        if prev != expected_prev {
            self.first_bad = Some(bad(&rec.chain, "broken_link"));
            return;
        }
        if hash(&rec.chain, &prev, &rec.event) != stated {
            self.first_bad = Some(bad(&rec.chain, "hash_mismatch"));
            return;
        }
        self.last.insert(rec.chain.clone(), stated);
        self.seen.entry(rec.chain).or_default().insert(stated);
    }

    /// Every stored head must be a hash its chain reached: a head that no record carries
    /// means the newest records of that chain were removed. (A head may lag behind its chain
    /// when the process stopped between appending and updating the head.)
    pub fn finish(mut self, heads: &BTreeMap<String, String>) -> Self {
        if self.first_bad.is_none() {
            for (chain, head) in heads {
                let reached = unhex32(head)
                    .is_some_and(|h| self.seen.get(chain).is_some_and(|s| s.contains(&h)));
                if !reached {
                    self.first_bad = Some(AuditBreak {
                        seq: None,
                        chain: chain.clone(),
                        reason: "truncated".into(),
                    });
                    break;
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u16) -> AuditEvent {
        AuditEvent {
            ts: 1,
            tenant: Some("t".into()),
            principal: None,
            auth_method: None,
            action: "logs.read".into(),
            resource: "/logs/a".into(),
            outcome: "success".into(),
            status: n,
            client: None,
            request_id: "r".into(),
            count: 1,
        }
    }

    fn build(chains: &[&str]) -> (Vec<Vec<u8>>, BTreeMap<String, String>) {
        let mut last: HashMap<&str, [u8; 32]> = HashMap::new();
        let mut out = Vec::new();
        for (i, c) in chains.iter().enumerate() {
            let prev = last.get(c).copied().unwrap_or(GENESIS);
            let (bytes, h) = seal(c, &prev, ev(i as u16));
            last.insert(c, h);
            out.push(bytes);
        }
        let heads = last.iter().map(|(c, h)| (c.to_string(), hex(h))).collect();
        (out, heads)
    }

    fn verify(recs: &[Vec<u8>], heads: &BTreeMap<String, String>) -> Verifier {
        let mut v = Verifier::default();
        for (i, r) in recs.iter().enumerate() {
            v.push(i as u64, r);
        }
        v.finish(heads)
    }

    #[test]
    fn interleaved_chains_verify() {
        let (recs, heads) = build(&["a", "b", "a", "a", "b"]);
        let v = verify(&recs, &heads);
        assert_eq!((v.events, v.first_bad), (5, None));
    }

    #[test]
    fn altered_record_is_found() {
        let (mut recs, heads) = build(&["a", "b", "a"]);
        let text = String::from_utf8(recs[2].clone()).unwrap();
        recs[2] = text.replace("logs.read", "logs.list").into_bytes();
        let bad = verify(&recs, &heads).first_bad.unwrap();
        assert_eq!((bad.seq, bad.reason.as_str()), (Some(2), "hash_mismatch"));
    }

    #[test]
    fn removed_record_is_found() {
        let (mut recs, heads) = build(&["a", "a", "a"]);
        recs.remove(1);
        let bad = verify(&recs, &heads).first_bad.unwrap();
        assert_eq!((bad.seq, bad.reason.as_str()), (Some(1), "broken_link"));
    }

    #[test]
    fn removed_newest_record_is_found_through_the_head() {
        let (mut recs, heads) = build(&["a", "b", "a"]);
        recs.pop();
        let bad = verify(&recs, &heads).first_bad.unwrap();
        assert_eq!(
            (bad.chain.as_str(), bad.reason.as_str()),
            ("a", "truncated")
        );
        // A head that lags (crash between append and head update) is fine.
        let (recs, mut heads) = build(&["a", "a"]);
        let (first, _) = build(&["a"]);
        let first_hash = serde_json::from_slice::<StoredRecord>(&first[0])
            .unwrap()
            .hash;
        heads.insert("a".into(), first_hash);
        assert_eq!(verify(&recs, &heads).first_bad, None);
    }

    #[test]
    fn garbage_is_unreadable_not_a_panic() {
        let v = verify(&[b"not json".to_vec()], &BTreeMap::new());
        assert_eq!(v.first_bad.unwrap().reason, "unreadable");
    }
}
