//! Server configuration (spec §2).
//!
//! Each setting is resolved in the order command-line flag > environment variable > config
//! file (TOML) > default. Every secret also accepts `NAME_FILE`, a path to a file holding the
//! value (the Kubernetes secret-volume convention). Unknown file keys and invalid values stop
//! start-up with a message naming the key, the value and what is allowed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use neurallog_core::rbac::{Permission, Role};
use neurallog_core::{TenantId, ingest::Limits};
use serde::Deserialize;

use neurallog_auth::TokenSettings;

use crate::rotation::LiveSecrets;
use crate::secret::Secret;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError(format!("invalid {key} '{value}': expected {allowed}"))
}

/// Production turns findings into a start-up error.
fn refuse_in_production(config: &ServerConfig, findings: Vec<String>) -> Result<(), ConfigError> {
    if config.mode == Mode::Production && !findings.is_empty() {
        return Err(ConfigError(format!(
            "refusing to start in production: {}",
            findings.join("; ")
        )));
    }
    Ok(())
}

/// Token settings holding secrets, which also accept `NAME_FILE`.
const TOKEN_SECRETS: [&str; 3] = ["JWT_SECRET", "JWT_PUBLIC_KEY", "OAUTH2_CLIENT_SECRET"];

/// Reads the token settings: each variable from the environment (secrets also from
/// `NAME_FILE`), else from the file's `[tokens]` table.
fn token_settings(
    env: &dyn Fn(&str) -> Option<String>,
    file: Option<&BTreeMap<String, String>>,
) -> Result<Option<TokenSettings>, ConfigError> {
    let empty = BTreeMap::new();
    let file = file.unwrap_or(&empty);
    if let Some(unknown) = file
        .keys()
        .find(|k| !token_vars().any(|v| v.eq_ignore_ascii_case(k)))
    {
        return Err(ConfigError(format!(
            "unknown config key 'tokens.{unknown}': expected one of {}",
            token_vars()
                .map(|v| v.to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut values = BTreeMap::new();
    for var in token_vars() {
        let from_file = file.get(&var.to_lowercase()).cloned();
        let value = if TOKEN_SECRETS.contains(&var) {
            secret(var, env, from_file, None)?.map(|s| s.expose().to_owned())
        } else {
            env(var).or(from_file)
        };
        if let Some(v) = value {
            values.insert(var, v);
        }
    }
    TokenSettings::from_env(&|name: &str| values.get(name).cloned())
        .map_err(|e| ConfigError(e.to_string()))
}

fn token_vars() -> impl Iterator<Item = &'static str> {
    neurallog_auth::settings::VARIABLES.iter().copied()
}

/// Default pause between retention purge cycles.
pub const DEFAULT_PURGE_INTERVAL_SECONDS: u64 = 300;
/// Default port of the `/metrics` listener (spec §2).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// Deployment mode: production turns insecure-setting warnings into start-up errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

/// Settings given as command-line flags (raw text, validated like every other source).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub port: Option<String>,
    pub bind: Option<String>,
    pub data_dir: Option<String>,
    pub log_level: Option<String>,
}

/// The config file: the same settings as the environment, in snake case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    port: Option<toml::Value>,
    bind: Option<String>,
    data_dir: Option<String>,
    log_level: Option<String>,
    env: Option<String>,
    tenant_id: Option<String>,
    api_key: Option<String>,
    api_key_file: Option<String>,
    redis_url: Option<String>,
    redis_url_file: Option<String>,
    redis_password: Option<String>,
    redis_password_file: Option<String>,
    redis_ca_cert: Option<String>,
    max_body_bytes: Option<toml::Value>,
    max_batch_events: Option<toml::Value>,
    max_event_bytes: Option<toml::Value>,
    master_key: Option<String>,
    master_key_file: Option<String>,
    master_key_previous: Option<String>,
    master_key_previous_file: Option<String>,
    retention_days: Option<toml::Value>,
    purge_interval_seconds: Option<toml::Value>,
    system_key: Option<String>,
    system_key_file: Option<String>,
    roles: Option<BTreeMap<String, FileRole>>,
    metrics_port: Option<toml::Value>,
    /// `[tokens]`: the JWT_* / OIDC_* / OAUTH2_* settings in snake case (`jwt_algorithms`).
    tokens: Option<BTreeMap<String, String>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_key_file: Option<String>,
    tls_client_ca: Option<String>,
    tls_proxy: Option<toml::Value>,
}

/// HTTPS settings (spec §6.1): each value is a path or inline PEM.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// `TLS_CERT`: the certificate chain, leaf first.
    pub cert: String,
    /// `TLS_KEY` or `TLS_KEY_FILE`: the private key.
    pub key: Secret,
    /// `TLS_CLIENT_CA`: when set, clients must present a certificate issued by this CA.
    pub client_ca: Option<String>,
}

/// `[roles.<name>]` in the config file: a custom role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRole {
    permissions: Vec<String>,
}

