//! Encryption at rest: envelope encryption of every stored block.
//!
//! - A [`MasterKey`] (32 bytes, from the server's configuration) never encrypts data; it
//!   only wraps data keys.
//! - Every tenant has its own data keys ([`DataKey`], AES-256-GCM). One of them is current and
//!   seals new blocks; older ones stay to open older blocks. Each key has a random 64-bit
//!   [`KeyId`], written in clear in front of every block it sealed, so keys rotate without
//!   re-encrypting anything.
//! - A sealed block is `header | key id | nonce | AES-256-GCM(zstd(payload)) | tag`, with a
//!   fresh random 96-bit nonce per block. The associated data binds the ciphertext to its
//!   tenant, its log, its key id and its plain header (count and time span), so a block copied
//!   to another tenant or log, or a header edited to mislead reads, fails to open.
//! - [`keyring`]: data keys are wrapped by the master key and kept as storage metadata, so
//!   every replica sharing a Redis finds them; the [`Keyring`] caches the unwrapped keys.
//!
//! Backends receive an [`Encryption`] when they open. Before any read or write they ask for
//! the tenant's [`TenantCipher`] and hand it to [`crate::block`], which seals after
//! compression and opens before decompression.

pub mod keyring;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine;
use neurallog_core::{LogName, TenantId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Result, StorageError};
pub use keyring::{KeyStore, Keyring, RewrapReport};

/// Bytes of a key (AES-256).
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce (96 bits, the size GCM is defined for).
pub const NONCE_LEN: usize = 12;
/// Bytes of an authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 8;
/// The name of the algorithm, as reported by the API.
pub const ALGORITHM: &str = "AES-256-GCM";

/// Domain separation for everything this module authenticates; bumping it invalidates every
/// sealed object, so it only changes with the format.
const CONTEXT: &[u8] = b"neurallog:v1\0";

/// Start of the error of a block sealed with a key this server does not know (yet).
const UNKNOWN_KEY: &str = "block is sealed with unknown data key";

/// Whether `e` says a block was sealed with a data key missing from the cached key set: a
/// key another replica created since this one last read the tenant's keys, or a forgery.
pub fn is_unknown_key(e: &StorageError) -> bool {
    e.kind == crate::ErrorKind::Corrupt && e.message.starts_with(UNKNOWN_KEY)
}

/// Whether a backend encrypts what it stores.
#[derive(Clone, Debug, Default)]
pub enum Encryption {
    /// Blocks are stored compressed but readable by anyone with the files. For tests,
    /// tools and the benchmark's comparison only: the server always encrypts.
    #[default]
    Off,
    /// Blocks are sealed with the tenants' data keys from this key ring.
    On(Arc<Keyring>),
}

impl Encryption {
    /// The key ring, when encryption is on.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        match self {
            Encryption::Off => None,
            Encryption::On(k) => Some(k),
        }
    }
}

/// A data key's id: random, so that replicas creating keys at the same moment never collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u64);

impl KeyId {
    fn random() -> Self {
        Self(rand::rng().next_u64())
    }

    /// The id as stored in blocks.
    pub fn to_bytes(self) -> [u8; KEY_ID_LEN] {
        self.0.to_be_bytes()
    }

    /// Parses the 16 lowercase hex digits of [`KeyId`]'s `Display`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The master key: wraps and unwraps data keys, nothing else.
pub struct MasterKey {
    id: [u8; 8],
    cipher: Aes256Gcm,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id_hex())
            .finish_non_exhaustive()
    }
}

