//! RFC 7662 token introspection: the identity provider says whether an opaque token is active
//! and what it grants.
//!
//! Answers are cached so a busy client does not cost one provider call per request, but never
//! beyond the token's own `exp` and at most `token_cache_ttl`; refusals are cached for
//! `introspection_negative_ttl` (short, so a token activated just now works soon). The cache is
//! keyed by the SHA-256 of the token: the tokens themselves are never kept, so a memory dump
//! or a debug print of the cache yields nothing a client could replay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use url::Url;

use crate::cache::{HashCache, TokenHash, ttl_until};
use crate::http;
use crate::identity::{
    ClaimNames, TokenIdentity, TokenMethod, TokenRejection, identity_from_claims, numeric_date,
};
use crate::secret::SecretBytes;

/// Calls the introspection endpoint and caches its answers.
pub(crate) struct Introspector {
    pub url: Url,
    pub client: reqwest::Client,
    pub client_id: String,
    pub client_secret: SecretBytes,
    pub claims: ClaimNames,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_seconds: u64,
    pub cache_ttl: Duration,
    pub negative_ttl: Duration,
    cache: HashCache<Result<TokenIdentity, TokenRejection>>,
    calls: AtomicU64,
}

impl Introspector {
    #[allow(clippy::too_many_arguments)] // one plain constructor, called once by the verifier
    pub fn new(
        url: Url,
        client: reqwest::Client,
        client_id: String,
        client_secret: SecretBytes,
        claims: ClaimNames,
        issuer: Option<String>,
        audience: Option<String>,
        leeway_seconds: u64,
        cache_ttl: Duration,
        negative_ttl: Duration,
    ) -> Self {
        Self {
            url,
            client,
            client_id,
            client_secret,
            claims,
            issuer,
            audience,
            leeway_seconds,
            cache_ttl,
            negative_ttl,
            cache: HashCache::new(),
            calls: AtomicU64::new(0),
        }
    }

    /// How many introspection requests were sent (for metrics and tests).
    pub fn call_count(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The keys currently in the cache.
    pub fn cache_keys(&self) -> Vec<TokenHash> {
        self.cache.keys()
    }

    /// Introspects `token`, from the cache when a fresh answer is there.
    pub async fn verify(&self, token: &str) -> Result<TokenIdentity, TokenRejection> {
        let hash = TokenHash::of(token);
        if let Some(outcome) = self.cache.get(&hash) {
            return outcome;
        }
        let outcome = self.ask(token).await;
        let ttl = match &outcome {
            Ok(identity) => ttl_until(identity.expires_at, unix_now(), self.cache_ttl),
            // An outage is not an answer: the next request asks again.
            Err(TokenRejection::Unavailable) => Duration::ZERO,
            Err(_) => self.negative_ttl,
        };
        self.cache.insert(hash, ttl, outcome.clone());
        outcome
    }

    /// One call to the endpoint, classified.
    async fn ask(&self, token: &str) -> Result<TokenIdentity, TokenRejection> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = self
            .client
            .post(self.url.clone())
            .header("authorization", self.basic_credentials())
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        let answer: Map<String, Value> = http::json(request).await.map_err(|reason| {
            tracing::warn!(url = %self.url, reason = %reason, "token introspection failed");
            TokenRejection::Unavailable
        })?;
        self.judge(&answer)
    }

    /// RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding.
    fn basic_credentials(&self) -> String {
        let id: String = url::form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect();
        let secret: String =
            url::form_urlencoded::byte_serialize(self.client_secret.expose()).collect();
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    /// Turns an introspection answer into an identity or a refusal.
    fn judge(&self, answer: &Map<String, Value>) -> Result<TokenIdentity, TokenRejection> {
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenRejection::Inactive);
        }
        let now = unix_now();
        let leeway = i64::try_from(self.leeway_seconds).unwrap_or(i64::MAX);
        if let Some(v) = answer.get("exp").filter(|v| !v.is_null()) {
            let exp = numeric_date(v).ok_or(TokenRejection::InvalidClaim("exp"))?;
            if exp.saturating_add(leeway) < now {
                return Err(TokenRejection::Expired);
            }
        }
        if let Some(v) = answer.get("nbf").filter(|v| !v.is_null()) {
            let nbf = numeric_date(v).ok_or(TokenRejection::InvalidClaim("nbf"))?;
            if nbf.saturating_sub(leeway) > now {
                return Err(TokenRejection::NotYetValid);
            }
        }
        if let Some(expected) = &self.issuer
            && let Some(iss) = answer.get("iss").filter(|v| !v.is_null())
            && iss.as_str() != Some(expected.as_str())
        {
            return Err(TokenRejection::WrongIssuer);
        }
        if let Some(expected) = &self.audience {
            let ok = match answer.get("aud") {
                Some(Value::String(a)) => a == expected,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expected)),
                _ => false,
            };
            if !ok {
                return Err(TokenRejection::WrongAudience);
            }
        }
        identity_from_claims(
            answer,
            &self.claims,
            TokenMethod::Introspection,
            &["client_id", "username"],
        )
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn introspector(audience: Option<&str>) -> Introspector {
        Introspector::new(
            Url::parse("http://127.0.0.1:9/introspect").unwrap(),
            reqwest::Client::new(),
            "client id".into(),
            SecretBytes::new("s3cr:t"),
            ClaimNames::default(),
            Some("https://idp".into()),
            audience.map(str::to_owned),
            30,
            Duration::from_secs(60),
            Duration::from_secs(5),
        )
    }

    fn judge(i: &Introspector, v: Value) -> Result<TokenIdentity, TokenRejection> {
        i.judge(v.as_object().unwrap())
    }

    #[test]
    fn answers_are_judged() {
        let i = introspector(Some("neurallog"));
        let now = unix_now();
        assert_eq!(
            judge(&i, json!({"active": false})),
            Err(TokenRejection::Inactive)
        );
        assert_eq!(
            judge(&i, json!({"active": "true"})),
            Err(TokenRejection::Inactive)
        );
        assert_eq!(judge(&i, json!({})), Err(TokenRejection::Inactive));
        let ok = json!({"active": true, "sub": "a", "aud": ["x", "neurallog"], "exp": now + 100,
                        "iss": "https://idp", "scope": "reader writer"});
        let id = judge(&i, ok.clone()).unwrap();
        assert_eq!(id.roles, ["reader", "writer"]);
        assert_eq!(id.method, TokenMethod::Introspection);
        let mut expired = ok.clone();
        expired["exp"] = json!(now - 100);
        assert_eq!(judge(&i, expired), Err(TokenRejection::Expired));
        let mut early = ok.clone();
        early["nbf"] = json!(now + 100);
        assert_eq!(judge(&i, early), Err(TokenRejection::NotYetValid));
        let mut other_iss = ok.clone();
        other_iss["iss"] = json!("https://evil");
        assert_eq!(judge(&i, other_iss), Err(TokenRejection::WrongIssuer));
        let mut other_aud = ok.clone();
        other_aud["aud"] = json!("other");
        assert_eq!(judge(&i, other_aud), Err(TokenRejection::WrongAudience));
        let mut no_aud = ok;
        no_aud.as_object_mut().unwrap().remove("aud");
        assert_eq!(judge(&i, no_aud), Err(TokenRejection::WrongAudience));
    }

    #[test]
    fn client_credentials_are_form_encoded() {
        let i = introspector(None);
        let expected = format!("Basic {}", STANDARD.encode("client+id:s3cr%3At"));
        assert_eq!(i.basic_credentials(), expected);
    }
}
