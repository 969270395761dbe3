//! HashiCorp Vault as a secret source (cargo feature `vault`).
//!
//! A variable whose value is `vault:<mount>/<path>#<field>` is replaced at start-up by field
//! `<field>` of the KV v2 secret at `<path>` under mount `<mount>`, read with
//! `GET {VAULT_ADDR}/v1/<mount>/data/<path>` and token auth (`VAULT_TOKEN` or
//! `VAULT_TOKEN_FILE`; `VAULT_CACERT` trusts a private CA). Every `VAULT_REFRESH_SECONDS`
//! (default 300) the values are read again and changes are published through
//! [`crate::rotation::LiveSecrets`]. Errors name the variable and the Vault path, never the
//! token or a value.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::watch;

use crate::config::ConfigError;
use crate::rotation::LiveSecrets;
use crate::secret::Secret;

/// Where one secret lives in Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub mount: String,
    pub path: String,
    pub field: String,
}

impl Reference {
    /// Parses `vault:<mount>/<path>#<field>`; `var` is named in the error.
    pub fn parse(var: &str, value: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError(format!(
                "invalid {var} '{value}': expected vault:<mount>/<path>#<field>, e.g. vault:secret/neurallog#api_key"
            ))
        };
        let rest = value.strip_prefix("vault:").ok_or_else(bad)?;
        let (location, field) = rest.split_once('#').ok_or_else(bad)?;
        let (mount, path) = location.split_once('/').ok_or_else(bad)?;
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !segment_ok(mount) || !path.split('/').all(segment_ok) || field.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            mount: mount.to_owned(),
            path: path.to_owned(),
            field: field.to_owned(),
        })
    }

    fn display(&self) -> String {
        format!("{}/{}#{}", self.mount, self.path, self.field)
    }
}

/// A Vault server and the references read from it.
pub struct VaultSource {
    addr: String,
    token: Secret,
    refresh: Duration,
    http: reqwest::Client,
    refs: BTreeMap<String, Reference>,
}

/// Default seconds between two reads of the Vault-backed secrets.
pub const DEFAULT_REFRESH_SECONDS: u64 = 300;

impl VaultSource {
    fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr = get("VAULT_ADDR")
            .ok_or_else(|| ConfigError("a vault: reference needs VAULT_ADDR".into()))?;
        let addr = addr.trim_end_matches('/').to_owned();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(ConfigError(format!(
                "invalid VAULT_ADDR '{addr}': expected http(s)://host:port"
            )));
        }
        let token = crate::config::secret("VAULT_TOKEN", get, None, None)?.ok_or_else(|| {
            ConfigError("a vault: reference needs VAULT_TOKEN or VAULT_TOKEN_FILE".into())
        })?;
        let refresh = match get("VAULT_REFRESH_SECONDS") {
            None => DEFAULT_REFRESH_SECONDS,
            Some(t) => match t.parse::<u64>() {
                Ok(n) if (1..=86_400).contains(&n) => n,
                _ => {
                    return Err(ConfigError(format!(
                        "invalid VAULT_REFRESH_SECONDS '{t}': expected an integer from 1 to 86400"
                    )));
                }
            },
        };
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = get("VAULT_CACERT") {
            let pem = std::fs::read(&ca)
                .map_err(|e| ConfigError(format!("VAULT_CACERT: cannot read '{ca}': {e}")))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError(format!("VAULT_CACERT: {e}")))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| ConfigError(format!("cannot set up the Vault client: {e}")))?;
        Ok(Self {
            addr,
            token,
            refresh: Duration::from_secs(refresh),
            http,
            refs: BTreeMap::new(),
        })
    }

    /// `VAULT_ADDR` and the refresh period, for the configuration dump.
    pub fn describe(&self) -> String {
        format!(
            "{} (refreshed every {} s)",
            self.addr,
            self.refresh.as_secs()
        )
    }

    /// Reads one field; the error names the variable and the reference.
    pub async fn read(&self, var: &str, r: &Reference) -> Result<Secret, String> {
        let url = format!("{}/v1/{}/data/{}", self.addr, r.mount, r.path);
        let at = format!("{} (for {var})", r.display());
        let resp = self
            .http
            .get(&url)
            .header("X-Vault-Token", self.token.expose())
            .send()
            .await
            .map_err(|e| format!("cannot reach Vault at {} reading {at}: {e}", self.addr))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                return Err(format!(
                    "Vault refused VAULT_TOKEN (HTTP {}) reading {at}: check the token and its policy",
                    resp.status().as_u16()
                ));
            }
            StatusCode::NOT_FOUND => return Err(format!("Vault has no secret at {at}")),
            s => return Err(format!("Vault answered HTTP {} reading {at}", s.as_u16())),
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("unreadable Vault answer reading {at}: {e}"))?;
        match body.pointer("/data/data").and_then(|d| d.get(&r.field)) {
            Some(serde_json::Value::String(s)) => Ok(Secret::new(s.clone())),
            Some(_) => Err(format!("Vault field {at} is not a string")),
            None => Err(format!("Vault secret {at} has no field '{}'", r.field)),
        }
    }

    async fn read_all(&self) -> BTreeMap<String, Result<Secret, String>> {
        let mut out = BTreeMap::new();
        for (var, r) in &self.refs {
            out.insert(var.clone(), self.read(var, r).await);
        }
        out
    }

    /// Re-reads every reference each period and publishes the ones that changed. A failed
    /// read keeps the current value and is logged (a Vault restart should not stop serving).
    pub async fn refresh(self: Arc<Self>, channels: Arc<BTreeMap<String, watch::Sender<Secret>>>) {
        let mut tick = tokio::time::interval(self.refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            // Read everything first, then publish, so that a certificate and its key that
            // rotate together are seen together.
            for (var, result) in self.read_all().await {
                let Some(tx) = channels.get(&var) else {
                    continue;
                };
                match result {
                    Ok(value) => {
                        let changed = tx.send_if_modified(|current| {
                            let changed = *current != value;
                            if changed {
                                *current = value;
                            }
                            changed
                        });
                        if changed {
                            tracing::info!("{var} rotated: new value read from Vault");
                        }
                    }
                    Err(e) => tracing::warn!("keeping the current {var}: {e}"),
                }
            }
        }
    }
}

/// Reads every reference once (any failure stops start-up) and sets up their rotation.
pub async fn resolve(
    vars: &[(String, String)],
    refs: &[&(String, String)],
) -> Result<(BTreeMap<String, String>, LiveSecrets), ConfigError> {
    let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut source = VaultSource::from_env(&get)?;
    for (var, value) in refs {
        source
            .refs
            .insert(var.clone(), Reference::parse(var, value)?);
    }
    let mut overlay = BTreeMap::new();
    let mut values = BTreeMap::new();
    for (var, result) in source.read_all().await {
        let value = result.map_err(ConfigError)?;
        overlay.insert(var.clone(), value.expose().to_owned());
        values.insert(var, value);
    }
    Ok((overlay, LiveSecrets::from_vault(Arc::new(source), values)))
}