/// Why a master key text was refused (never contains the text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected 32 bytes as 64 hex digits or as base64 (44 characters)")]
pub struct InvalidMasterKey;

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        // The id names the key in wrapped records without revealing it: a domain-separated
        // hash, of which 64 bits are kept.
        let mut h = Sha256::new();
        h.update(b"neurallog:v1:master-key-id\0");
        h.update(bytes);
        let digest = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self {
            id,
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// Parses 64 hex digits or standard base64 of 32 bytes (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, InvalidMasterKey> {
        let t = text.trim();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if t.len() == 2 * KEY_LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, out) in key.iter_mut().enumerate() {
                *out =
                    u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| InvalidMasterKey)?;
            }
        } else {
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(|_| InvalidMasterKey)?,
            );
            if decoded.len() != KEY_LEN {
                return Err(InvalidMasterKey);
            }
            key.copy_from_slice(&decoded);
        }
        Ok(Self::from_bytes(&key))
    }

    /// A new random key and its base64 text (to store in a key file).
    pub fn generate() -> (Self, Zeroizing<String>) {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut());
        let text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
        (Self::from_bytes(&key), text)
    }

    /// The key's public id (16 hex digits).
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn id(&self) -> [u8; 8] {
        self.id
    }

    /// Encrypts `key` bound to `aad`; returns nonce | ciphertext | tag.
    pub(crate) fn wrap(&self, key: &[u8; KEY_LEN], aad: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_nonce();
        let mut buf = Zeroizing::new(key.to_vec());
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, buf.as_mut())
            .map_err(|_| StorageError::internal("data key wrap failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + KEY_LEN + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Reverses [`MasterKey::wrap`]; `None` when the key or the binding does not match.
    pub(crate) fn unwrap_key(
        &self,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Option<Zeroizing<[u8; KEY_LEN]>> {
        if wrapped.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(KEY_LEN);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(ct);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                aad,
                key.as_mut(),
                Tag::from_slice(tag),
            )
            .ok()?;
        Some(key)
    }
}

fn random_nonce() -> [u8; NONCE_LEN] {
    // NB: `rand::rng()` is a CSPRNG seeded from the OS; a 96-bit random nonce per message
    // keeps the chance of a repeat negligible for far more blocks than one key will seal.
    let mut n = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut n);
    n
}

/// One data key of a tenant. Its bytes are erased from memory when it is dropped.
pub struct DataKey {
    id: KeyId,
    created_at: i64,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    fn new(id: KeyId, created_at: i64, bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new(bytes.as_ref().into());
        Self {
            id,
            created_at,
            bytes,
            cipher,
        }
    }

    fn generate(created_at: i64) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self::new(KeyId::random(), created_at, bytes)
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// When the key was created (ms since the epoch).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// The data keys of one tenant: the current one seals, all of them open.
#[derive(Debug)]
pub struct TenantKeys {
    current: KeyId,
    keys: BTreeMap<KeyId, DataKey>,
}

impl TenantKeys {
    /// Builds the set; the current key is the newest (ties broken by id, so that every
    /// replica picks the same one).
    fn new(keys: Vec<DataKey>) -> Option<Self> {
        let current = keys.iter().max_by_key(|k| (k.created_at, k.id))?.id;
        Some(Self {
            current,
            keys: keys.into_iter().map(|k| (k.id, k)).collect(),
        })
    }

    /// The key new blocks are sealed with.
    pub fn current(&self) -> KeyId {
        self.current
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &DataKey> {
        let mut v: Vec<&DataKey> = self.keys.values().collect();
        v.sort_by_key(|k| (k.created_at, k.id));
        v.into_iter()
    }

    fn get(&self, id: KeyId) -> Option<&DataKey> {
        self.keys.get(&id)
    }
}

/// How one tenant's blocks are sealed and opened: its keys, or none when encryption is off.
#[derive(Clone, Debug)]
pub struct TenantCipher {
    tenant: TenantId,
    keys: Option<Arc<TenantKeys>>,
}

impl TenantCipher {
    /// The key new blocks are sealed with; `None` when blocks are written in clear.
    pub fn current_key(&self) -> Option<KeyId> {
        self.keys.as_ref().map(|k| k.current)
    }

