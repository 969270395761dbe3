//! Entry ids: 128-bit, time-ordered, printed as 26 Crockford base32 characters (the ULID
//! layout: 48 bits of milliseconds since the Unix epoch, then 80 bits that are random at the
//! start of each millisecond and counted up within it).
//!
//! Sorting ids sorts entries by the time the store accepted them, which is the order in which
//! a log is read and paginated.

use std::fmt;

use serde::{Deserialize, Serialize};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ENCODED_LEN: usize = 26;
const RANDOM_BITS: u32 = 80;
const RANDOM_MASK: u128 = (1 << RANDOM_BITS) - 1;

/// A time-ordered unique entry id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(u128);

/// Why a string is not an entry id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("entry id must be 26 Crockford base32 characters")]
pub struct InvalidEntryId;

impl EntryId {
    /// The smallest id, before every real one.
    pub const MIN: EntryId = EntryId(0);
    /// The largest id, after every real one.
    pub const MAX: EntryId = EntryId(u128::MAX);

    /// Builds an id from its 128-bit value.
    pub const fn from_u128(v: u128) -> Self {
        Self(v)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// Big-endian bytes, which sort like the ids themselves (used in storage keys).
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Reads the big-endian form.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(b))
    }

    /// Milliseconds since the Unix epoch at which the id was made.
    pub const fn millis(self) -> i64 {
        (self.0 >> RANDOM_BITS) as i64
    }

    /// The smallest id of a millisecond, for turning times into id bounds.
    pub fn first_of_millis(ms: i64) -> Self {
        Self((ms.max(0) as u128) << RANDOM_BITS)
    }

    /// Parses the 26-character text form (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, InvalidEntryId> {
        let bytes = s.as_bytes();
        if bytes.len() != ENCODED_LEN {
            return Err(InvalidEntryId);
        }
        // The first character carries only 3 bits (26 * 5 = 130 bits).
        let mut v: u128 = 0;
        for (i, b) in bytes.iter().enumerate() {
            let d = decode_char(*b).ok_or(InvalidEntryId)?;
            if i == 0 && d > 7 {
                return Err(InvalidEntryId);
            }
            v = (v << 5) | u128::from(d);
        }
        Ok(Self(v))
    }
}

fn decode_char(b: u8) -> Option<u8> {
    let up = b.to_ascii_uppercase();
    ALPHABET.iter().position(|c| *c == up).map(|p| p as u8)
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; ENCODED_LEN];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(v & 31) as usize];
            v >>= 5;
        }
        // All bytes come from ALPHABET, so they are ASCII.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl std::str::FromStr for EntryId {
    type Err = InvalidEntryId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for EntryId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntryId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hands out strictly increasing ids.
///
/// Within one millisecond the random part counts up from a random start, so ids stay unique
/// and ordered even when the clock stands still or steps back.
#[derive(Debug, Default)]
pub struct IdGenerator {
    last: u128,
}

impl IdGenerator {
    /// A generator that will only hand out ids above `floor` (the newest id already stored).
    pub fn starting_after(floor: EntryId) -> Self {
        Self { last: floor.0 }
    }

    /// The next id for time `now_ms`, using `random` when a new millisecond starts.
    pub fn next(&mut self, now_ms: i64, random: u128) -> EntryId {
        let candidate = ((now_ms.max(0) as u128) << RANDOM_BITS) | (random & (RANDOM_MASK >> 1));
        let next = if candidate > self.last {
            candidate
        } else {
            self.last.saturating_add(1)
        };
        self.last = next;
        EntryId(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_order() {
        let mut g = IdGenerator::default();
        let a = g.next(1_700_000_000_000, 12345);
        let b = g.next(1_700_000_000_000, 1);
        let c = g.next(1_699_000_000_000, 99); // clock stepped back
        assert!(a < b && b < c);
        for id in [a, b, c, EntryId::MIN, EntryId::MAX] {
            let s = id.to_string();
            assert_eq!(s.len(), 26);
            assert_eq!(EntryId::parse(&s), Ok(id));
            assert_eq!(EntryId::parse(&s.to_lowercase()), Ok(id));
        }
        assert!(a.to_string() < b.to_string(), "text form sorts like the id");
        assert_eq!(a.millis(), 1_700_000_000_000);
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "x",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "0000000000000000000000000U",
            "../../../../../../../../etc",
        ] {
            assert_eq!(EntryId::parse(bad), Err(InvalidEntryId), "{bad}");
        }
    }
}
