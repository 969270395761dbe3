//! Bearer tokens (JWT, OIDC, OAuth2 introspection) as a credential of the server: adapts
//! [`neurallog_auth::TokenVerifier`] to the [`TokenVerifier`](super::TokenVerifier) slot of
//! the [`Authenticator`](super::Authenticator).
//!
//! A refused token is a plain 401 — the same answer as a wrong key, so the response never says
//! why; the reason goes to the server log. An identity provider that cannot be reached is a
//! 503: the token may well be valid, and refusing it as bad would send clients to re-login
//! loops.

use neurallog_auth::{TokenMethod, TokenRejection};
use neurallog_core::TenantId;

use super::{AuthMethod, BoxFuture, TokenVerifier, VerifiedToken};
use crate::error::ApiError;

/// Verifies bearer tokens with the configured JWT keys, OIDC discovery or introspection.
#[derive(Debug)]
pub struct BearerTokens {
    verifier: neurallog_auth::TokenVerifier,
    /// The tenant of a server pinned with `TENANT_ID`: tokens without a tenant claim belong to
    /// it. An unpinned server refuses them: guessing a tenant would be a grant nobody made.
    pinned: Option<TenantId>,
}

impl BearerTokens {
    /// Wraps a ready verifier.
    pub fn new(verifier: neurallog_auth::TokenVerifier, pinned: Option<TenantId>) -> Self {
        Self { verifier, pinned }
    }

    async fn check(&self, token: &str) -> Result<Option<VerifiedToken>, ApiError> {
        let identity = match self.verifier.verify(token).await {
            Ok(i) => i,
            Err(TokenRejection::Unavailable) => {
                tracing::warn!("identity provider unavailable: cannot verify a bearer token");
                return Err(ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable",
                    "the identity provider cannot be reached, retry later",
                ));
            }
            Err(r) => {
                tracing::info!(reason = r.reason(), "bearer token refused");
                return Ok(None);
            }
        };
        let Some(tenant) = identity.tenant.clone().or_else(|| self.pinned.clone()) else {
            tracing::info!(
                subject = %identity.subject,
                "bearer token refused: no tenant claim and the server is not pinned to a tenant"
            );
            return Ok(None);
        };
        Ok(Some(VerifiedToken {
            subject: format!("token:{}", identity.subject),
            method: match identity.method {
                TokenMethod::Jwt => AuthMethod::Jwt,
                TokenMethod::Introspection => AuthMethod::Oidc,
            },
            tenant,
            roles: identity.roles,
            logs: identity
                .logs
                .map(|ps| ps.iter().map(|p| p.as_str().to_owned()).collect()),
        }))
    }
}

impl TokenVerifier for BearerTokens {
    fn verify<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<VerifiedToken>, ApiError>> {
        Box::pin(self.check(token))
    }
}
