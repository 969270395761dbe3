//! [`TokenVerifier`]: the one entry point the server calls with a bearer token.
//!
//! Built once from [`TokenSettings`] (running OIDC discovery when configured), then shared:
//! cloning is cheap and every clone uses the same JWKS and introspection caches. A token with
//! the shape of a JWT is verified locally when JWT algorithms are configured; any other token
//! (or every token, when only introspection is configured) is introspected.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::AlgorithmFamily;
use url::Url;

use crate::cache::{HashCache, TokenHash};
use crate::discovery;
use crate::http;
use crate::identity::{TokenIdentity, TokenRejection};
use crate::introspection::Introspector;
use crate::jwks::JwksCache;
use crate::jwt::{JwtVerifier, looks_like_jwt};
use crate::keys;
use crate::settings::{SettingsError, TokenSettings};

/// Longest token accepted; real access tokens are a few kilobytes at most.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Verifies bearer tokens. Cheap to clone; clones share caches.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    jwt: Option<JwtVerifier>,
    introspection: Option<Introspector>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jwt = self.inner.jwt.as_ref();
        f.debug_struct("TokenVerifier")
            .field("algorithms", &jwt.map(|j| j.algorithms.clone()))
            .field(
                "jwks",
                &jwt.and_then(|j| j.jwks.as_ref().map(|c| c.url().to_string())),
            )
            .field("issuer", &jwt.and_then(|j| j.issuer.clone()))
            .field(
                "introspection",
                &self.inner.introspection.as_ref().map(|i| i.url.to_string()),
            )
            .finish()
    }
}

impl TokenVerifier {
    /// Checks the settings, runs OIDC discovery when `oidc_issuer` is set (the discovered
    /// issuer must equal it), and loads the JWKS once. A JWKS that cannot be fetched now is
    /// not fatal (it is fetched again on the first token); failed discovery is.
    pub async fn new(settings: TokenSettings) -> Result<Self, SettingsError> {
        settings.validate()?;
        for (variable, url) in settings.insecure_urls() {
            tracing::warn!(variable, url = %url, "identity provider reached over plain http");
        }
        let client = http::client(settings.http_timeout).map_err(SettingsError::Client)?;
        let has_asymmetric = settings
            .algorithms
            .iter()
            .any(|a| a.family() != AlgorithmFamily::Hmac);

        let mut jwks_url = settings.jwks_url.clone();
        let mut issuer = settings.issuer.clone();
        let mut introspection_url = settings.introspection_url.clone();
        if let Some(oidc) = &settings.oidc_issuer {
            let discovery_error = |reason: String| SettingsError::Discovery {
                issuer: oidc.clone(),
                reason,
            };
            let meta = discovery::discover(&client, oidc)
                .await
                .map_err(discovery_error)?;
            if has_asymmetric && jwks_url.is_none() {
                jwks_url = Some(meta.jwks_uri.clone().ok_or_else(|| {
                    discovery_error("the provider publishes no jwks_uri; set JWT_JWKS_URL".into())
                })?);
            }
            if issuer.is_none() {
                issuer = Some(meta.issuer.clone());
            }
            if introspection_url.is_none() && settings.client_id.is_some() {
                introspection_url = Some(meta.introspection_endpoint.clone().ok_or_else(|| {
                    discovery_error(
                        "OAUTH2_CLIENT_ID is set but the provider advertises no \
                         introspection_endpoint; set OAUTH2_INTROSPECTION_URL"
                            .into(),
                    )
                })?);
            }
        }

        let jwt = if settings.algorithms.is_empty() {
            None
        } else {
            Some(build_jwt(&settings, jwks_url, issuer.clone(), &client).await?)
        };
        let introspection = match (
            introspection_url,
            &settings.client_id,
            &settings.client_secret,
        ) {
            (Some(url), Some(id), Some(secret)) => Some(Introspector::new(
                url,
                client.clone(),
                id.clone(),
                secret.clone(),
                settings.claims.clone(),
                issuer,
                settings.audience.clone(),
                settings.leeway_seconds,
                settings.token_cache_ttl,
                settings.introspection_negative_ttl,
            )),
            _ => None,
        };
        if jwt.is_none() && introspection.is_none() {
            return Err(SettingsError::Missing {
                variable: "JWT_ALGORITHMS",
                why: "no way to verify tokens is configured".into(),
            });
        }
        Ok(Self {
            inner: Arc::new(Inner { jwt, introspection }),
        })
    }