/// The resolved configuration of `neurallog serve`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub mode: Mode,
    /// Pins the server to one tenant (the operator runs one server per tenant).
    pub tenant: Option<TenantId>,
    /// Bootstrap admin key; generated on first start when absent.
    pub api_key: Option<Secret>,
    /// Selects the Redis backend.
    pub redis_url: Option<Secret>,
    pub redis_password: Option<Secret>,
    pub redis_ca_cert: Option<PathBuf>,
    pub limits: Limits,
    /// Encryption at rest: the master key wrapping every data key (a development server
    /// without one generates `master.key` in the data directory), and during a master key
    /// rotation the previous one.
    pub master_key: Option<Secret>,
    pub master_key_previous: Option<Secret>,
    /// `NEURALLOG_UNSAFE_DISABLE_ENCRYPTION=1`: stores events unencrypted, for measuring
    /// encryption's cost only; refused in production.
    pub unsafe_disable_encryption: bool,
    /// HTTPS; plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
    /// `NEURALLOG_TLS_PROXY`: a TLS-terminating proxy sits in front (production accepts
    /// plain HTTP then).
    pub tls_proxy: bool,
    /// Secrets that rotate while the server runs (those read from Vault).
    pub live: LiveSecrets,
    /// `NEURALLOG_RETENTION_DAYS`: retention of tenants that set none (`None`: keep).
    pub retention_days: Option<u64>,
    /// `NEURALLOG_PURGE_INTERVAL_SECONDS`: pause between purge cycles.
    pub purge_interval: std::time::Duration,
    /// Bootstrap system key (manages tenants); never generated.
    pub system_key: Option<Secret>,
    /// Custom roles of the config file: name → permissions.
    pub roles: BTreeMap<String, BTreeSet<Permission>>,
    /// Benchmark only (`NEURALLOG_BENCH_DISABLE_AUTH=1`, refused in production): no
    /// authentication and no audit, to measure what they cost.
    pub auth_disabled: bool,
    /// Port of the `/metrics` listener (same bind address as the API).
    pub metrics_port: u16,
    /// Whether `METRICS_PORT` was given. The default port may be taken by another local
    /// server in development; only an explicit port makes a busy port a start-up error.
    pub metrics_port_explicit: bool,
    /// Bearer-token verification (JWT, OIDC, introspection), when configured.
    pub tokens: Option<TokenSettings>,
}

