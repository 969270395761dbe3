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
use crate::auth::BootstrapAuth;
use crate::config::ServerConfig;
use crate::secret::Secret;

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

/// Builds the state: storage and the bootstrap key (generated and printed once if unset).
async fn state(config: &ServerConfig) -> anyhow::Result<AppState> {
    let storage = open_storage(config).await?;
    let tenant = config
        .tenant
        .clone()
        .unwrap_or_else(TenantId::default_tenant);
    let auth = match &config.api_key {
        Some(key) => BootstrapAuth::from_key(key, tenant),
        None => {
            let (auth, generated) = BootstrapAuth::load_or_generate(&config.data_dir, tenant)
                .with_context(|| {
                    format!(
                        "cannot keep the bootstrap key hash in {}",
                        config.data_dir.display()
                    )
                })?;
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
    Ok(AppState {
        storage,
        auth: Arc::new(auth),
        limits: Arc::new(config.limits.clone()),
        retention: Arc::new(crate::retention::Retention {
            server_default_days: config.retention_days,
            metrics: Arc::default(),
        }),
    })
}

/// Serves until `shutdown` completes, then drains and flushes.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let server = Server::start_with(config, shutdown).await?;
    server.wait().await
}

/// A running server (used by `run`, the benchmark and tests).
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Starts serving; stop it with [`Server::shutdown`].
    pub async fn start(config: ServerConfig) -> anyhow::Result<Self> {
        Self::start_with(config, std::future::pending()).await
    }

    async fn start_with(
        config: ServerConfig,
        external: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Self> {
        let state = state(&config).await?;
        let storage = state.storage.clone();
        let listener = tokio::net::TcpListener::bind((config.bind, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.bind, config.port))?;
        let addr = listener.local_addr()?;
        // Retention runs beside the server and stops with it.
        let purger = crate::retention::Purger {
            storage: storage.clone(),
            tenant: state.auth.tenant().clone(),
            server_default_days: config.retention_days,
            metrics: state.retention.metrics.clone(),
            observer: None,
            max_blocks_per_cycle: crate::retention::MAX_BLOCKS_PER_CYCLE,
        }
        .spawn(config.purge_interval);
        tracing::info!(%addr, backend = storage.backend(), "neurallog listening");
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            tokio::select! {
                _ = external => {}
                _ = stopped => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, app(state))
                .with_graceful_shutdown(signal)
                .await?;
            purger.abort();
            storage
                .flush()
                .await
                .context("final storage flush failed")?;
            tracing::info!("storage flushed, bye");
            Ok(())
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
