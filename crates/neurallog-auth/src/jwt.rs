//! Verification of JSON Web Tokens: header, key choice, signature, then claims.
//!
//! The order matters. The header is read only to learn `alg` and `kid`; `alg` must be one of
//! the configured algorithms (so `none`, and any algorithm an attacker prefers, is refused
//! before any key is touched). The key is chosen among the keys of that algorithm's family
//! only. The signature is checked before any claim is trusted; then `exp`, `nbf` (with the
//! leeway), `iss` and `aud`. `exp` is always required: a token that never expires is refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cache::{HashCache, TokenHash, ttl_until};
use crate::identity::{
    ClaimNames, TokenIdentity, TokenMethod, TokenRejection, identity_from_claims,
};
use crate::introspection::unix_now;
use crate::jwks::JwksCache;
use crate::keys::VerifyingKey;

/// Most keys tried for one token (several keys can match a token without `kid`).
const MAX_KEYS_TRIED: usize = 4;

/// Checks JWTs against the configured algorithms, keys and claims.
pub(crate) struct JwtVerifier {
    pub algorithms: Vec<Algorithm>,
    /// The HMAC key from the secret and the PEM key, each in its family.
    pub static_keys: Vec<VerifyingKey>,
    pub jwks: Option<Arc<JwksCache>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_seconds: u64,
    pub claims: ClaimNames,
    /// Identities of tokens already verified, by token hash; cleared when the JWKS changes.
    pub cache: HashCache<TokenIdentity>,
    pub cache_ttl: Duration,
}

/// The two header fields needed before verification. Unknown fields are left to the library,
/// which refuses unsupported critical extensions.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

/// Whether `token` has the shape of a JWS compact serialisation: three base64url parts, the
/// first a JSON object with `alg`. Opaque tokens go to introspection instead.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    parse_header(header).is_ok()
}

fn parse_header(encoded: &str) -> Result<RawHeader, TokenRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenRejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenRejection::Malformed)
}

impl JwtVerifier {
    /// Verifies `token` and maps its claims.
    pub async fn verify(&self, token: &str) -> Result<TokenIdentity, TokenRejection> {
        // NB: the same bytes were verified before and `exp` bounds the entry, so the outcome
        // cannot differ; refusals are not cached (they cost the attacker as much as us).
        // While the key set is due for a refresh, tokens go the full way, so that a withdrawn
        // key is noticed (and the cache cleared) as it would be without the cache.
        let hash = TokenHash::of(token);
        let keys_stale = self.jwks.as_ref().is_some_and(|j| j.keys().1);
        if !keys_stale && let Some(identity) = self.cache.get(&hash) {
            return Ok(identity);
        }
        let Some((header, _)) = token.split_once('.') else {
            return Err(TokenRejection::Malformed);
        };
        let header = parse_header(header)?;
        // NB: exact, case-sensitive names (RFC 7518); `none` has no `Algorithm` at all.
        let alg = header
            .alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or(TokenRejection::AlgorithmNotAllowed)?;
        let kid = header.kid.as_deref();

        let candidates = self.candidates(alg, kid).await?;
        let validation = self.validation(alg);
        for key in candidates.iter().take(MAX_KEYS_TRIED) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    let identity =
                        identity_from_claims(&data.claims, &self.claims, TokenMethod::Jwt, &[])?;
                    let ttl = ttl_until(identity.expires_at, unix_now(), self.cache_ttl);
                    self.cache.insert(hash, ttl, identity.clone());
                    return Ok(identity);
                }
                Err(e) => match classify(e.kind()) {
                    TokenRejection::BadSignature => continue,
                    other => return Err(other),
                },
            }
        }
        Err(TokenRejection::BadSignature)
    }

    /// The keys that may verify a token with this `alg` and `kid`: the static keys of the
    /// family, then matching JWKS keys (refreshing the set, rate-limited, when none matches or
    /// it is stale).
    async fn candidates(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<VerifyingKey>, TokenRejection> {
        let mut out: Vec<VerifyingKey> = self
            .static_keys
            .iter()
            .filter(|k| k.accepts(alg, kid))
            .cloned()
            .collect();
        let Some(jwks) = self
            .jwks
            .as_ref()
            .filter(|_| alg.family() != AlgorithmFamily::Hmac)
        else {
            return if out.is_empty() {
                Err(TokenRejection::UnknownKey)
            } else {
                Ok(out)
            };
        };
        let matching = |keys: &[VerifyingKey]| -> Vec<VerifyingKey> {
            keys.iter()
                .filter(|k| k.accepts(alg, kid))
                .cloned()
                .collect()
        };
        let (keys, stale) = jwks.keys();
        let mut from_set = matching(&keys);
        if from_set.is_empty() || stale {
            match jwks.refresh().await {
                Ok(reloaded) => {
                    if reloaded {
                        // A withdrawn key must not live on in remembered tokens.
                        self.cache.clear();
                    }
                    from_set = matching(&jwks.keys().0);
                }
                Err(reason) => {
                    tracing::warn!(url = %jwks.url(), reason = %reason, "jwks fetch failed");
                    if from_set.is_empty() && out.is_empty() {
                        return Err(TokenRejection::Unavailable);
                    }
                }
            }
        }
        out.extend(from_set);
        if out.is_empty() {
            Err(TokenRejection::UnknownKey)
        } else {
            Ok(out)
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway_seconds;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.validate_aud = true;
                required.push("aud");
            }
            // Without a configured audience, `aud` is not checked (and not refused).
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// Maps a library error to a refusal. `BadSignature` means "try the next key".
fn classify(kind: &ErrorKind) -> TokenRejection {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenRejection::BadSignature,
        ErrorKind::ExpiredSignature => TokenRejection::Expired,
        ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
        ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
        ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "iss" => TokenRejection::WrongIssuer,
            "aud" => TokenRejection::WrongAudience,
            "exp" => TokenRejection::MissingClaim("exp"),
            _ => TokenRejection::MissingClaim("registered claim"),
        },
        ErrorKind::InvalidClaimFormat(c) => match c.as_str() {
            "exp" => TokenRejection::InvalidClaim("exp"),
            "nbf" => TokenRejection::InvalidClaim("nbf"),
            "iss" => TokenRejection::WrongIssuer,
            "aud" => TokenRejection::WrongAudience,
            "sub" => TokenRejection::InvalidClaim("sub"),
            _ => TokenRejection::Malformed,
        },
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm => TokenRejection::AlgorithmNotAllowed,
        _ => TokenRejection::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        assert!(looks_like_jwt(&format!("{h}.e30.c2ln")));
        assert!(!looks_like_jwt("opaque-token-value"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt(&format!("{h}.e30.c2ln.extra")));
        let no_alg = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT"}"#);
        assert!(!looks_like_jwt(&format!("{no_alg}.e30.c2ln")));
    }
}