impl ServerConfig {
    /// A configuration for tests and the benchmark: loopback, an OS-chosen port, `data_dir`.
    pub fn for_dir(data_dir: &Path) -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            data_dir: data_dir.to_path_buf(),
            log_level: "info".into(),
            mode: Mode::Development,
            tenant: None,
            api_key: None,
            redis_url: None,
            redis_password: None,
            redis_ca_cert: None,
            limits: Limits::default(),
            master_key: None,
            master_key_previous: None,
            unsafe_disable_encryption: false,
            tls: None,
            tls_proxy: false,
            live: LiveSecrets::default(),
            retention_days: None,
            purge_interval: std::time::Duration::from_secs(DEFAULT_PURGE_INTERVAL_SECONDS),
            system_key: None,
            roles: BTreeMap::new(),
            auth_disabled: false,
            metrics_port: 0,
            metrics_port_explicit: true,
            tokens: None,
        }
    }

    /// Resolves like [`ServerConfig::resolve`] from the variables `vars`, after replacing
    /// every `vault:` reference among them by the secret it names.
    pub async fn resolve_with_secrets(
        flags: &Flags,
        vars: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let (overlay, live) = crate::rotation::resolve_references(vars).await?;
        let env = |name: &str| {
            overlay
                .get(name)
                .cloned()
                .or_else(|| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        let mut config = Self::resolve(flags, &env)?;
        config.live = live;
        Ok(config)
    }

    /// Resolves the configuration from flags, the environment (through `env`) and the file,
    /// for serving: production refuses every insecure setting.
    pub fn resolve(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let config = Self::resolve_settings(flags, env)?;
        refuse_in_production(&config, config.insecure_settings())?;
        Ok(config)
    }

    /// Resolves the configuration for commands that open the store without serving
    /// (`backup`, `restore`): production refuses only what endangers the stored data (no
    /// master key, encryption disabled); API keys and TLS do not concern them.
    pub fn resolve_for_storage(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let config = Self::resolve_settings(flags, env)?;
        refuse_in_production(&config, config.storage_findings())?;
        Ok(config)
    }

    fn resolve_settings(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_path = flags
            .config
            .clone()
            .or_else(|| env("NEURALLOG_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(p) => read_file_config(p)?,
            None => FileConfig::default(),
        };
        let toml_text = |v: &Option<toml::Value>| {
            v.as_ref().map(|v| match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        let pick = |flag: Option<&String>, var: &str, file: Option<String>| {
            flag.cloned().or_else(|| env(var)).or(file)
        };

        let port_text = pick(flags.port.as_ref(), "PORT", toml_text(&file.port))
            .unwrap_or_else(|| "3030".into());
        let port = port_text
            .parse::<u16>()
            .map_err(|_| invalid("PORT", &port_text, "an integer from 0 to 65535"))?;
        let metrics_text = env("METRICS_PORT").or(toml_text(&file.metrics_port));
        let metrics_port_explicit = metrics_text.is_some();
        let metrics_text = metrics_text.unwrap_or_else(|| DEFAULT_METRICS_PORT.to_string());
        let metrics_port = metrics_text
            .parse::<u16>()
            .map_err(|_| invalid("METRICS_PORT", &metrics_text, "an integer from 0 to 65535"))?;
        if metrics_port != 0 && metrics_port == port {
            return Err(invalid(
                "METRICS_PORT",
                &metrics_text,
                "a port other than PORT (metrics have their own listener)",
            ));
        }
        let bind_text = pick(flags.bind.as_ref(), "NEURALLOG_BIND", file.bind.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let bind = bind_text.parse::<IpAddr>().map_err(|_| {
            invalid(
                "NEURALLOG_BIND",
                &bind_text,
                "an IP address such as 127.0.0.1 or 0.0.0.0",
            )
        })?;
        let data_dir = PathBuf::from(
            pick(
                flags.data_dir.as_ref(),
                "NEURALLOG_DATA_DIR",
                file.data_dir.clone(),
            )
            .unwrap_or_else(|| "./data".into()),
        );
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("NEURALLOG_DATA_DIR", "", "a directory path"));
        }
        let log_level = pick(
            flags.log_level.as_ref(),
            "LOG_LEVEL",
            file.log_level.clone(),
        )
        .unwrap_or_else(|| "info".into());
        let mode_text = env("NEURALLOG_ENV")
            .or_else(|| env("NODE_ENV"))
            .or(file.env.clone())
            .unwrap_or_else(|| "development".into());
        let mode = match mode_text.as_str() {
            "development" | "dev" | "test" => Mode::Development,
            "production" | "prod" => Mode::Production,
            _ => {
                return Err(invalid(
                    "NEURALLOG_ENV",
                    &mode_text,
                    "development or production",
                ));
            }
        };
        let tenant = match env("TENANT_ID").or(file.tenant_id.clone()) {
            Some(t) => Some(
                TenantId::new(t.clone()).map_err(|e| invalid("TENANT_ID", &t, &e.to_string()))?,
            ),
            None => None,
        };
        let api_key = secret(
            "API_KEY",
            env,
            file.api_key.clone(),
            file.api_key_file.clone(),
        )?;
        if api_key
            .as_ref()
            .is_some_and(|k| k.expose().trim().is_empty())
        {
            return Err(ConfigError("API_KEY is set but empty".into()));
        }
        let redis_url = secret(
            "REDIS_URL",
            env,
            file.redis_url.clone(),
            file.redis_url_file.clone(),
        )?;
        if let Some(u) = &redis_url {
            let scheme_ok =
                u.expose().starts_with("redis://") || u.expose().starts_with("rediss://");
            if !scheme_ok {
                // NB: the URL may hold a password, so it is not echoed.
                return Err(ConfigError(
                    "invalid REDIS_URL: expected redis://[user:pass@]host:port[/db] or rediss://…"
                        .into(),
                ));
            }
        }
        let redis_password = secret(
            "REDIS_PASSWORD",
            env,
            file.redis_password.clone(),
            file.redis_password_file.clone(),
        )?;
        let redis_ca_cert = env("REDIS_CA_CERT")
            .or(file.redis_ca_cert.clone())
            .map(PathBuf::from);

        let (tls, tls_proxy) = tls_settings(env, &file)?;

        let defaults = Limits::default();
        let size = |var: &str,
                    file: Option<String>,
                    default: usize,
                    max: usize|
         -> Result<usize, ConfigError> {
            match env(var).or(file) {
                None => Ok(default),
                Some(t) => match t.parse::<usize>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(invalid(var, &t, &format!("an integer from 1 to {max}"))),
                },
            }
        };
        let limits = Limits {
            max_body_bytes: size(
                "NEURALLOG_MAX_BODY_BYTES",
                toml_text(&file.max_body_bytes),
                defaults.max_body_bytes,
                1 << 30,
            )?,
            max_batch_events: size(
                "NEURALLOG_MAX_BATCH_EVENTS",
                toml_text(&file.max_batch_events),
                defaults.max_batch_events,
                1_000_000,
            )?,
            max_event_bytes: size(
                "NEURALLOG_MAX_EVENT_BYTES",
                toml_text(&file.max_event_bytes),
                defaults.max_event_bytes,
                64 << 20,
            )?,
            ..defaults
        };

        let master_key = master_key_setting(
            "NEURALLOG_MASTER_KEY",
            env,
            file.master_key.clone(),
            file.master_key_file.clone(),
        )?;
        let master_key_previous = master_key_setting(
            "NEURALLOG_MASTER_KEY_PREVIOUS",
            env,
            file.master_key_previous.clone(),
            file.master_key_previous_file.clone(),
        )?;
        let unsafe_disable_encryption = match env("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION").as_deref()
        {
            None | Some("" | "0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(invalid(
                    "NEURALLOG_UNSAFE_DISABLE_ENCRYPTION",
                    other,
                    "1 or 0",
                ));
            }
        };
        let retention_days =
            match env("NEURALLOG_RETENTION_DAYS").or(toml_text(&file.retention_days)) {
                None => None,
                Some(t) if t.trim().is_empty() => None,
                Some(t) => match t.trim().parse::<u64>() {
                    Ok(n) if (1..=neurallog_core::retention::MAX_DAYS).contains(&n) => Some(n),
                    _ => {
                        return Err(invalid(
                            "NEURALLOG_RETENTION_DAYS",
                            &t,
                            "an integer from 1 to 36500",
                        ));
                    }
                },
            };
        let purge_interval = std::time::Duration::from_secs(size(
            "NEURALLOG_PURGE_INTERVAL_SECONDS",
            toml_text(&file.purge_interval_seconds),
            DEFAULT_PURGE_INTERVAL_SECONDS as usize,
            86_400,
        )? as u64);
        let system_key = secret(
            "NEURALLOG_SYSTEM_KEY",
            env,
            file.system_key.clone(),
            file.system_key_file.clone(),
        )?;
        if system_key
            .as_ref()
            .is_some_and(|k| k.expose().trim().is_empty())
        {
            return Err(ConfigError("NEURALLOG_SYSTEM_KEY is set but empty".into()));
        }
        let roles = custom_roles(file.roles.unwrap_or_default())?;
        let auth_disabled = match env("NEURALLOG_BENCH_DISABLE_AUTH").as_deref() {
            None | Some("" | "0") => false,
            Some("1") => true,
            Some(v) => return Err(invalid("NEURALLOG_BENCH_DISABLE_AUTH", v, "1 or 0")),
        };

        let tokens = token_settings(env, file.tokens.as_ref())?;
        let config = Self {
            master_key,
            master_key_previous,
            unsafe_disable_encryption,
            bind,
            port,
            data_dir,
            log_level,
            mode,
            tenant,
            api_key,
            redis_url,
            redis_password,
            redis_ca_cert,
            limits,
            retention_days,
            purge_interval,
            tls,
            tls_proxy,
            live: LiveSecrets::default(),
            system_key,
            roles,
            auth_disabled,
            metrics_port,
            metrics_port_explicit,
            tokens,
        };
        Ok(config)
    }

    /// The insecure settings that concern the stored data itself.
    fn storage_findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.master_key.is_none() {
            out.push("NEURALLOG_MASTER_KEY is not set".to_owned());
        }
        if self.unsafe_disable_encryption {
            out.push("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION stores events unencrypted".to_owned());
        }
        out
    }

    /// Settings that are acceptable for development but not for production.
    pub fn insecure_settings(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.api_key {
            None => out.push("API_KEY is not set (a key is generated on first start)".to_owned()),
            Some(k) if k.expose().len() < 32 => {
                out.push("API_KEY is shorter than 32 characters".to_owned())
            }
            Some(_) => {}
        }
        if self.master_key.is_none() {
            out.push(
                "NEURALLOG_MASTER_KEY is not set (a key file is generated in the data directory)"
                    .to_owned(),
            );
        }
        if self.unsafe_disable_encryption {
            out.push("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION stores events unencrypted".to_owned());
        }
        // On a development machine plain HTTP on loopback is fine; anywhere else it is not.
        let exposed = self.mode == Mode::Production || !self.bind.is_loopback();
        if self.tls.is_none() && !self.tls_proxy && exposed {
            out.push(
                "TLS is off (set TLS_CERT and TLS_KEY, or NEURALLOG_TLS_PROXY=true when a \
                 TLS-terminating proxy is in front)"
                    .to_owned(),
            );
        }
        if self
            .system_key
            .as_ref()
            .is_some_and(|k| k.expose().len() < 32)
        {
            out.push("NEURALLOG_SYSTEM_KEY is shorter than 32 characters".to_owned());
        }
        if self.auth_disabled {
            out.push("NEURALLOG_BENCH_DISABLE_AUTH turns authentication off".to_owned());
        }
        if let Some(t) = &self.tokens {
            for (var, url) in t.insecure_urls() {
                out.push(format!(
                    "{var} '{url}' is plain HTTP to a host that is not loopback"
                ));
            }
        }
        out
    }

    /// The settings as `NAME = value` lines with secrets redacted (for `config show`).
    pub fn redacted(&self) -> BTreeMap<&'static str, String> {
        let opt = |s: &Option<Secret>| {
            s.as_ref()
                .map_or("(unset)".to_owned(), |_| "[redacted]".to_owned())
        };
        let tokens = self.tokens.as_ref().map_or("(unset)".to_owned(), |t| {
            let algs: Vec<String> = t.algorithms.iter().map(|a| format!("{a:?}")).collect();
            let mut parts = vec![format!("algorithms={}", algs.join(","))];
            if let Some(i) = &t.oidc_issuer {
                parts.push(format!("oidc_issuer={i}"));
            }
            if let Some(u) = &t.introspection_url {
                parts.push(format!("introspection={u}"));
            }
            parts.join(" ")
        });
        let tls = self.tls.as_ref();
        let pem_or_path = |v: Option<&String>| match v {
            None => "(unset)".to_owned(),
            Some(v) if v.trim_start().starts_with("-----BEGIN") => "(inline PEM)".to_owned(),
            Some(v) => v.clone(),
        };
        let mut out = BTreeMap::from([
            ("TOKENS (JWT_*, OIDC_*, OAUTH2_*)", tokens),
            ("TLS_CERT", pem_or_path(tls.map(|t| &t.cert))),
            ("TLS_KEY", opt(&tls.map(|t| t.key.clone()))),
            (
                "TLS_CLIENT_CA",
                pem_or_path(tls.and_then(|t| t.client_ca.as_ref())),
            ),
            ("NEURALLOG_TLS_PROXY", self.tls_proxy.to_string()),
            ("PORT", self.port.to_string()),
            ("METRICS_PORT", self.metrics_port.to_string()),
            ("NEURALLOG_BIND", self.bind.to_string()),
            ("NEURALLOG_DATA_DIR", self.data_dir.display().to_string()),
            ("LOG_LEVEL", self.log_level.clone()),
            ("NEURALLOG_ENV", format!("{:?}", self.mode).to_lowercase()),
            (
                "TENANT_ID",
                self.tenant
                    .as_ref()
                    .map_or("(unset)".into(), |t| t.to_string()),
            ),
            ("API_KEY", opt(&self.api_key)),
            ("NEURALLOG_SYSTEM_KEY", opt(&self.system_key)),
            ("REDIS_URL", opt(&self.redis_url)),
            ("REDIS_PASSWORD", opt(&self.redis_password)),
            ("NEURALLOG_MASTER_KEY", opt(&self.master_key)),
            (
                "NEURALLOG_MASTER_KEY_PREVIOUS",
                opt(&self.master_key_previous),
            ),
            (
                "REDIS_CA_CERT",
                self.redis_ca_cert
                    .as_ref()
                    .map_or("(unset)".into(), |p| p.display().to_string()),
            ),
            (
                "NEURALLOG_MAX_BODY_BYTES",
                self.limits.max_body_bytes.to_string(),
            ),
            (
                "NEURALLOG_MAX_BATCH_EVENTS",
                self.limits.max_batch_events.to_string(),
            ),
            (
                "NEURALLOG_MAX_EVENT_BYTES",
                self.limits.max_event_bytes.to_string(),
            ),
            (
                "NEURALLOG_RETENTION_DAYS",
                self.retention_days
                    .map_or("(unset)".into(), |d| d.to_string()),
            ),
            (
                "NEURALLOG_PURGE_INTERVAL_SECONDS",
                self.purge_interval.as_secs().to_string(),
            ),
        ]);
        if let Some(vault) = self.live.source() {
            out.insert("VAULT_ADDR", vault);
            out.insert("VAULT_TOKEN", "[redacted]".into());
            let names: Vec<&str> = self.live.names().collect();
            out.insert("VAULT_SECRETS", names.join(", "));
        }
        out
    }
}

