//! The backup key: 32 bytes of its own (`NEURALLOG_BACKUP_KEY` or `NEURALLOG_BACKUP_KEY_FILE`,
//! base64 or hex), never the master key, so that whoever holds archives and their key holds
//! no key to the live store, and the other way round.

use aes_gcm::{Aes256Gcm, KeyInit};
use anyhow::{Context, bail};
use base64::Engine;
use sha2::{Digest, Sha256};

/// A backup key; its bytes never print.
pub struct BackupKey([u8; 32]);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupKey({})", self.id())
    }
}

impl Drop for BackupKey {
    fn drop(&mut self) {
        self.0 = [0; 32];
    }
}

const MISSING: &str = "no backup key: set NEURALLOG_BACKUP_KEY (or NEURALLOG_BACKUP_KEY_FILE) to \
32 random bytes in base64 or hex, e.g. from `openssl rand -base64 32`; archives are encrypted \
with this key of their own, never with the master key";

impl BackupKey {
    #[cfg(test)]
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// Parses base64 (standard or URL-safe, padded or not) or 64 hex digits.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            from_hex(t)?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|e| e.decode(t).ok())
                .context("the backup key is neither base64 nor 64 hex digits")?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            anyhow::anyhow!("the backup key must be 32 bytes, got {}", b.len())
        })?;
        Ok(Self(arr))
    }

    /// Reads the key from the environment; refuses to go on without one.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        if let Some(v) = env("NEURALLOG_BACKUP_KEY").filter(|v| !v.trim().is_empty()) {
            return Self::parse(&v).context("invalid NEURALLOG_BACKUP_KEY");
        }
        if let Some(path) = env("NEURALLOG_BACKUP_KEY_FILE").filter(|v| !v.trim().is_empty()) {
            let text = std::fs::read_to_string(path.trim())
                .with_context(|| format!("cannot read NEURALLOG_BACKUP_KEY_FILE {path}"))?;
            return Self::parse(&text).context("invalid NEURALLOG_BACKUP_KEY_FILE");
        }
        bail!(MISSING)
    }

    /// A public fingerprint: the first 8 bytes of SHA-256("neurallog-backup-key-id" | key),
    /// in hex. It names the key without revealing it.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"neurallog-backup-key-id");
        h.update(self.0);
        to_hex(&h.finalize()[..8])
    }

    pub fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn from_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .context("not hex")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_from_base64_and_hex_and_never_print() {
        let hex = "00".repeat(31) + "ff";
        let k = BackupKey::parse(&hex).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(k.0);
        assert_eq!(BackupKey::parse(&format!(" {b64}\n")).unwrap().id(), k.id());
        let secretish = BackupKey::from_bytes([0xab; 32]);
        assert!(!format!("{secretish:?}").contains("abab"), "{secretish:?}");
        assert!(BackupKey::parse("short").is_err());
        assert!(BackupKey::parse(&"00".repeat(16)).is_err());
        let none = |_: &str| None;
        let e = BackupKey::from_env(&none).unwrap_err().to_string();
        assert!(e.contains("NEURALLOG_BACKUP_KEY"), "{e}");
        assert_ne!(
            BackupKey::from_bytes([1; 32]).id(),
            BackupKey::from_bytes([2; 32]).id()
        );
    }
}
