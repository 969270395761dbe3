//! Starting and stopping the server.
//!
//! Shutdown (SIGTERM, SIGINT, or the future a caller passes) stops accepting connections,
//! lets in-flight requests finish, then flushes storage before returning, so the process can
//! exit 0 with nothing lost.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use neurallog_core::TenantId;
use neurallog_storage::crypt::{Encryption, Keyring, MasterKey};
use neurallog_storage::embedded::EmbeddedOptions;
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::{EmbeddedStorage, Storage};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{AppState, app};
use crate::audit::AuditSink;
use crate::auth::tokens::BearerTokens;
use crate::auth::{Authenticator, BootstrapAuth, KeyHasher, KeyStore, RoleBook};
use crate::config::{Mode, ServerConfig};
use crate::metrics::{self, Metrics};
use crate::secret::Secret;
use crate::tenants::Tenants;

/// The dev-mode master key file in the data directory.
const MASTER_KEY_FILE: &str = "master.key";

/// Encryption at rest as configured: the master key (a development server without one keeps
/// a generated key in `master.key`, mode 0600, and warns) and the previous key during a
/// rotation; or, for benchmarks only, none.
fn encryption(config: &ServerConfig) -> anyhow::Result<Encryption> {
    if config.unsafe_disable_encryption {
        tracing::warn!(
            "NEURALLOG_UNSAFE_DISABLE_ENCRYPTION=1: events are stored UNENCRYPTED; use this \
             only to measure the cost of encryption"
        );
        return Ok(Encryption::Off);
    }
    let parse = |name: &str, s: &Secret| {
        MasterKey::parse(s.expose()).map_err(|e| anyhow::anyhow!("invalid {name}: {e}"))
    };
    let master = match &config.master_key {
        Some(k) => parse("NEURALLOG_MASTER_KEY", k)?,
        None => dev_master_key(&config.data_dir)?,
    };
    let previous = config
        .master_key_previous
        .as_ref()
        .map(|k| parse("NEURALLOG_MASTER_KEY_PREVIOUS", k))
        .transpose()?;
    Ok(Encryption::On(Arc::new(Keyring::new(master, previous))))
}

/// Loads `master.key` from the data directory, creating it (0600) on first start.
fn dev_master_key(dir: &std::path::Path) -> anyhow::Result<MasterKey> {
    let path = dir.join(MASTER_KEY_FILE);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        tracing::warn!(path = %path.display(), "NEURALLOG_MASTER_KEY is unset: using the development key file");
        return MasterKey::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid master key file {}: {e}", path.display()));
    }
    let (key, text) = MasterKey::generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{}\n", text.as_str()).as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "NEURALLOG_MASTER_KEY is unset: generated a development master key file; \
         set NEURALLOG_MASTER_KEY (kept apart from the data) before production"
    );
    Ok(key)
}

/// Opens the configured storage backend (Redis when `REDIS_URL` is set, else the embedded
/// store in the data directory) with encryption at rest, and checks that the master key
/// opens the stored data keys, re-wrapping those of the previous master key.
pub async fn open_storage(config: &ServerConfig) -> anyhow::Result<Arc<dyn Storage>> {
    Ok(open_encrypted(config).await?.0)
}

/// [`open_storage`], also returning the key ring (none when encryption is disabled).
async fn open_encrypted(
    config: &ServerConfig,
) -> anyhow::Result<(Arc<dyn Storage>, Option<Arc<Keyring>>)> {
    let encryption = encryption(config)?;
    let store = open_backend(config, encryption.clone()).await?;
    if let Some(ring) = encryption.keyring() {
        let report = ring
            .check_and_rewrap(&*store)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        tracing::info!(
            master_key_id = %ring.master_id(),
            tenants = report.tenants,
            data_keys = report.keys,
            rewrapped = report.rewrapped,
            "encryption at rest: data keys checked"
        );
    }
    Ok((store, encryption.keyring().cloned()))
}

async fn open_backend(
    config: &ServerConfig,
    encryption: Encryption,
) -> anyhow::Result<Arc<dyn Storage>> {
    if let Some(url) = &config.redis_url {
        let store = open_redis(url, config, encryption).await?;
        tracing::info!(redis = store.target(), "storage: redis");
        return Ok(Arc::new(store));
    }
    let dir = config.data_dir.clone();
    let options = EmbeddedOptions { encryption };
    let store = tokio::task::spawn_blocking(move || EmbeddedStorage::open_with(&dir, options))
        .await
        .context("storage task failed")?
        .with_context(|| {
            format!(
                "cannot open the data directory {}",
                config.data_dir.display()
            )
        })?;
    Ok(Arc::new(store))
}