/// Validates the `[roles.<name>]` tables: lowercase names that are not built-in, known
/// permissions.
fn custom_roles(
    file: BTreeMap<String, FileRole>,
) -> Result<BTreeMap<String, BTreeSet<Permission>>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, role) in file {
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok || Role::built_in(&name).is_some() {
            return Err(invalid(
                "roles",
                &name,
                "a role name of 1-64 lowercase letters, digits, '-' or '_' that is not built-in",
            ));
        }
        let mut perms = BTreeSet::new();
        for p in &role.permissions {
            perms.insert(p.parse::<Permission>().map_err(|_| {
                invalid(
                    &format!("roles.{name}.permissions"),
                    p,
                    "logs:read, logs:write, logs:delete, keys:manage, audit:read, retention:manage, tenants:manage or lockdown:manage",
                )
            })?);
        }
        out.insert(name, perms);
    }
    Ok(out)
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "config file {}: {}",
            path.display(),
            e.message().trim()
        ))
    })
}

/// `TLS_CERT`, `TLS_KEY` (or `TLS_KEY_FILE`, a path: the file is re-read when it changes),
/// `TLS_CLIENT_CA` and `NEURALLOG_TLS_PROXY`.
fn tls_settings(
    env: &dyn Fn(&str) -> Option<String>,
    file: &FileConfig,
) -> Result<(Option<TlsSettings>, bool), ConfigError> {
    let cert = env("TLS_CERT").or(file.tls_cert.clone());
    let key = match (env("TLS_KEY"), env("TLS_KEY_FILE")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError("set TLS_KEY or TLS_KEY_FILE, not both".into()));
        }
        (v, p) => v
            .or(p)
            .or(file.tls_key.clone())
            .or(file.tls_key_file.clone()),
    };
    let client_ca = env("TLS_CLIENT_CA").or(file.tls_client_ca.clone());
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert,
            key: Secret::new(key),
            client_ca,
        }),
        (None, None) if client_ca.is_some() => {
            return Err(ConfigError(
                "TLS_CLIENT_CA needs TLS_CERT and TLS_KEY (client certificates are checked \
                 during the TLS handshake)"
                    .into(),
            ));
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError(
                "TLS_CERT is set but TLS_KEY is not: set both, or neither".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError(
                "TLS_KEY is set but TLS_CERT is not: set both, or neither".into(),
            ));
        }
    };
    let proxy_text = env("NEURALLOG_TLS_PROXY").or(file.tls_proxy.as_ref().map(|v| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }));
    let tls_proxy = match proxy_text.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => return Err(invalid("NEURALLOG_TLS_PROXY", other, "true or false")),
    };
    Ok((tls, tls_proxy))
}

