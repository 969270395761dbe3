//! The JWKS cache: the identity provider's published signing keys, fetched once, reused, and
//! fetched again when a token names a key id the cache does not know (key rotation) or the
//! keys are older than their maximum age (key removal).
//!
//! Fetches are rate-limited: at most one per `min_interval`, whatever the outcome, so tokens
//! with made-up key ids (or a provider that is down) cannot turn into a stream of requests to
//! the provider. Concurrent misses wait for one fetch instead of each starting their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use url::Url;

use crate::http;
use crate::keys::{self, VerifyingKey};

/// Most keys taken from one key set; providers publish a handful.
const MAX_KEYS: usize = 64;

/// Cached keys of one JWKS URL.
pub struct JwksCache {
    url: Url,
    client: reqwest::Client,
    algorithms: Vec<Algorithm>,
    min_interval: Duration,
    max_age: Duration,
    current: RwLock<Loaded>,
    // NB: a tokio mutex, held across the fetch on purpose: it is what makes concurrent
    // misses share one fetch, and it guards only the time of the last attempt.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
}

#[derive(Clone, Default)]
struct Loaded {
    keys: Arc<Vec<VerifyingKey>>,
    at: Option<Instant>,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

impl JwksCache {
    /// A cache for `url` that keeps the keys usable with `algorithms`.
    pub fn new(
        url: Url,
        client: reqwest::Client,
        algorithms: Vec<Algorithm>,
        min_interval: Duration,
        max_age: Duration,
    ) -> Self {
        Self {
            url,
            client,
            algorithms,
            min_interval,
            max_age,
            current: RwLock::new(Loaded::default()),
            last_attempt: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// The URL the keys come from.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How many fetches were started (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The cached keys, and whether they are older than the maximum age (or were never
    /// loaded).
    pub(crate) fn keys(&self) -> (Arc<Vec<VerifyingKey>>, bool) {
        let loaded = match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let stale = loaded.at.is_none_or(|at| at.elapsed() >= self.max_age);
        (loaded.keys, stale)
    }

    /// Fetches the key set unless a fetch was attempted less than `min_interval` ago.
    /// `Ok(true)`: new keys are in place; `Ok(false)`: skipped by the rate limit (another
    /// caller may just have refreshed); `Err`: the fetch failed, the old keys stay.
    pub(crate) async fn refresh(&self) -> Result<bool, String> {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_interval) {
            return Ok(false);
        }
        *last = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let set: KeySet = http::json(self.client.get(self.url.clone())).await?;
        let keys: Vec<VerifyingKey> = set
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter_map(|jwk| keys::jwk_key(&jwk, &self.algorithms))
            .take(MAX_KEYS)
            .collect();
        tracing::debug!(url = %self.url, keys = keys.len(), "jwks loaded");
        let loaded = Loaded {
            keys: Arc::new(keys),
            at: Some(Instant::now()),
        };
        match self.current.write() {
            Ok(mut guard) => *guard = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        Ok(true)
    }
}
