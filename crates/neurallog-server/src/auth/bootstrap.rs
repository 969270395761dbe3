//! Keys fixed by configuration: the bootstrap admin key (`API_KEY`, or a key generated on
//! first start of which only the SHA-256 hash is kept in the data directory) and the system
//! key (`NEURALLOG_SYSTEM_KEY`). Keys are compared as hashes in constant time, so neither the
//! content nor the length of the key leaks through timing.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use neurallog_core::TenantId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// File in the data directory holding the hex SHA-256 of a generated bootstrap key.
pub const KEY_HASH_FILE: &str = "bootstrap-key.sha256";

/// Verifies the bootstrap key.
#[derive(Clone)]
pub struct BootstrapAuth {
    hash: [u8; 32],
    tenant: TenantId,
}

impl std::fmt::Debug for BootstrapAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapAuth")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl BootstrapAuth {
    /// Accepts exactly `key`, for `tenant`.
    pub fn from_key(key: &Secret, tenant: TenantId) -> Self {
        Self {
            hash: sha256(key.expose()),
            tenant,
        }
    }

    /// Uses the hash stored in `data_dir`, or generates a key, stores its hash and returns the
    /// key so that it can be shown once.
    pub fn load_or_generate(
        data_dir: &Path,
        tenant: TenantId,
    ) -> std::io::Result<(Self, Option<Secret>)> {
        let path = data_dir.join(KEY_HASH_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut hash = [0u8; 32];
            let bytes = decode_hex(text.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is damaged", path.display()),
                    )
                })?;
            hash.copy_from_slice(&bytes);
            return Ok((Self { hash, tenant }, None));
        }
        std::fs::create_dir_all(data_dir)?;
        let key = generate_key();
        let hex: String = sha256(key.expose())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let tmp = data_dir.join(format!("{KEY_HASH_FILE}.tmp"));
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(hex.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        Ok((Self::from_key(&key, tenant.clone()), Some(key)))
    }

    /// Whether `presented` is the key.
    pub fn verify(&self, presented: &str) -> bool {
        sha256(presented).ct_eq(&self.hash).into()
    }

    /// The tenant the key belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
}

/// A new key in the `nl_<id>_<secret>` format: a recognisable prefix for secret scanners and
/// 256 random bits.
pub fn generate_key() -> Secret {
    let mut rng = rand::rng();
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    // URL-safe base64 may contain '_'; the id part is hex, so `nl_<id>_` still splits cleanly.
    Secret::new(format!("nl_{id}_{secret}"))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_format_and_entropy() {
        let k = generate_key();
        let s = k.expose();
        assert!(s.starts_with("nl_"));
        assert_eq!(s.len(), 3 + 12 + 1 + 43);
        assert_ne!(generate_key(), k);
    }

    #[test]
    fn generated_key_hash_is_kept_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let t = TenantId::default_tenant();
        let (auth, key) = BootstrapAuth::load_or_generate(dir.path(), t.clone()).unwrap();
        let key = key.expect("generated");
        assert!(auth.verify(key.expose()));
        assert!(!auth.verify("nl_000000000000_wrong"));
        let stored = std::fs::read_to_string(dir.path().join(KEY_HASH_FILE)).unwrap();
        assert!(!stored.contains(key.expose()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_HASH_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The second start reuses the hash and shows no key.
        let (again, none) = BootstrapAuth::load_or_generate(dir.path(), t).unwrap();
        assert!(none.is_none());
        assert!(again.verify(key.expose()));
    }

    #[test]
    fn damaged_hash_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_HASH_FILE), "zz").unwrap();
        assert!(BootstrapAuth::load_or_generate(dir.path(), TenantId::default_tenant()).is_err());
    }
}