/// Resolves a secret from `NAME`, `NAME_FILE`, or the file's `name` / `name_file`.
pub(crate) fn secret(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    file_value: Option<String>,
    file_path: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (env(name), env(&file_var)) {
        (Some(_), Some(_)) => Err(ConfigError(format!("set {name} or {file_var}, not both"))),
        (Some(v), None) => Ok(Some(Secret::new(v))),
        (None, Some(p)) => read_secret_file(&file_var, &p).map(Some),
        (None, None) => match (file_value, file_path) {
            (Some(v), _) => Ok(Some(Secret::new(v))),
            (None, Some(p)) => read_secret_file(&file_var, &p).map(Some),
            (None, None) => Ok(None),
        },
    }
}

/// A master key secret, checked to be 32 bytes (hex or base64) without echoing it.
fn master_key_setting(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    file_value: Option<String>,
    file_path: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let key = secret(name, env, file_value, file_path)?;
    if let Some(k) = &key
        && let Err(e) = neurallog_storage::crypt::MasterKey::parse(k.expose())
    {
        return Err(ConfigError(format!("invalid {name}: {e}")));
    }
    Ok(key)
}

fn read_secret_file(var: &str, path: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{var}: cannot read '{path}': {e}")))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)], flags: Flags) -> Result<ServerConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServerConfig::resolve(&flags, &|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = resolve(&[], Flags::default()).unwrap();
        assert_eq!(
            (c.port, c.bind.to_string(), c.data_dir),
            (3030, "127.0.0.1".into(), PathBuf::from("./data"))
        );
        assert_eq!(c.mode, Mode::Development);
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "port = 1111\nbind = \"0.0.0.0\"\ndata_dir = \"/f\"\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(file.clone()),
            port: Some("3333".into()),
            ..Flags::default()
        };
        let c = resolve(&[("PORT", "2222"), ("NEURALLOG_DATA_DIR", "/e")], flags).unwrap();
        assert_eq!(c.port, 3333);
        assert_eq!(c.data_dir, PathBuf::from("/e"));
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        let c = resolve(
            &[("PORT", "2222")],
            Flags {
                config: Some(file.clone()),
                ..Flags::default()
            },
        )
        .unwrap();
        assert_eq!(c.port, 2222);
        let c = resolve(
            &[],
            Flags {
                config: Some(file),
                ..Flags::default()
            },
        )
        .unwrap();
        assert_eq!(c.port, 1111);
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let e = resolve(&[("PORT", "70000")], Flags::default()).unwrap_err();
        assert_eq!(
            e.0,
            "invalid PORT '70000': expected an integer from 0 to 65535"
        );
        let e = resolve(&[("NEURALLOG_BIND", "localhost:1")], Flags::default()).unwrap_err();
        assert!(
            e.0.contains("NEURALLOG_BIND") && e.0.contains("localhost:1"),
            "{}",
            e.0
        );
        let e = resolve(&[("TENANT_ID", "Bad_Tenant")], Flags::default()).unwrap_err();
        assert!(e.0.contains("TENANT_ID 'Bad_Tenant'"), "{}", e.0);
        let e = resolve(&[("NEURALLOG_MAX_BODY_BYTES", "0")], Flags::default()).unwrap_err();
        assert!(e.0.contains("NEURALLOG_MAX_BODY_BYTES '0'"), "{}", e.0);
        let e = resolve(&[("NEURALLOG_ENV", "staging")], Flags::default()).unwrap_err();
        assert!(e.0.contains("staging"), "{}", e.0);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "prot = 1\n").unwrap();
        let e = resolve(
            &[],
            Flags {
                config: Some(file),
                ..Flags::default()
            },
        )
        .unwrap_err();
        assert!(e.0.contains("unknown field `prot`"), "{}", e.0);
    }

    #[test]
    fn secrets_from_files_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "s3cret-from-file-0123456789abcdefgh\n").unwrap();
        let c = resolve(
            &[("API_KEY_FILE", key_file.to_str().unwrap())],
            Flags::default(),
        )
        .unwrap();
        assert_eq!(
            c.api_key.as_ref().unwrap().expose(),
            "s3cret-from-file-0123456789abcdefgh"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{:?}", c.redacted()).contains("s3cret"));
        let e = resolve(
            &[("API_KEY", "a"), ("API_KEY_FILE", "/x")],
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "set API_KEY or API_KEY_FILE, not both");
        let e = resolve(&[("API_KEY_FILE", "/nonexistent/key")], Flags::default()).unwrap_err();
        assert!(
            e.0.starts_with("API_KEY_FILE: cannot read '/nonexistent/key'"),
            "{}",
            e.0
        );
        let e = resolve(&[("REDIS_URL", "http://user:pw@h")], Flags::default()).unwrap_err();
        assert!(!e.0.contains("pw"), "the password is not echoed: {}", e.0);
    }

    #[test]
    fn custom_roles_and_system_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[roles.shipper]\npermissions = [\"logs:write\", \"logs:read\"]\n",
        )
        .unwrap();
        let flags = || Flags {
            config: Some(file.clone()),
            ..Flags::default()
        };
        let c = resolve(&[("NEURALLOG_SYSTEM_KEY", "sys")], flags()).unwrap();
        assert_eq!(c.roles["shipper"].len(), 2);
        assert_eq!(c.system_key.unwrap().expose(), "sys");
        for (text, named) in [
            ("[roles.admin]\npermissions = []\n", "roles 'admin'"),
            (
                "[roles.x]\npermissions = [\"logs:fly\"]\n",
                "roles.x.permissions 'logs:fly'",
            ),
            ("[roles.x]\nperms = []\n", "unknown field `perms`"),
            ("[roles.\"A B\"]\npermissions = []\n", "roles 'A B'"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = resolve(&[], flags()).unwrap_err();
            assert!(e.0.contains(named), "{text}: {}", e.0);
        }
        let e = resolve(
            &[
                ("NODE_ENV", "production"),
                ("API_KEY", &"k".repeat(40)),
                ("NEURALLOG_BENCH_DISABLE_AUTH", "1"),
            ],
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("NEURALLOG_BENCH_DISABLE_AUTH"), "{}", e.0);
    }

    #[test]
    fn storage_commands_in_production_need_only_the_master_key() {
        let base = [("NODE_ENV", "production"), ("REDIS_URL", "redis://r:6379")];
        let e = ServerConfig::resolve_for_storage(&Flags::default(), &|n| {
            base.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_err();
        assert!(e.0.contains("NEURALLOG_MASTER_KEY"), "{}", e.0);
        let master = "ab".repeat(32);
        let mut with_key = base.to_vec();
        with_key.push(("NEURALLOG_MASTER_KEY", &master));
        let env = |n: &str| {
            with_key
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        };
        assert!(ServerConfig::resolve_for_storage(&Flags::default(), &env).is_ok());
        // Serving with the same settings is refused: no API key, no TLS.
        assert!(ServerConfig::resolve(&Flags::default(), &env).is_err());
    }

    #[test]
    fn production_refuses_weak_settings() {
        let e = resolve(&[("NODE_ENV", "production")], Flags::default()).unwrap_err();
        assert!(e.0.contains("API_KEY is not set"), "{}", e.0);
        let e = resolve(
            &[("NODE_ENV", "production"), ("API_KEY", "short")],
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("shorter than 32"), "{}", e.0);
        let strong = "k".repeat(40);
        let master = "ab".repeat(32);
        let e = resolve(
            &[("NODE_ENV", "production"), ("API_KEY", &strong)],
            Flags::default(),
        )
        .unwrap_err();
        assert!(e.0.contains("NEURALLOG_MASTER_KEY is not set"), "{}", e.0);
        assert!(e.0.contains("TLS is off"), "{}", e.0);
        let prod = [
            ("NODE_ENV", "production"),
            ("API_KEY", strong.as_str()),
            ("NEURALLOG_MASTER_KEY", master.as_str()),
            ("NEURALLOG_TLS_PROXY", "true"),
        ];
        assert!(resolve(&prod, Flags::default()).is_ok());
        let mut unsafe_prod = prod.to_vec();
        unsafe_prod.push(("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION", "1"));
        let e = resolve(&unsafe_prod, Flags::default()).unwrap_err();
        assert!(e.0.contains("unencrypted"), "{}", e.0);
        for tls in [
            &[("NEURALLOG_TLS_PROXY", "true")][..],
            &[("TLS_CERT", "/c.pem"), ("TLS_KEY", "/k.pem")][..],
        ] {
            let mut vars = vec![
                ("NODE_ENV", "production"),
                ("API_KEY", strong.as_str()),
                ("NEURALLOG_MASTER_KEY", master.as_str()),
            ];
            vars.extend_from_slice(tls);
            assert!(resolve(&vars, Flags::default()).is_ok(), "{tls:?}");
        }
        // Development warns about plain HTTP only when it is reachable from elsewhere.
        let local = [
            ("API_KEY", strong.as_str()),
            ("NEURALLOG_MASTER_KEY", master.as_str()),
        ];
        let dev = resolve(&local, Flags::default()).unwrap();
        assert!(dev.insecure_settings().is_empty());
        let mut exposed = local.to_vec();
        exposed.push(("NEURALLOG_BIND", "0.0.0.0"));
        let dev = resolve(&exposed, Flags::default()).unwrap();
        assert!(dev.insecure_settings()[0].contains("TLS is off"));
    }

    #[test]
    fn master_keys_are_checked_and_never_echoed() {
        let hex = "0f".repeat(32);
        let c = resolve(&[("NEURALLOG_MASTER_KEY", &hex)], Flags::default()).unwrap();
        assert_eq!(c.master_key.as_ref().unwrap().expose(), hex);
        assert!(!format!("{c:?}{:?}", c.redacted()).contains(&hex));
        let bad = "not-a-key-but-a-secret-anyway";
        let e = resolve(&[("NEURALLOG_MASTER_KEY_PREVIOUS", bad)], Flags::default()).unwrap_err();
        assert!(
            e.0.starts_with("invalid NEURALLOG_MASTER_KEY_PREVIOUS"),
            "{}",
            e.0
        );
        assert!(!e.0.contains(bad));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("mk");
        std::fs::write(&f, format!("{hex}\n")).unwrap();
        let c = resolve(
            &[("NEURALLOG_MASTER_KEY_FILE", f.to_str().unwrap())],
            Flags::default(),
        )
        .unwrap();
        assert!(c.master_key.is_some());
        let e = resolve(
            &[("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION", "yes")],
            Flags::default(),
        )
        .unwrap_err();
        assert!(
            e.0.contains("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION"),
            "{}",
            e.0
        );
    }
    #[test]
    fn tls_settings_from_env_and_file() {
        let c = resolve(
            &[("TLS_CERT", "/c.pem"), ("TLS_KEY_FILE", "/k.pem")],
            Flags::default(),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!((tls.cert.as_str(), tls.key.expose()), ("/c.pem", "/k.pem"));
        let e = resolve(&[("TLS_CERT", "/c.pem")], Flags::default()).unwrap_err();
        assert!(
            e.0.starts_with("TLS_CERT is set but TLS_KEY is not"),
            "{}",
            e.0
        );
        let e = resolve(&[("TLS_KEY", "/k.pem")], Flags::default()).unwrap_err();
        assert!(
            e.0.starts_with("TLS_KEY is set but TLS_CERT is not"),
            "{}",
            e.0
        );
        let e = resolve(&[("TLS_CLIENT_CA", "/ca.pem")], Flags::default()).unwrap_err();
        assert!(e.0.starts_with("TLS_CLIENT_CA needs"), "{}", e.0);
        let e = resolve(
            &[
                ("TLS_CERT", "/c"),
                ("TLS_KEY", "/k"),
                ("TLS_KEY_FILE", "/k"),
            ],
            Flags::default(),
        )
        .unwrap_err();
        assert_eq!(e.0, "set TLS_KEY or TLS_KEY_FILE, not both");
        let e = resolve(&[("NEURALLOG_TLS_PROXY", "yes")], Flags::default()).unwrap_err();
        assert!(e.0.contains("NEURALLOG_TLS_PROXY 'yes'"), "{}", e.0);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "tls_cert = \"/f/c.pem\"\ntls_key_file = \"/f/k.pem\"\ntls_client_ca = \"/f/ca.pem\"\ntls_proxy = true\n",
        )
        .unwrap();
        let c = resolve(
            &[],
            Flags {
                config: Some(file),
                ..Flags::default()
            },
        )
        .unwrap();
        let tls = c.tls.as_ref().unwrap();
        assert_eq!(tls.client_ca.as_deref(), Some("/f/ca.pem"));
        assert!(c.tls_proxy);
        assert_eq!(c.redacted()["TLS_CERT"], "/f/c.pem");
        assert_eq!(c.redacted()["TLS_KEY"], "[redacted]");
    }

    #[test]
    fn no_secret_value_appears_in_the_dump() {
        let secrets = [
            ("API_KEY", "sekrit-api-key-0123456789-0123456789"),
            ("REDIS_URL", "redis://user:sekrit-redis-url-pw@h:6379"),
            ("REDIS_PASSWORD", "sekrit-redis-password"),
            ("TLS_CERT", "/etc/tls/c.pem"),
            (
                "TLS_KEY",
                "-----BEGIN PRIVATE KEY-----\nsekrit-key-body\n-----END PRIVATE KEY-----\n",
            ),
        ];
        let c = resolve(&secrets, Flags::default()).unwrap();
        let dump = format!("{:?} {c:?}", c.redacted());
        assert!(!dump.contains("sekrit"), "{dump}");
        assert_eq!(c.redacted()["TLS_KEY"], "[redacted]");
    }
}
