//! Token verification against a real identity provider on 127.0.0.1 (`testing::TestIdp`):
//! every algorithm, OIDC discovery, JWKS caching and rotation, introspection and its cache,
//! outages, and the attacks a bearer-token endpoint gets.

use std::sync::OnceLock;
use std::time::Duration;

use neurallog_auth::testing::{self, CLIENT_ID, CLIENT_SECRET, TestIdp, TestKey, now, raw_token};
use neurallog_auth::{
    Algorithm, SecretBytes, SettingsError, TokenHash, TokenMethod, TokenRejection, TokenSettings,
    TokenVerifier,
};
use serde_json::{Value, json};

const SECRET: &[u8] = b"a shared secret that is long enough for HS512, sixty-four bytes!";

/// One RSA key for the whole file (generation is the slow part); other RSA algorithms reuse it
/// under other key ids.
fn rsa_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::rsa("rsa-1", Algorithm::RS256))
}

fn claims() -> Value {
    json!({
        "sub": "alice",
        "tenant": "acme",
        "roles": ["writer"],
        "logs": ["app-*"],
        "exp": now() + 600,
        "iat": now(),
    })
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().expect("patch object") {
        if v.is_null() {
            base.as_object_mut().expect("claims object").remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn hmac_settings(algs: &[Algorithm]) -> TokenSettings {
    TokenSettings {
        algorithms: algs.to_vec(),
        secret: Some(SecretBytes::new(SECRET)),
        ..TokenSettings::default()
    }
}

fn pem_settings(alg: Algorithm, pem: &str) -> TokenSettings {
    TokenSettings {
        algorithms: vec![alg],
        public_key_pem: Some(pem.to_owned()),
        ..TokenSettings::default()
    }
}

async fn verifier(settings: TokenSettings) -> TokenVerifier {
    TokenVerifier::new(settings).await.expect("verifier")
}

// ---------------------------------------------------------------- algorithms

#[tokio::test]
async fn hmac_algorithms_verify_and_map_claims() {
    let v = verifier(hmac_settings(&[
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
    ]))
    .await;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = testing::sign_hmac(alg, SECRET, None, &claims());
        let id = v
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(id.subject, "alice");
        assert_eq!(id.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
        assert_eq!(id.roles, ["writer"]);
        let logs: Vec<&str> = id
            .logs
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(logs, ["app-*"]);
        assert_eq!(id.method, TokenMethod::Jwt);
        assert!(id.expires_at.is_some());
    }
    // Another secret: refused.
    let token = testing::sign_hmac(Algorithm::HS256, &[b'x'; 64], None, &claims());
    assert_eq!(v.verify(&token).await, Err(TokenRejection::BadSignature));
}

#[tokio::test]
async fn every_public_key_algorithm_verifies_with_a_pem_key() {
    let ec256 = TestKey::ec("ec", Algorithm::ES256);
    let ec384 = TestKey::ec("ec384", Algorithm::ES384);
    let ed = TestKey::ed25519("ed");
    let mut cases: Vec<TestKey> = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ]
    .into_iter()
    .map(|alg| rsa_key().renamed("r", alg))
    .collect();
    cases.extend([ec256, ec384, ed]);
    for key in &cases {
        let v = verifier(pem_settings(key.alg, key.public_pem())).await;
        let id = v
            .verify(&key.sign(&claims()))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(id.subject, "alice");
    }
}

#[tokio::test]
async fn every_public_key_algorithm_verifies_through_discovery_and_jwks() {
    let idp = TestIdp::start().await;
    let keys = vec![
        rsa_key().renamed("rs256", Algorithm::RS256),
        rsa_key().renamed("rs384", Algorithm::RS384),
        rsa_key().renamed("rs512", Algorithm::RS512),
        rsa_key().renamed("ps256", Algorithm::PS256),
        TestKey::ec("es256", Algorithm::ES256),
        TestKey::ec("es384", Algorithm::ES384),
        TestKey::ed25519("eddsa"),
    ];
    for k in &keys {
        idp.publish(k);
    }
    let algs: Vec<Algorithm> = keys.iter().map(|k| k.alg).collect();
    let v = verifier(idp.settings(&algs)).await;
    assert_eq!(v.jwks_url(), Some(&idp.jwks_url()));
    assert_eq!(
        v.introspection_url(),
        Some(&idp.introspection_url()),
        "discovered"
    );
    for key in &keys {
        let token = key.sign(&with(claims(), json!({"iss": idp.issuer()})));
        let id = v
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
        assert_eq!(id.issuer.as_deref(), Some(idp.issuer().as_str()));
    }
    assert_eq!(idp.discovery_hits(), 1);
    assert_eq!(idp.jwks_hits(), 1, "keys are cached");
}

#[tokio::test]
async fn hmac_and_public_keys_mixed_pick_the_key_by_family() {
    let idp = TestIdp::start().await;
    let rs = rsa_key().renamed("rs", Algorithm::RS256);
    idp.publish(&rs);
    let mut settings = idp.settings(&[Algorithm::HS256, Algorithm::RS256]);
    settings.secret = Some(SecretBytes::new(SECRET));
    let v = verifier(settings).await;
    let c = with(claims(), json!({"iss": idp.issuer()}));
    assert!(
        v.verify(&testing::sign_hmac(Algorithm::HS256, SECRET, None, &c))
            .await
            .is_ok()
    );
    assert!(v.verify(&rs.sign(&c)).await.is_ok());
    // An HS256 token naming the RSA key's kid still only meets the HMAC secret.
    let forged = testing::sign_hmac(Algorithm::HS256, rs.public_pem().as_bytes(), Some("rs"), &c);
    assert_eq!(v.verify(&forged).await, Err(TokenRejection::BadSignature));
}

// ---------------------------------------------------------------- attacks on the header

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling() {
    let v = verifier(hmac_settings(&[Algorithm::HS256])).await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        for sig in [&b""[..], b"anything"] {
            let token = raw_token(&json!({"alg": alg, "typ": "JWT"}), &claims(), sig);
            assert_eq!(
                v.verify(&token).await,
                Err(TokenRejection::AlgorithmNotAllowed),
                "{alg}"
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let key = rsa_key();
    let pem = key.public_pem();
    let forge =
        |kid: Option<&str>| testing::sign_hmac(Algorithm::HS256, pem.as_bytes(), kid, &claims());

    // RS256 only: HS256 is not a configured algorithm.
    let v = verifier(pem_settings(Algorithm::RS256, pem)).await;
    assert_eq!(
        v.verify(&forge(None)).await,
        Err(TokenRejection::AlgorithmNotAllowed)
    );

    // HS256 and RS256 with a different secret: the PEM is never an HMAC key.
    let mut both = pem_settings(Algorithm::RS256, pem);
    both.algorithms.push(Algorithm::HS256);
    both.secret = Some(SecretBytes::new(SECRET));
    let v = verifier(both.clone()).await;
    assert_eq!(
        v.verify(&forge(None)).await,
        Err(TokenRejection::BadSignature)
    );
    assert!(
        v.verify(&key.sign(&claims())).await.is_ok(),
        "the real RS256 token passes"
    );

    // The one configuration in which the forgery would verify is refused at start-up.
    both.secret = Some(SecretBytes::new(pem));
    let e = TokenVerifier::new(both).await.unwrap_err();
    assert!(
        matches!(
            e,
            SettingsError::Invalid {
                variable: "JWT_SECRET",
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("BEGIN"), "{e}");

    // With keys from a JWKS, an HS256 token is refused likewise.
    let idp = TestIdp::start().await;
    idp.publish(key);
    let v = verifier(idp.settings(&[Algorithm::RS256])).await;
    assert_eq!(
        v.verify(&forge(Some("rsa-1"))).await,
        Err(TokenRejection::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn header_algorithm_outside_the_configuration_is_refused() {
    let key = rsa_key();
    let v = verifier(pem_settings(Algorithm::RS256, key.public_pem())).await;
    let ps = key.renamed("r", Algorithm::PS256);
    assert_eq!(
        v.verify(&ps.sign(&claims())).await,
        Err(TokenRejection::AlgorithmNotAllowed)
    );
    let es = TestKey::ec("e", Algorithm::ES256);
    assert_eq!(
        v.verify(&es.sign(&claims())).await,
        Err(TokenRejection::AlgorithmNotAllowed)
    );
    // An RS512 signature relabelled RS256 does not verify.
    let rs512 = key.renamed("r", Algorithm::RS512).sign(&claims());
    let parts: Vec<&str> = rs512.split('.').collect();
    let relabelled = raw_token(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &claims(),
        &base64_decode(parts[2]),
    );
    assert_eq!(
        v.verify(&relabelled).await,
        Err(TokenRejection::BadSignature)
    );
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let key = rsa_key();
    let v = verifier(pem_settings(Algorithm::RS256, key.public_pem())).await;
    let token = key.sign(&claims());
    // The genuine token is verified (and remembered) first: its cache entry must not serve a
    // tampered copy.
    assert!(v.verify(&token).await.is_ok());
    let parts: Vec<&str> = token.split('.').collect();
    let escalated = with(claims(), json!({"roles": ["admin"], "tenant": "other"}));
    let payload = base64_encode(escalated.to_string().as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_eq!(v.verify(&tampered).await, Err(TokenRejection::BadSignature));

    let mut sig = base64_decode(parts[2]);
    sig[10] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], base64_encode(&sig));
    assert_eq!(v.verify(&bad_sig).await, Err(TokenRejection::BadSignature));

    let hmac = verifier(hmac_settings(&[Algorithm::HS256])).await;
    let token = testing::sign_hmac(Algorithm::HS256, SECRET, None, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_eq!(
        hmac.verify(&tampered).await,
        Err(TokenRejection::BadSignature)
    );
}

#[tokio::test]
async fn malformed_tokens_are_classified() {
    let v = verifier(hmac_settings(&[Algorithm::HS256])).await;
    let long = "a".repeat(20 * 1024);
    let kid_number = raw_token(&json!({"alg": "HS256", "kid": 5}), &claims(), b"sig");
    for token in ["", "opaque", "a.b.c", "x y", "é.é.é", &long, &kid_number] {
        assert_eq!(
            v.verify(token).await,
            Err(TokenRejection::Malformed),
            "{token:.40}"
        );
    }
    // A signed payload that is not a JSON object.
    let h = base64_encode(br#"{"alg":"HS256"}"#);
    let p = base64_encode(b"[1,2]");
    let sig = hmac_sha256(SECRET, format!("{h}.{p}").as_bytes());
    let token = format!("{h}.{p}.{}", base64_encode(&sig));
    assert_eq!(v.verify(&token).await, Err(TokenRejection::Malformed));
}

// ---------------------------------------------------------------- claims

#[tokio::test]
async fn exp_and_nbf_with_leeway() {
    let v = verifier(hmac_settings(&[Algorithm::HS256])).await;
    let sign =
        |patch: Value| testing::sign_hmac(Algorithm::HS256, SECRET, None, &with(claims(), patch));
    assert_eq!(
        v.verify(&sign(json!({"exp": now() - 3600}))).await,
        Err(TokenRejection::Expired)
    );
    assert!(
        v.verify(&sign(json!({"exp": now() - 5}))).await.is_ok(),
        "within the 30 s leeway"
    );
    assert_eq!(
        v.verify(&sign(json!({"nbf": now() + 3600}))).await,
        Err(TokenRejection::NotYetValid)
    );
    assert!(
        v.verify(&sign(json!({"nbf": now() + 5}))).await.is_ok(),
        "within the leeway"
    );
    assert_eq!(
        v.verify(&sign(json!({"exp": null}))).await,
        Err(TokenRejection::MissingClaim("exp"))
    );
    // Type confusion: a string where a number belongs is refused, not ignored.
    assert_eq!(
        v.verify(&sign(json!({"nbf": "99999999999"}))).await,
        Err(TokenRejection::InvalidClaim("nbf"))
    );
    // (`exp` is required, so a string `exp` counts as absent.)
    assert_eq!(
        v.verify(&sign(json!({"exp": "99999999999"}))).await,
        Err(TokenRejection::MissingClaim("exp"))
    );
    assert_eq!(
        v.verify(&sign(json!({"sub": null}))).await,
        Err(TokenRejection::MissingClaim("sub"))
    );
    assert_eq!(
        v.verify(&sign(json!({"tenant": "../other"}))).await,
        Err(TokenRejection::InvalidClaim("tenant"))
    );
}

#[tokio::test]
async fn issuer_and_audience_when_configured() {
    let mut settings = hmac_settings(&[Algorithm::HS256]);
    settings.issuer = Some("https://idp.example".into());
    settings.audience = Some("neurallog".into());
    let v = verifier(settings).await;
    let sign = |patch: Value| {
        let base = with(
            claims(),
            json!({"iss": "https://idp.example", "aud": "neurallog"}),
        );
        testing::sign_hmac(Algorithm::HS256, SECRET, None, &with(base, patch))
    };
    assert!(v.verify(&sign(json!({}))).await.is_ok());
    assert!(
        v.verify(&sign(json!({"aud": ["other", "neurallog"]})))
            .await
            .is_ok()
    );
    assert_eq!(
        v.verify(&sign(json!({"iss": "https://evil.example"})))
            .await,
        Err(TokenRejection::WrongIssuer)
    );
    assert_eq!(
        v.verify(&sign(json!({"iss": null}))).await,
        Err(TokenRejection::WrongIssuer)
    );
    assert_eq!(
        v.verify(&sign(json!({"aud": "other"}))).await,
        Err(TokenRejection::WrongAudience)
    );
    assert_eq!(
        v.verify(&sign(json!({"aud": ["other"]}))).await,
        Err(TokenRejection::WrongAudience)
    );
    assert_eq!(
        v.verify(&sign(json!({"aud": null}))).await,
        Err(TokenRejection::WrongAudience)
    );

    // Not configured: not checked.
    let open = verifier(hmac_settings(&[Algorithm::HS256])).await;
    assert!(
        open.verify(&sign(json!({"iss": "anyone", "aud": "anything"})))
            .await
            .is_ok()
    );
}

// ---------------------------------------------------------------- JWKS

#[tokio::test]
async fn rotated_key_is_fetched_when_its_kid_appears() {
    let idp = TestIdp::start().await;
    let old = TestKey::ec("old", Algorithm::ES256);
    idp.publish(&old);
    let mut settings = idp.settings(&[Algorithm::ES256]);
    settings.jwks_min_refresh_interval = Duration::ZERO;
    let v = verifier(settings).await;
    let c = with(claims(), json!({"iss": idp.issuer()}));
    assert!(v.verify(&old.sign(&c)).await.is_ok());
    assert_eq!(idp.jwks_hits(), 1);

    let new = TestKey::ec("new", Algorithm::ES256);
    idp.publish(&new);
    assert!(
        v.verify(&new.sign(&c)).await.is_ok(),
        "unknown kid triggers a refresh"
    );
    assert_eq!(idp.jwks_hits(), 2);
    assert!(v.verify(&new.sign(&c)).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2, "now cached");
    assert_eq!(v.jwks_fetch_count(), 2);
}

#[tokio::test]
async fn unknown_kids_cannot_hammer_the_jwks_endpoint() {
    let idp = TestIdp::start().await;
    let key = TestKey::ec("k1", Algorithm::ES256);
    idp.publish(&key);
    let mut settings = idp.settings(&[Algorithm::ES256]);
    settings.jwks_min_refresh_interval = Duration::from_secs(3600);
    let v = verifier(settings).await;
    assert_eq!(idp.jwks_hits(), 1, "loaded once at start");
    let c = with(claims(), json!({"iss": idp.issuer()}));
    for i in 0..50 {
        let garbage = key.renamed(&format!("garbage-{i}"), Algorithm::ES256);
        assert_eq!(
            v.verify(&garbage.sign(&c)).await,
            Err(TokenRejection::UnknownKey)
        );
    }
    assert_eq!(idp.jwks_hits(), 1, "refresh is rate-limited");

    // With the limit lifted, each unknown kid costs one fetch: the limit is what holds.
    let mut settings = idp.settings(&[Algorithm::ES256]);
    settings.jwks_min_refresh_interval = Duration::ZERO;
    let unlimited = verifier(settings).await;
    let before = idp.jwks_hits();
    for i in 0..3 {
        let garbage = key.renamed(&format!("garbage-{i}"), Algorithm::ES256);
        assert_eq!(
            unlimited.verify(&garbage.sign(&c)).await,
            Err(TokenRejection::UnknownKey)
        );
    }
    assert_eq!(idp.jwks_hits(), before + 3);
}

#[tokio::test]
async fn jwks_keys_not_for_signing_or_for_another_algorithm_are_ignored() {
    let idp = TestIdp::start().await;
    let key = TestKey::ec("good", Algorithm::ES256);
    idp.publish(&key);
    // The same public key, published for encryption under another kid.
    let mut enc = serde_json::to_value(key.jwk()).unwrap();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    idp.publish_raw_jwk(enc);
    // The same key declared for ES384 under another kid.
    let mut other_alg = serde_json::to_value(key.jwk()).unwrap();
    other_alg["kid"] = json!("es384");
    other_alg["alg"] = json!("ES384");
    idp.publish_raw_jwk(other_alg);
    // A symmetric key: a JWKS never supplies HMAC keys.
    idp.publish_raw_jwk(json!({"kty": "oct", "kid": "hmac", "k": base64_encode(SECRET)}));
    // Garbage that must not break the rest of the set.
    idp.publish_raw_jwk(json!({"kty": "RSA", "kid": "broken", "n": 5}));

    let mut settings = idp.settings(&[Algorithm::ES256, Algorithm::HS256]);
    settings.secret = Some(SecretBytes::new(b"x".repeat(32)));
    settings.jwks_min_refresh_interval = Duration::from_secs(3600);
    let v = verifier(settings).await;
    let c = with(claims(), json!({"iss": idp.issuer()}));
    assert!(v.verify(&key.sign(&c)).await.is_ok());
    assert_eq!(
        v.verify(&key.renamed("enc", Algorithm::ES256).sign(&c))
            .await,
        Err(TokenRejection::UnknownKey)
    );
    assert_eq!(
        v.verify(&key.renamed("es384", Algorithm::ES256).sign(&c))
            .await,
        Err(TokenRejection::UnknownKey)
    );
    let hs = testing::sign_hmac(Algorithm::HS256, SECRET, Some("hmac"), &c);
    assert_eq!(
        v.verify(&hs).await,
        Err(TokenRejection::BadSignature),
        "the oct key is never used"
    );
}

#[tokio::test]
async fn withdrawn_key_stops_working_after_the_max_age() {
    let idp = TestIdp::start().await;
    let key = TestKey::ed25519("ed");
    idp.publish(&key);
    let mut settings = idp.settings(&[Algorithm::EdDSA]);
    settings.jwks_min_refresh_interval = Duration::ZERO;
    settings.jwks_max_age = Duration::ZERO;
    let v = verifier(settings).await;
    let c = with(claims(), json!({"iss": idp.issuer()}));
    assert!(v.verify(&key.sign(&c)).await.is_ok());
    idp.withdraw("ed");
    assert_eq!(
        v.verify(&key.sign(&c)).await,
        Err(TokenRejection::UnknownKey)
    );
}

#[tokio::test]
async fn verified_jwts_are_remembered_by_hash_and_forgotten_when_keys_change() {
    let idp = TestIdp::start().await;
    let a = TestKey::ec("a", Algorithm::ES256);
    idp.publish(&a);
    let mut settings = idp.settings(&[Algorithm::ES256]);
    settings.jwks_min_refresh_interval = Duration::ZERO;
    settings.client_id = None;
    settings.client_secret = None;
    let v = verifier(settings).await;
    let c = with(claims(), json!({"iss": idp.issuer()}));
    let token_a = a.sign(&c);
    assert!(v.verify(&token_a).await.is_ok());
    assert!(v.verify(&token_a).await.is_ok());
    assert_eq!(v.cache_keys(), [TokenHash::of(&token_a)]);
    assert!(!format!("{:?}", v.cache_keys()).contains(&token_a));

    // The provider rotates: A is withdrawn, B appears. The first B token reloads the set,
    // which must also drop what A's tokens were remembered as.
    idp.withdraw("a");
    let b = TestKey::ec("b", Algorithm::ES256);
    idp.publish(&b);
    assert!(v.verify(&b.sign(&c)).await.is_ok());
    assert_eq!(v.verify(&token_a).await, Err(TokenRejection::UnknownKey));
}

// ---------------------------------------------------------------- discovery

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let idp = TestIdp::start().await;
    idp.set_advertised_issuer("https://evil.example");
    let e = TokenVerifier::new(idp.settings(&[Algorithm::RS256]))
        .await
        .unwrap_err();
    assert!(matches!(e, SettingsError::Discovery { .. }), "{e}");
    assert!(e.to_string().contains("evil.example"), "{e}");

    // Trailing slash on the configured issuer is tolerated.
    idp.set_advertised_issuer(&idp.issuer());
    let mut settings = idp.settings(&[Algorithm::RS256]);
    settings.oidc_issuer = Some(format!("{}/", idp.issuer()));
    assert!(TokenVerifier::new(settings).await.is_ok());
}

#[tokio::test]
async fn discovery_without_introspection_endpoint_is_an_error_when_credentials_are_set() {
    let idp = TestIdp::start().await;
    idp.set_advertise_introspection(false);
    let e = TokenVerifier::new(idp.settings(&[Algorithm::RS256]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("OAUTH2_INTROSPECTION_URL"), "{e}");
    let mut settings = idp.settings(&[Algorithm::RS256]);
    settings.client_id = None;
    settings.client_secret = None;
    let v = verifier(settings).await;
    assert_eq!(v.introspection_url(), None);
}

#[tokio::test]
async fn unreachable_issuer_fails_start_up_with_a_clear_error() {
    let port = closed_port().await;
    let settings = TokenSettings {
        algorithms: vec![Algorithm::RS256],
        oidc_issuer: Some(format!("http://127.0.0.1:{port}")),
        ..TokenSettings::default()
    };
    let e = TokenVerifier::new(settings).await.unwrap_err();
    assert!(e.to_string().contains("discovery failed"), "{e}");
}

// ---------------------------------------------------------------- token endpoint

#[tokio::test]
async fn tokens_from_the_client_credentials_endpoint_verify() {
    let idp = TestIdp::start().await;
    idp.publish(&rsa_key().renamed("rs", Algorithm::RS256));
    idp.set_token_claims(json!({"tenant": "acme", "scope": "reader writer", "aud": "neurallog"}));
    let mut settings = idp.settings(&[Algorithm::RS256]);
    settings.audience = Some("neurallog".into());
    let v = verifier(settings).await;

    let http = reqwest::Client::new();
    for format in ["jwt", "opaque"] {
        let answer: Value = http
            .post(idp.token_url())
            .basic_auth(CLIENT_ID, Some(url_encode(CLIENT_SECRET)))
            .form(&[
                ("grant_type", "client_credentials"),
                ("token_format", format),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["access_token"].as_str().unwrap();
        let id = v
            .verify(token)
            .await
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(id.subject, CLIENT_ID);
        assert_eq!(id.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
        assert_eq!(id.roles, ["reader", "writer"], "roles from scope");
        let method = if format == "jwt" {
            TokenMethod::Jwt
        } else {
            TokenMethod::Introspection
        };
        assert_eq!(id.method, method);
    }
    assert_eq!(idp.token_hits(), 2);
    assert_eq!(
        idp.introspection_hits(),
        1,
        "only the opaque token was introspected"
    );
}

// ---------------------------------------------------------------- introspection

fn introspection_settings(idp: &TestIdp) -> TokenSettings {
    TokenSettings {
        introspection_url: Some(idp.introspection_url()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(SecretBytes::new(CLIENT_SECRET)),
        ..TokenSettings::default()
    }
}

#[tokio::test]
async fn introspection_results_are_cached_by_token_hash() {
    let idp = TestIdp::start().await;
    let token = "opaque-token-0123456789";
    idp.add_opaque_token(
        token,
        json!({
            "sub": "svc", "tenant": "acme", "role": "writer", "exp": now() + 600
        }),
    );
    let v = verifier(introspection_settings(&idp)).await;
    let id = v.verify(token).await.unwrap();
    assert_eq!(id.subject, "svc");
    assert_eq!(id.roles, ["writer"]);
    assert_eq!(id.method, TokenMethod::Introspection);
    for _ in 0..5 {
        assert_eq!(v.verify(token).await.unwrap(), id);
    }
    assert_eq!(idp.introspection_hits(), 1, "answers are cached");
    assert_eq!(v.introspection_call_count(), 1);
    assert_eq!(
        idp.introspected_tokens(),
        [token],
        "the provider got the token itself"
    );

    let keys = v.cache_keys();
    assert_eq!(keys, [TokenHash::of(token)]);
    let hex = keys[0].to_hex();
    assert_eq!(hex.len(), 64);
    assert!(!hex.contains(token) && !format!("{keys:?}").contains(token));
    assert!(!format!("{v:?}").contains(token));
    assert!(!format!("{v:?}").contains(CLIENT_SECRET), "{v:?}");
}

#[tokio::test]
async fn inactive_and_unknown_tokens_are_refused_and_briefly_remembered() {
    let idp = TestIdp::start().await;
    idp.add_opaque_token("revoked", json!({"active": false, "sub": "x"}));
    idp.add_opaque_token("expired", json!({"sub": "x", "exp": now() - 3600}));
    let v = verifier(introspection_settings(&idp)).await;
    assert_eq!(v.verify("revoked").await, Err(TokenRejection::Inactive));
    assert_eq!(
        v.verify("never-issued").await,
        Err(TokenRejection::Inactive)
    );
    assert_eq!(v.verify("expired").await, Err(TokenRejection::Expired));
    assert_eq!(idp.introspection_hits(), 3);
    assert_eq!(v.verify("revoked").await, Err(TokenRejection::Inactive));
    assert_eq!(
        v.verify("never-issued").await,
        Err(TokenRejection::Inactive)
    );
    assert_eq!(
        idp.introspection_hits(),
        3,
        "negative answers are cached too"
    );

    // With no negative caching every refusal asks again: the cache is what saved the calls.
    let mut settings = introspection_settings(&idp);
    settings.introspection_negative_ttl = Duration::ZERO;
    let uncached = verifier(settings).await;
    assert_eq!(
        uncached.verify("revoked").await,
        Err(TokenRejection::Inactive)
    );
    assert_eq!(
        uncached.verify("revoked").await,
        Err(TokenRejection::Inactive)
    );
    assert_eq!(idp.introspection_hits(), 5);
}

#[tokio::test]
async fn token_already_expired_is_not_cached_as_valid() {
    let idp = TestIdp::start().await;
    // Active but its exp is within the leeway: accepted, but not cached (it has no life left).
    idp.add_opaque_token("last-second", json!({"sub": "x", "exp": now() - 1}));
    let v = verifier(introspection_settings(&idp)).await;
    assert!(v.verify("last-second").await.is_ok());
    assert!(v.verify("last-second").await.is_ok());
    assert_eq!(idp.introspection_hits(), 2);
    assert!(v.cache_keys().is_empty());
}

#[tokio::test]
async fn only_introspection_configured_sends_jwts_to_the_provider() {
    let idp = TestIdp::start().await;
    let jwt = testing::sign_hmac(Algorithm::HS256, SECRET, None, &claims());
    idp.add_opaque_token(&jwt, json!({"sub": "from-idp"}));
    let v = verifier(introspection_settings(&idp)).await;
    assert!(!v.jwt_enabled());
    assert_eq!(v.verify(&jwt).await.unwrap().subject, "from-idp");
}

#[tokio::test]
async fn wrong_client_credentials_are_an_outage_not_a_pass() {
    let idp = TestIdp::start().await;
    idp.add_opaque_token("tok", json!({"sub": "x"}));
    let mut settings = introspection_settings(&idp);
    settings.client_secret = Some(SecretBytes::new("wrong"));
    let v = verifier(settings).await;
    assert_eq!(v.verify("tok").await, Err(TokenRejection::Unavailable));
    assert_eq!(v.verify("tok").await, Err(TokenRejection::Unavailable));
    assert_eq!(idp.introspection_hits(), 2, "outages are not cached");
}

// ---------------------------------------------------------------- outages

#[tokio::test]
async fn provider_down_is_unavailable() {
    let idp = TestIdp::start().await;
    let key = TestKey::ec("k", Algorithm::ES256);
    idp.publish(&key);
    idp.add_opaque_token("tok", json!({"sub": "x"}));
    let mut settings = idp.settings(&[Algorithm::ES256]);
    settings.jwks_min_refresh_interval = Duration::ZERO;
    let v = verifier(settings).await;
    let c = with(claims(), json!({"iss": idp.issuer()}));

    idp.set_failing(true);
    assert_eq!(v.verify("tok").await, Err(TokenRejection::Unavailable));
    let rotated = key.renamed("rotated", Algorithm::ES256);
    assert_eq!(
        v.verify(&rotated.sign(&c)).await,
        Err(TokenRejection::Unavailable)
    );
    assert!(
        v.verify(&key.sign(&c)).await.is_ok(),
        "cached keys keep working"
    );
    idp.set_failing(false);

    idp.stop().await;
    assert_eq!(v.verify("tok").await, Err(TokenRejection::Unavailable));
    assert_eq!(
        v.verify(&rotated.sign(&c)).await,
        Err(TokenRejection::Unavailable)
    );
    assert!(
        v.verify(&key.sign(&c)).await.is_ok(),
        "cached keys keep working"
    );
}

#[tokio::test]
async fn provider_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections and holds them open without a byte of answer.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let settings = TokenSettings {
        introspection_url: Some(format!("http://{addr}/introspect").parse().unwrap()),
        client_id: Some("c".into()),
        client_secret: Some(SecretBytes::new("s")),
        http_timeout: Duration::from_millis(300),
        ..TokenSettings::default()
    };
    let v = verifier(settings).await;
    let result = tokio::time::timeout(Duration::from_secs(30), v.verify("tok")).await;
    assert_eq!(
        result.expect("the client timeout fires first"),
        Err(TokenRejection::Unavailable)
    );
    hold.abort();
}

// ---------------------------------------------------------------- settings from variables

#[tokio::test]
async fn settings_from_variables_reach_a_working_verifier() {
    let idp = TestIdp::start().await;
    let key = TestKey::ec("k", Algorithm::ES384);
    idp.publish(&key);
    let dir = std::env::temp_dir().join(format!("neurallog-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_path = dir.join("key.pem");
    let rsa = rsa_key();
    std::fs::write(&pem_path, rsa.public_pem()).unwrap();
    let vars = [
        ("JWT_ALGORITHMS", "ES384, RS256".to_owned()),
        ("JWT_PUBLIC_KEY", pem_path.display().to_string()),
        ("OIDC_ISSUER_URL", idp.issuer()),
        ("JWT_AUDIENCE", "neurallog".to_owned()),
        ("JWT_TENANT_CLAIM", "org".to_owned()),
        ("OAUTH2_CLIENT_ID", CLIENT_ID.to_owned()),
        ("OAUTH2_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
    ];
    let get = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let settings = TokenSettings::from_env(&get).unwrap().unwrap();
    let v = verifier(settings).await;
    let c = json!({"sub": "bob", "org": "team-a", "aud": "neurallog", "iss": idp.issuer(), "exp": now() + 60});
    assert_eq!(
        v.verify(&key.sign(&c))
            .await
            .unwrap()
            .tenant
            .unwrap()
            .as_str(),
        "team-a"
    );
    assert_eq!(
        v.verify(&rsa.sign(&c)).await.unwrap().subject,
        "bob",
        "PEM key from a file"
    );
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------- helpers

async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("test helper");
    listener.local_addr().expect("test helper").port()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("test helper")
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // The signature the library itself would make, via a token over the same bytes.
    let _ = (key, msg);
    let token = jsonwebtoken::crypto::sign(
        msg,
        &jsonwebtoken::EncodingKey::from_secret(key).expect("test helper"),
        Algorithm::HS256,
    )
    .expect("test helper");
    base64_decode(&token)
}
