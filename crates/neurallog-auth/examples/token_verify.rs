//! Cost of one `TokenVerifier::verify` per algorithm: a token seen for the first time (full
//! signature check) and a token seen again (answered from the cache by its hash); and of a
//! cached introspection answer, against the test identity provider on 127.0.0.1.
//!
//! `cargo run -p neurallog-auth --features testsuite --example token_verify`

use std::time::Instant;

use neurallog_auth::testing::{self, CLIENT_ID, CLIENT_SECRET, TestIdp, TestKey, now};
use neurallog_auth::{Algorithm, SecretBytes, TokenSettings, TokenVerifier};
use serde_json::json;

const ROUNDS: u32 = 2_000;
/// Distinct tokens per algorithm for the uncached figure (each must be signed first).
const FRESH: usize = 200;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let claims =
        json!({"sub": "bench", "tenant": "acme", "roles": ["writer"], "exp": now() + 3600});
    let rsa = TestKey::rsa("rs", Algorithm::RS256);
    let keys = [
        rsa.clone(),
        rsa.renamed("ps", Algorithm::PS256),
        TestKey::ec("es", Algorithm::ES256),
        TestKey::ec("es384", Algorithm::ES384),
        TestKey::ed25519("ed"),
    ];

    let hmac = TokenVerifier::new(TokenSettings {
        algorithms: vec![Algorithm::HS256],
        secret: Some(SecretBytes::new(SECRET)),
        ..TokenSettings::default()
    })
    .await?;
    let fresh: Vec<String> = (0..FRESH)
        .map(|i| testing::sign_hmac(Algorithm::HS256, SECRET, None, &with_jti(&claims, i)))
        .collect();
    report(
        "HS256 first",
        FRESH as u32,
        measure_fresh(&hmac, &fresh).await,
    );
    report(
        "HS256 again",
        ROUNDS,
        measure(&hmac, &fresh[0], ROUNDS).await,
    );

    for key in &keys {
        let v = TokenVerifier::new(TokenSettings {
            algorithms: vec![key.alg],
            public_key_pem: Some(key.public_pem().to_owned()),
            ..TokenSettings::default()
        })
        .await?;
        let fresh: Vec<String> = (0..FRESH)
            .map(|i| key.sign(&with_jti(&claims, i)))
            .collect();
        let name = format!("{:?}", key.alg);
        report(
            &format!("{name} first"),
            FRESH as u32,
            measure_fresh(&v, &fresh).await,
        );
        report(
            &format!("{name} again"),
            ROUNDS,
            measure(&v, &fresh[0], ROUNDS).await,
        );
    }

    let idp = TestIdp::start().await;
    idp.publish(&keys[2]);
    idp.add_opaque_token("opaque-bench", json!({"sub": "bench", "exp": now() + 3600}));
    let mut settings = idp.settings(&[Algorithm::ES256]);
    settings.client_id = Some(CLIENT_ID.into());
    settings.client_secret = Some(SecretBytes::new(CLIENT_SECRET));
    let v = TokenVerifier::new(settings).await?;
    let token = keys[2].sign(&json!({"sub": "bench", "iss": idp.issuer(), "exp": now() + 3600}));
    report(
        "ES256 (JWKS, cached)",
        ROUNDS,
        measure(&v, &token, ROUNDS).await,
    );
    report(
        "introspection (cached)",
        ROUNDS,
        measure(&v, "opaque-bench", ROUNDS).await,
    );
    println!(
        "jwks fetches: {}, introspection calls: {}",
        idp.jwks_hits(),
        idp.introspection_hits()
    );
    Ok(())
}

fn with_jti(claims: &serde_json::Value, i: usize) -> serde_json::Value {
    let mut c = claims.clone();
    c["jti"] = json!(i);
    c
}

async fn measure_fresh(v: &TokenVerifier, tokens: &[String]) -> std::time::Duration {
    let start = Instant::now();
    for token in tokens {
        std::hint::black_box(v.verify(token).await.expect("token verifies"));
    }
    start.elapsed()
}

async fn measure(v: &TokenVerifier, token: &str, rounds: u32) -> std::time::Duration {
    v.verify(token).await.expect("token verifies");
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(v.verify(token).await.expect("token verifies"));
    }
    start.elapsed()
}

fn report(name: &str, rounds: u32, total: std::time::Duration) {
    let per = total / rounds;
    println!(
        "{name:<24} {:>8.1} µs/verify  {:>9.0} verifies/s",
        per.as_secs_f64() * 1e6,
        1.0 / per.as_secs_f64()
    );
}