    /// Blocks written in clear (encryption off).
    pub fn plaintext(tenant: &TenantId) -> Self {
        Self {
            tenant: tenant.clone(),
            keys: None,
        }
    }

    /// Blocks sealed with `keys`.
    pub fn sealed(tenant: &TenantId, keys: Arc<TenantKeys>) -> Self {
        Self {
            tenant: tenant.clone(),
            keys: Some(keys),
        }
    }

    /// Whether `other` holds a different key set (a reload brought something new).
    pub fn keys_differ(&self, other: &TenantCipher) -> bool {
        match (&self.keys, &other.keys) {
            (Some(a), Some(b)) => a.keys.len() != b.keys.len() || a.current != b.current,
            (a, b) => a.is_some() != b.is_some(),
        }
    }

    /// The cipher of one of the tenant's logs.
    pub fn log(&self, log: &LogName) -> LogCipher<'_> {
        let mut context = Vec::with_capacity(CONTEXT.len() + 80);
        context.extend_from_slice(CONTEXT);
        context.extend_from_slice(self.tenant.as_str().as_bytes());
        context.push(0);
        context.extend_from_slice(log.as_str().as_bytes());
        context.push(0);
        LogCipher {
            keys: self.keys.as_deref(),
            context,
        }
    }
}

/// Seals and opens the blocks of one log. See the module docs for the format.
#[derive(Debug)]
pub struct LogCipher<'a> {
    keys: Option<&'a TenantKeys>,
    /// `neurallog:v1 \0 <tenant> \0 <log> \0`: the start of every block's associated data.
    context: Vec<u8>,
}

impl LogCipher<'_> {
    /// Whether blocks are sealed.
    pub fn is_sealed(&self) -> bool {
        self.keys.is_some()
    }

    fn aad(&self, head: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.context.len() + head.len());
        aad.extend_from_slice(&self.context);
        aad.extend_from_slice(head);
        aad
    }

    /// Appends the sealed form of `body` to `out`, which holds the block's plain header:
    /// key id | nonce | ciphertext | tag. The header and the key id are authenticated.
    pub fn seal(&self, out: &mut Vec<u8>, body: &[u8]) -> Result<()> {
        let Some(keys) = self.keys else {
            out.extend_from_slice(body);
            return Ok(());
        };
        let key = keys
            .get(keys.current)
            .ok_or_else(|| StorageError::internal("the current data key is missing"))?;
        out.extend_from_slice(&key.id.to_bytes());
        let aad = self.aad(out);
        let nonce = random_nonce();
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(body);
        let tag = key
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut out[start..])
            .map_err(|_| StorageError::internal("block encryption failed"))?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens what [`LogCipher::seal`] appended after a `head_len`-byte header. Every failure
    /// is [`crate::ErrorKind::Corrupt`] and says nothing of the content.
    pub fn open(&self, bytes: &[u8], head_len: usize) -> Result<Vec<u8>> {
        let Some(keys) = self.keys else {
            return Err(StorageError::corrupt(
                "block is encrypted but encryption is off",
            ));
        };
        let fixed = head_len + KEY_ID_LEN + NONCE_LEN;
        if bytes.len() < fixed + TAG_LEN {
            return Err(StorageError::corrupt("sealed block is truncated"));
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&bytes[head_len..head_len + KEY_ID_LEN]);
        let id = KeyId(u64::from_be_bytes(id));
        let key = keys
            .get(id)
            .ok_or_else(|| StorageError::corrupt(format!("{UNKNOWN_KEY} {id}")))?;
        let aad = self.aad(&bytes[..head_len + KEY_ID_LEN]);
        let nonce = &bytes[head_len + KEY_ID_LEN..fixed];
        let (ct, tag) = bytes[fixed..].split_at(bytes.len() - fixed - TAG_LEN);
        let mut plain = ct.to_vec();
        key.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &aad,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| StorageError::corrupt("block failed its integrity check"))?;
        Ok(plain)
    }
}

