//! Secrets that can change while the server runs.
//!
//! Each secret read from Vault gets a [`tokio::sync::watch`] channel; a background task
//! re-reads them every `VAULT_REFRESH_SECONDS` and publishes new values, and whoever holds a
//! secret subscribes with [`LiveSecrets::subscribe`]. Secrets from the environment or a
//! `_FILE` do not change while the process runs, so they have no channel.
//!
//! Who takes a rotated value live today: the TLS certificate, key and client CA (picked up
//! by the reload poll). Everything else read at start-up (`API_KEY`, `REDIS_URL`,
//! `REDIS_PASSWORD`, …) keeps its start-up value until a restart.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ConfigError;
use crate::secret::Secret;

/// The variables whose values come from a rotating source, by variable name.
#[derive(Clone, Default)]
pub struct LiveSecrets {
    channels: Arc<BTreeMap<String, watch::Sender<Secret>>>,
    #[cfg(feature = "vault")]
    vault: Option<Arc<crate::vault::VaultSource>>,
}

impl fmt::Debug for LiveSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: the values are secrets.
        f.debug_set().entries(self.channels.keys()).finish()
    }
}

impl LiveSecrets {
    /// Follows the value of variable `name`, or `None` when it does not rotate.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<Secret>> {
        self.channels.get(name).map(|tx| tx.subscribe())
    }

    /// The current value of variable `name`, when it rotates.
    pub fn current(&self, name: &str) -> Option<Secret> {
        self.channels.get(name).map(|tx| tx.borrow().clone())
    }

    /// Names of the rotating variables.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    /// The Vault server the values come from, for the configuration dump.
    pub fn source(&self) -> Option<String> {
        #[cfg(feature = "vault")]
        if let Some(v) = &self.vault {
            return Some(v.describe());
        }
        None
    }

    /// Starts re-reading the rotating secrets in the background (no task when none rotate).
    pub fn spawn_refresh(&self) -> Option<JoinHandle<()>> {
        #[cfg(feature = "vault")]
        if let Some(v) = &self.vault {
            return Some(tokio::spawn(v.clone().refresh(self.channels.clone())));
        }
        None
    }

    #[cfg(feature = "vault")]
    pub(crate) fn from_vault(
        vault: Arc<crate::vault::VaultSource>,
        values: BTreeMap<String, Secret>,
    ) -> Self {
        let channels = values
            .into_iter()
            .map(|(name, value)| (name, watch::Sender::new(value)))
            .collect();
        Self {
            channels: Arc::new(channels),
            vault: Some(vault),
        }
    }
}

/// Replaces every variable whose value is a `vault:<mount>/<path>#<field>` reference by the
/// secret it names. Returns the replaced values and their rotation channels.
pub async fn resolve_references(
    vars: &[(String, String)],
) -> Result<(BTreeMap<String, String>, LiveSecrets), ConfigError> {
    let refs: Vec<&(String, String)> = vars
        .iter()
        .filter(|(_, v)| v.starts_with("vault:"))
        .collect();
    if refs.is_empty() {
        return Ok((BTreeMap::new(), LiveSecrets::default()));
    }
    #[cfg(feature = "vault")]
    {
        crate::vault::resolve(vars, &refs).await
    }
    #[cfg(not(feature = "vault"))]
    {
        Err(ConfigError(format!(
            "{} refers to Vault, but this build has no Vault support (cargo feature `vault`)",
            refs[0].0
        )))
    }
}
