//! The encrypted, integrity-checked backup archive (format 1; docs/decisions.md).
//!
//! ```text
//! "NLBACKUP" | version u8 (1) | header length u32 LE | header (JSON, plain)
//! then chunks: ciphertext length u32 LE | AES-256-GCM ciphertext of ≤ 64 KiB plaintext + tag
//! ```
//!
//! Every chunk's nonce is the header's random 7-byte prefix, the chunk number (u32 BE) and a
//! last-chunk flag byte; its associated data is the SHA-256 of the header. So a chunk cannot be
//! moved, dropped, duplicated or taken from another archive, the header (tenant list, time,
//! key id) cannot be altered, and an archive cut anywhere — even between chunks — is refused
//! because its last chunk does not carry the flag. (This is the STREAM construction of Hoang,
//! Reyhanitabar, Rogaway and Vizár.) The key id in the header is a hash of the key, so a wrong
//! key is named as such before any decryption is tried.

use std::io::{Read, Write};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key::BackupKey;

const MAGIC: &[u8; 8] = b"NLBACKUP";
const VERSION: u8 = 1;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MAX_HEADER: usize = 1024 * 1024;

/// The plain header: what the archive holds, readable without the key (but authenticated).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u8,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// Tenants the archive holds.
    pub tenants: Vec<String>,
    /// Fingerprint of the backup key (not the key).
    pub key_id: String,
    /// Random nonce prefix, hex (7 bytes).
    pub nonce_prefix: String,
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn parse_prefix(hex: &str) -> anyhow::Result<[u8; 7]> {
    let bytes = super::key::from_hex(hex).context("archive header is damaged")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("archive header is damaged"))
}

/// Writes an archive: plaintext in, encrypted chunks out.
pub struct Writer<W: Write> {
    out: W,
    cipher: Aes256Gcm,
    prefix: [u8; 7],
    aad: [u8; 32],
    counter: u32,
    buf: Vec<u8>,
    /// Bytes written so far (for progress and the report).
    pub written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(
        mut out: W,
        key: &BackupKey,
        tenants: Vec<String>,
        created_ms: i64,
    ) -> anyhow::Result<Self> {
        let prefix: [u8; 7] = rand::random();
        let header = Header {
            format: VERSION,
            created_ms,
            tenants,
            key_id: key.id(),
            nonce_prefix: super::key::to_hex(&prefix),
        };
        let text = serde_json::to_vec(&header)?;
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        out.write_all(&(text.len() as u32).to_le_bytes())?;
        out.write_all(&text)?;
        Ok(Self {
            out,
            cipher: key.cipher(),
            prefix,
            aad: Sha256::digest(&text).into(),
            counter: 0,
            buf: Vec::with_capacity(CHUNK),
            written: (MAGIC.len() + 5 + text.len()) as u64,
        })
    }

    fn seal(&mut self, last: bool) -> anyhow::Result<()> {
        let n = nonce(&self.prefix, self.counter, last);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&n),
                Payload {
                    msg: &self.buf,
                    aad: &self.aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        self.out.write_all(&(ct.len() as u32).to_le_bytes())?;
        self.out.write_all(&ct)?;
        self.written += 4 + ct.len() as u64;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .context("archive too large (2^32 chunks)")?;
        Ok(())
    }