/// A tenant key set of one fresh key, for tests of the block format.
#[cfg(test)]
pub(crate) fn test_keys() -> Arc<TenantKeys> {
    Arc::new(TenantKeys::new(vec![DataKey::generate(1)]).expect("one key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Arc<TenantKeys> {
        test_keys()
    }

    #[test]
    fn master_key_texts() {
        let hex = "00".repeat(31) + "01";
        let a = MasterKey::parse(&hex).expect("hex");
        let mut raw = [0u8; 32];
        raw[31] = 1;
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let b = MasterKey::parse(&format!(" {b64}\n")).expect("base64");
        assert_eq!(a.id_hex(), b.id_hex());
        for bad in ["", "abc", &"0".repeat(63), &"zz".repeat(32), "AAAA"] {
            assert_eq!(MasterKey::parse(bad).err(), Some(InvalidMasterKey), "{bad}");
        }
        let (g, text) = MasterKey::generate();
        assert_eq!(
            MasterKey::parse(&text).expect("own text").id_hex(),
            g.id_hex()
        );
        assert!(!format!("{g:?}").contains(text.as_str()));
    }

    #[test]
    fn wrap_binds_the_context() {
        let (m, _) = MasterKey::generate();
        let (other, _) = MasterKey::generate();
        let key = [7u8; 32];
        let w = m.wrap(&key, b"ctx").expect("wrap");
        assert_eq!(*m.unwrap_key(&w, b"ctx").expect("unwrap"), key);
        assert!(m.unwrap_key(&w, b"other").is_none());
        assert!(other.unwrap_key(&w, b"ctx").is_none());
        assert!(m.unwrap_key(&w[1..], b"ctx").is_none());
    }

    #[test]
    fn sealed_bodies_open_only_in_their_place() {
        let t = TenantId::new("acme").expect("tenant");
        let u = TenantId::new("other").expect("tenant");
        let l = LogName::new("app").expect("log");
        let m = LogName::new("app2").expect("log");
        let k = keys();
        let c = TenantCipher::sealed(&t, k.clone());
        let mut out = b"HEAD".to_vec();
        c.log(&l).seal(&mut out, b"secret body").expect("seal");
        assert!(!out.windows(6).any(|w| w == b"secret"));
        assert_eq!(c.log(&l).open(&out, 4).expect("open"), b"secret body");
        // Another log, another tenant (even with the same keys), another header, a flipped
        // bit, a cut: all refused.
        assert!(c.log(&m).open(&out, 4).is_err());
        assert!(TenantCipher::sealed(&u, k).log(&l).open(&out, 4).is_err());
        let mut head = out.clone();
        head[0] ^= 1;
        assert!(c.log(&l).open(&head, 4).is_err());
        for i in 4..out.len() {
            let mut f = out.clone();
            f[i] ^= 0x40;
            assert!(c.log(&l).open(&f, 4).is_err(), "flip at {i}");
        }
        for cut in 0..out.len() {
            assert!(c.log(&l).open(&out[..cut], 4).is_err(), "cut at {cut}");
        }
        // Keys of another tenant do not know the key id.
        let e = TenantCipher::sealed(&t, keys())
            .log(&l)
            .open(&out, 4)
            .expect_err("unknown key");
        assert!(e.message.contains("unknown data key"), "{}", e.message);
        assert!(TenantCipher::plaintext(&t).log(&l).open(&out, 4).is_err());
    }

    #[test]
    fn the_newest_key_is_current() {
        let a = DataKey::generate(10);
        let b = DataKey::generate(20);
        let b_id = b.id();
        let k = TenantKeys::new(vec![b, a]).expect("keys");
        assert_eq!(k.current(), b_id);
        assert_eq!(
            k.keys().map(|k| k.created_at()).collect::<Vec<_>>(),
            vec![10, 20]
        );
        assert!(TenantKeys::new(vec![]).is_none());
    }
}
