//! Certificate rotation without a restart.
//!
//! The sources are re-read every [`POLL`] and compared byte for byte with what is being
//! served; a change that builds into a valid configuration replaces it for new connections
//! (open connections keep the one they started with). Polling the content, rather than
//! watching for file events, also catches Kubernetes' secret-volume updates (an atomic
//! symlink swap) and Vault rotations, and costs three small reads every two seconds.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::sync::watch;

use super::material::{self, Material, TlsError, TlsSources};

/// How often the sources are re-read.
pub const POLL: Duration = Duration::from_secs(2);

/// The configuration being served, updated in place when the certificate changes.
pub type CurrentConfig = watch::Receiver<Arc<ServerConfig>>;

/// Re-reads the material until dropped; the caller spawns it.
pub type Reloader = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Loads the material once (any problem is a start-up error) and returns the reload loop.
pub fn start(sources: TlsSources) -> Result<(CurrentConfig, Reloader), TlsError> {
    let material = sources.read()?;
    let (config, info) = material::build(&material)?;
    material::warn_if_expiring(&info);
    tracing::info!(not_after = %info.not_after, "TLS on");
    let (tx, rx) = watch::channel(config);
    Ok((rx, Box::pin(poll(sources, material, tx))))
}

async fn poll(sources: TlsSources, mut served: Material, tx: watch::Sender<Arc<ServerConfig>>) {
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sources = sources.clone();
        // File reads block; keep them off the request threads.
        let read = tokio::task::spawn_blocking(move || sources.read()).await;
        let outcome = match read {
            Ok(Ok(m)) if m == served => Ok(None),
            Ok(Ok(m)) => material::build(&m).map(|built| Some((m, built))),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(TlsError(format!("TLS reload task failed: {e}"))),
        };
        match outcome {
            Ok(None) => last_error = None,
            Ok(Some((m, (config, info)))) => {
                served = m;
                last_error = None;
                tx.send_replace(config);
                tracing::info!(not_after = %info.not_after, "TLS certificate reloaded");
                material::warn_if_expiring(&info);
            }
            Err(e) => {
                // Logged once per distinct problem, not every poll; a half-written pair
                // (new certificate, old key) resolves itself on a later poll.
                if last_error.as_deref() != Some(e.0.as_str()) {
                    tracing::error!(
                        "TLS reload refused, still serving the previous certificate: {e}"
                    );
                    last_error = Some(e.0);
                }
            }
        }
    }
}