    /// Adds plaintext.
    pub fn write(&mut self, mut data: &[u8]) -> anyhow::Result<()> {
        while !data.is_empty() {
            let room = CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            // A full chunk is sealed only when more follows, so the last one can be flagged.
            if self.buf.len() == CHUNK && !data.is_empty() {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Seals the last chunk and returns the sink.
    pub fn finish(mut self) -> anyhow::Result<W> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an archive's header, then its plaintext chunk by chunk, authenticating each.
pub struct Reader<R: Read> {
    input: R,
    pub header: Header,
    cipher: Aes256Gcm,
    prefix: [u8; 7],
    aad: [u8; 32],
    counter: u32,
    done: bool,
}

const DAMAGED: &str = "the archive is damaged or was altered (authentication failed)";

impl<R: Read> Reader<R> {
    pub fn open(mut input: R, key: &BackupKey) -> anyhow::Result<Self> {
        let mut magic = [0u8; 13];
        input
            .read_exact(&mut magic)
            .map_err(|_| anyhow::anyhow!("not a NeuralLog backup archive (too short)"))?;
        if &magic[..8] != MAGIC {
            bail!("not a NeuralLog backup archive");
        }
        if magic[8] != VERSION {
            bail!(
                "unsupported backup format {} (this build reads {VERSION})",
                magic[8]
            );
        }
        let len = u32::from_le_bytes([magic[9], magic[10], magic[11], magic[12]]) as usize;
        if len > MAX_HEADER {
            bail!("archive header is damaged");
        }
        let mut text = vec![0u8; len];
        input
            .read_exact(&mut text)
            .map_err(|_| anyhow::anyhow!("archive header is truncated"))?;
        let header: Header = serde_json::from_slice(&text)
            .map_err(|_| anyhow::anyhow!("archive header is damaged"))?;
        if header.key_id != key.id() {
            bail!(
                "wrong backup key: the archive was made with key {} but NEURALLOG_BACKUP_KEY is key {}",
                header.key_id,
                key.id()
            );
        }
        let prefix = parse_prefix(&header.nonce_prefix)?;
        Ok(Self {
            input,
            header,
            cipher: key.cipher(),
            prefix,
            aad: Sha256::digest(&text).into(),
            counter: 0,
            done: false,
        })
    }

    /// The next chunk's plaintext; `None` after the last. Fails on any damage, reordering or
    /// truncation.
    pub fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        if let Err(e) = self.input.read_exact(&mut len) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                anyhow::anyhow!("the archive is truncated (its last part is missing)")
            } else {
                e.into()
            });
        }
        let len = u32::from_le_bytes(len) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            bail!(DAMAGED);
        }
        let mut ct = vec![0u8; len];
        self.input
            .read_exact(&mut ct)
            .map_err(|_| anyhow::anyhow!("the archive is truncated (its last part is missing)"))?;
        let open = |last: bool| {
            self.cipher.decrypt(
                Nonce::from_slice(&nonce(&self.prefix, self.counter, last)),
                Payload {
                    msg: &ct,
                    aad: &self.aad,
                },
            )
        };
        let (plain, last) = match open(false) {
            Ok(p) => (p, false),
            Err(_) => (open(true).map_err(|_| anyhow::anyhow!(DAMAGED))?, true),
        };
        self.counter = self.counter.checked_add(1).context(DAMAGED)?;
        if last {
            self.done = true;
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra)? != 0 {
                bail!("the archive has data after its last part (altered)");
            }
        }
        Ok(Some(plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> BackupKey {
        BackupKey::from_bytes([b; 32])
    }

    fn archive(data: &[u8]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), &key(1), vec!["t".into()], 5).unwrap();
        w.write(data).unwrap();
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8], k: &BackupKey) -> anyhow::Result<Vec<u8>> {
        let mut r = Reader::open(bytes, k)?;
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk()? {
            out.extend(c);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_and_every_tamper_is_refused() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 100)).map(|i| (i % 251) as u8).collect();
        let a = archive(&data);
        assert_eq!(read_all(&a, &key(1)).unwrap(), data);
        assert_eq!(read_all(&archive(b""), &key(1)).unwrap(), b"");
        // An exact multiple of the chunk size still ends with a flagged chunk.
        let exact = vec![7u8; CHUNK];
        assert_eq!(read_all(&archive(&exact), &key(1)).unwrap(), exact);

        let wrong = read_all(&a, &key(2)).unwrap_err().to_string();
        assert!(wrong.contains("wrong backup key"), "{wrong}");
        for cut in [0, 5, 20, a.len() / 2, a.len() - 1] {
            assert!(read_all(&a[..cut], &key(1)).is_err(), "cut at {cut}");
        }
        // Cut exactly after the first chunk (a chunk boundary).
        let hlen = 13 + u32::from_le_bytes(a[9..13].try_into().unwrap()) as usize;
        let first = hlen + 4 + CHUNK + TAG;
        let e = read_all(&a[..first], &key(1)).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // Flipped bytes anywhere after the magic.
        for at in [9, hlen - 2, hlen + 10, a.len() - 3] {
            let mut b = a.clone();
            b[at] ^= 0x40;
            assert!(read_all(&b, &key(1)).is_err(), "flip at {at}");
        }
        // Swapped chunks.
        let second = first + 4 + CHUNK + TAG;
        let mut swapped = a[..hlen].to_vec();
        swapped.extend_from_slice(&a[first..second]);
        swapped.extend_from_slice(&a[hlen..first]);
        swapped.extend_from_slice(&a[second..]);
        assert!(read_all(&swapped, &key(1)).is_err());
        // Appended garbage.
        let mut longer = a.clone();
        longer.push(0);
        assert!(read_all(&longer, &key(1)).is_err());
    }
}