    /// Verifies a bearer token (without the `Bearer ` prefix).
    pub async fn verify(&self, token: &str) -> Result<TokenIdentity, TokenRejection> {
        if token.is_empty()
            || token.len() > MAX_TOKEN_BYTES
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(TokenRejection::Malformed);
        }
        if let Some(jwt) = &self.inner.jwt
            && looks_like_jwt(token)
        {
            return jwt.verify(token).await;
        }
        match &self.inner.introspection {
            Some(introspection) => introspection.verify(token).await,
            None => Err(TokenRejection::Malformed),
        }
    }

    /// Whether JWTs are verified locally.
    pub fn jwt_enabled(&self) -> bool {
        self.inner.jwt.is_some()
    }

    /// The introspection endpoint in use, if any (configured or discovered).
    pub fn introspection_url(&self) -> Option<&Url> {
        self.inner.introspection.as_ref().map(|i| &i.url)
    }

    /// The JWKS URL in use, if any (configured or discovered).
    pub fn jwks_url(&self) -> Option<&Url> {
        self.inner
            .jwt
            .as_ref()
            .and_then(|j| j.jwks.as_ref())
            .map(|c| c.url())
    }

    /// How many JWKS fetches were started (for metrics).
    pub fn jwks_fetch_count(&self) -> u64 {
        self.inner
            .jwt
            .as_ref()
            .and_then(|j| j.jwks.as_ref())
            .map_or(0, |c| c.fetch_count())
    }

    /// How many introspection requests were sent (for metrics).
    pub fn introspection_call_count(&self) -> u64 {
        self.inner
            .introspection
            .as_ref()
            .map_or(0, |i| i.call_count())
    }

    /// What the token caches (JWT and introspection) are keyed by: token hashes, never
    /// tokens.
    pub fn cache_keys(&self) -> Vec<TokenHash> {
        let mut keys = self
            .inner
            .jwt
            .as_ref()
            .map_or_else(Vec::new, |j| j.cache.keys());
        if let Some(i) = &self.inner.introspection {
            keys.extend(i.cache_keys());
        }
        keys
    }
}

async fn build_jwt(
    settings: &TokenSettings,
    jwks_url: Option<Url>,
    issuer: Option<String>,
    client: &reqwest::Client,
) -> Result<JwtVerifier, SettingsError> {
    let mut static_keys = Vec::new();
    if settings
        .algorithms
        .iter()
        .any(|a| a.family() == AlgorithmFamily::Hmac)
        && let Some(secret) = &settings.secret
    {
        static_keys.push(keys::hmac_key(secret.expose()).map_err(|why| {
            SettingsError::Invalid {
                variable: "JWT_SECRET",
                value: "[redacted]".into(),
                allowed: why,
            }
        })?);
    }
    if let Some(pem) = &settings.public_key_pem {
        static_keys.push(keys::pem_key(pem, &settings.algorithms).map_err(|why| {
            SettingsError::Invalid {
                variable: "JWT_PUBLIC_KEY",
                value: "(PEM)".into(),
                allowed: why,
            }
        })?);
    }
    let has_asymmetric = settings
        .algorithms
        .iter()
        .any(|a| a.family() != AlgorithmFamily::Hmac);
    let jwks = match jwks_url.filter(|_| has_asymmetric) {
        None => None,
        Some(url) => {
            let cache = JwksCache::new(
                url,
                client.clone(),
                settings.algorithms.clone(),
                settings.jwks_min_refresh_interval,
                settings.jwks_max_age,
            );
            if let Err(reason) = cache.refresh().await {
                tracing::warn!(url = %cache.url(), reason = %reason, "jwks not loaded at start");
            }
            Some(Arc::new(cache))
        }
    };
    Ok(JwtVerifier {
        algorithms: settings.algorithms.clone(),
        static_keys,
        jwks,
        issuer,
        audience: settings.audience.clone(),
        leeway_seconds: settings.leeway_seconds,
        claims: settings.claims.clone(),
        cache: HashCache::new(),
        cache_ttl: settings.token_cache_ttl,
    })
}