/// Connects to Redis. Every failure (unreachable, credentials, TLS, permission) is one line
/// naming the server and what went wrong, never a secret.
async fn open_redis(
    url: &Secret,
    config: &ServerConfig,
    encryption: Encryption,
) -> anyhow::Result<RedisStorage> {
    let mut opts = RedisOptions::new(url.expose());
    opts.encryption = encryption;
    opts.password = config
        .redis_password
        .as_ref()
        .map(|p| p.expose().to_owned());
    if let Some(ca) = &config.redis_ca_cert {
        // Like TLS_CERT, REDIS_CA_CERT may hold the PEM itself instead of a path.
        let text = ca.to_string_lossy();
        opts.ca_cert_pem = Some(if text.trim_start().starts_with("-----BEGIN") {
            text.as_bytes().to_vec()
        } else {
            std::fs::read(ca)
                .with_context(|| format!("cannot read REDIS_CA_CERT {}", ca.display()))?
        });
    }
    // NB: the storage error's message is already one complete line; its kind is not useful
    // to someone reading a start-up failure.
    RedisStorage::connect(opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot use redis: {}", e.message))
}

/// Builds the state: storage, the credentials (the bootstrap key is generated and printed
/// once if unset), the tenant registry and the audit writer.
async fn state(
    config: &ServerConfig,
    storage: Arc<dyn Storage>,
    keyring: Option<Arc<Keyring>>,
) -> anyhow::Result<AppState> {
    let tenant = config
        .tenant
        .clone()
        .unwrap_or_else(TenantId::default_tenant);
    let bootstrap = match &config.api_key {
        Some(key) => BootstrapAuth::from_key(key, tenant.clone()),
        None => {
            let (auth, generated) =
                BootstrapAuth::load_or_generate(&config.data_dir, tenant.clone()).with_context(
                    || {
                        format!(
                            "cannot keep the bootstrap key hash in {}",
                            config.data_dir.display()
                        )
                    },
                )?;
            if let Some(key) = generated {
                // Shown once: only its hash is kept.
                println!(
                    "generated bootstrap API key (shown once, store it now): {}",
                    key.expose()
                );
                tracing::warn!(
                    "API_KEY is unset: generated a bootstrap key and stored only its hash"
                );
            }
            auth
        }
    };
    let system = config
        .system_key
        .as_ref()
        .map(|k| BootstrapAuth::from_key(k, tenant.clone()));
    // NB: when NEURALLOG_MASTER_KEY is configured, `KeyHasher::derive(master key)` replaces
    // the stored pepper (see docs/security.md).
    let hasher = KeyHasher::load_or_generate(storage.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the API key pepper: {}", e.message))?;
    if config.auth_disabled {
        tracing::warn!("NEURALLOG_BENCH_DISABLE_AUTH: authentication and audit are OFF");
    }
    let tokens = match &config.tokens {
        None => None,
        Some(settings) => {
            let verifier = neurallog_auth::TokenVerifier::new(settings.clone())
                .await
                .map_err(|e| anyhow::anyhow!("cannot set up token verification: {e}"))?;
            Some(Arc::new(BearerTokens::new(verifier, config.tenant.clone()))
                as Arc<dyn crate::auth::TokenVerifier>)
        }
    };
    let auth = Authenticator {
        bootstrap: Some(bootstrap),
        system,
        keys: KeyStore::new(storage.clone(), hasher),
        tenants: Tenants::new(storage.clone(), config.tenant.clone()),
        roles: RoleBook::new(config.roles.clone()),
        tokens,
        disabled: config.auth_disabled,
    };
    let audit = if config.auth_disabled {
        AuditSink::disabled()
    } else {
        AuditSink::start(storage.clone())
    };
    Ok(AppState {
        storage,
        auth: Arc::new(auth),
        audit,
        limits: Arc::new(config.limits.clone()),
        keyring,
        metrics: Arc::new(Metrics::default()),
    })
}

/// Binds the metrics listener. A busy default port is a warning in development (several
/// local servers would otherwise fight over it); an explicit port, or production, makes it an
/// error.
async fn metrics_listener(
    config: &ServerConfig,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match tokio::net::TcpListener::bind((config.bind, config.metrics_port)).await {
        Ok(l) => {
            if let Ok(a) = l.local_addr() {
                tracing::info!(addr = %a, "metrics listening");
            }
            Ok(Some(l))
        }
        Err(e) if !config.metrics_port_explicit && config.mode == Mode::Development => {
            tracing::warn!(
                error = %e,
                port = config.metrics_port,
                "metrics listener not started: the default port is taken; set METRICS_PORT"
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot listen for metrics on {}:{}: {e}",
            config.bind,
            config.metrics_port
        )),
    }
}

/// Serves until `shutdown` completes, then drains and flushes.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (storage, keyring) = open_encrypted(&config).await?;
    let server = Server::start_with(config, storage, keyring, shutdown).await?;
    server.wait().await
}

/// A running server (used by `run`, the benchmark and tests).
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Starts serving; stop it with [`Server::shutdown`].
    pub async fn start(config: ServerConfig) -> anyhow::Result<Self> {
        let (storage, keyring) = open_encrypted(&config).await?;
        Self::start_with(config, storage, keyring, std::future::pending()).await
    }

    /// Starts serving on a store the caller opened (tests keep a handle to tamper with it).
    /// The encryption API then reports encryption as disabled: the caller holds the keys.
    pub async fn start_on(config: ServerConfig, storage: Arc<dyn Storage>) -> anyhow::Result<Self> {
        Self::start_with(config, storage, None, std::future::pending()).await
    }

    async fn start_with(
        config: ServerConfig,
        storage: Arc<dyn Storage>,
        keyring: Option<Arc<Keyring>>,
        external: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let state = state(&config, storage, keyring).await?;
        let storage = state.storage.clone();
        let audit = state.audit.clone();
        let listener = tokio::net::TcpListener::bind((config.bind, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.bind, config.port))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, backend = storage.backend(), "neurallog listening");
        let metrics_listener = metrics_listener(&config).await?;
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            tokio::select! {
                _ = external => {}
                _ = stopped => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
        };
        let metrics_task = metrics_listener.map(|l| {
            let router = metrics::app(state.metrics.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, router).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app(state).into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await;
            if let Some(t) = metrics_task {
                t.abort();
            }
            served?;
            // The audit events of the last requests are stored before the final flush.
            audit.flush().await;
            storage
                .flush()
                .await
                .context("final storage flush failed")?;
            tracing::info!("storage flushed, bye");
            Ok(())
        });
        Ok(Self {
            addr,
            metrics_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the `/metrics` listener, when it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting, drains, flushes and waits.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task failed")?
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
