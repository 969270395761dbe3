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
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::{EmbeddedStorage, Storage};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{AppState, app};
use crate::audit::AuditSink;
use crate::auth::{Authenticator, BootstrapAuth, KeyHasher, KeyStore, RoleBook};
use crate::config::{Mode, ServerConfig};
use crate::metrics::{self, Metrics};
use crate::secret::Secret;
use crate::tenants::Tenants;

/// Opens the configured storage backend: Redis when `REDIS_URL` is set, else the embedded
/// store in the data directory.
pub async fn open_storage(config: &ServerConfig) -> anyhow::Result<Arc<dyn Storage>> {
    if let Some(url) = &config.redis_url {
        let store = open_redis(url, config).await?;
        tracing::info!(redis = store.target(), "storage: redis");
        return Ok(Arc::new(store));
    }
    let dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || EmbeddedStorage::open(&dir))
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
async fn open_redis(url: &Secret, config: &ServerConfig) -> anyhow::Result<RedisStorage> {
    let mut opts = RedisOptions::new(url.expose());
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
async fn state(config: &ServerConfig, storage: Arc<dyn Storage>) -> anyhow::Result<AppState> {
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
    let auth = Authenticator {
        bootstrap: Some(bootstrap),
        system,
        keys: KeyStore::new(storage.clone(), hasher),
        tenants: Tenants::new(storage.clone(), config.tenant.clone()),
        roles: RoleBook::new(config.roles.clone()),
        tokens: None,
        disabled: config.auth_disabled,
    };
    let audit = if config.auth_disabled {
        AuditSink::disabled()
    } else {
        AuditSink::start(storage.clone())
    };
    let purge_metrics = Arc::new(crate::retention::PurgeMetrics::default());
    let mut metrics = Metrics::default();
    purge_metrics.register(metrics.registry_mut());
    Ok(AppState {
        storage,
        auth: Arc::new(auth),
        audit,
        limits: Arc::new(config.limits.clone()),
        retention: Arc::new(crate::retention::Retention {
            server_default_days: config.retention_days,
            metrics: purge_metrics,
        }),
        metrics: Arc::new(metrics),
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
    let storage = open_storage(&config).await?;
    let server = Server::start_with(config, storage, shutdown).await?;
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
        let storage = open_storage(&config).await?;
        Self::start_with(config, storage, std::future::pending()).await
    }

    /// Starts serving on a store the caller opened (tests keep a handle to tamper with it).
    pub async fn start_on(config: ServerConfig, storage: Arc<dyn Storage>) -> anyhow::Result<Self> {
        Self::start_with(config, storage, std::future::pending()).await
    }

    async fn start_with(
        config: ServerConfig,
        storage: Arc<dyn Storage>,
        external: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let state = state(&config, storage).await?;
        let storage = state.storage.clone();
        let audit = state.audit.clone();
        let listener = tokio::net::TcpListener::bind((config.bind, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.bind, config.port))?;
        let addr = listener.local_addr()?;
        // Retention runs beside the server and stops with it.
        let purger = crate::retention::Purger {
            storage: storage.clone(),
            tenant: state.auth.tenants.implicit().clone(),
            server_default_days: config.retention_days,
            metrics: state.retention.metrics.clone(),
            audit: state.audit.clone(),
            max_blocks_per_cycle: crate::retention::MAX_BLOCKS_PER_CYCLE,
        }
        .spawn(config.purge_interval);
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
            purger.abort();
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
