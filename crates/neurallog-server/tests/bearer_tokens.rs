//! Bearer tokens end to end: a real identity provider (OIDC discovery, JWKS, token and
//! introspection endpoints on 127.0.0.1) and a real server configured against it. Every
//! refusal is the same 401 a wrong API key gets; tokens act only within their tenant, role and
//! log patterns.

use neurallog_auth::testing::{TestIdp, TestKey, now, raw_token, sign_hmac};
use neurallog_auth::{Algorithm, TokenSettings};
use neurallog_server::secret::Secret;
use neurallog_server::{Server, ServerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "bearer-test-admin-key-0123456789-0123456789";
const SYSTEM: &str = "bearer-test-system-key-0123456789-0123456789";

struct Env {
    server: Server,
    idp: TestIdp,
    key: TestKey,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut TokenSettings)) -> Self {
        let idp = TestIdp::start().await;
        let key = TestKey::rsa("k1", Algorithm::RS256);
        idp.publish(&key);
        let mut settings = idp.settings(&[Algorithm::RS256]);
        settings.audience = Some("neurallog".into());
        tweak(&mut settings);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::for_dir(dir.path());
        config.api_key = Some(Secret::new(ADMIN));
        config.system_key = Some(Secret::new(SYSTEM));
        config.tokens = Some(settings);
        let server = Server::start(config).await.expect("start");
        let env = Self {
            server,
            idp,
            key,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        // Two tenants with data: the implicit one and "acme".
        let (s, b) = env
            .send("POST", "/api/tenants", SYSTEM, Some(json!({"id": "acme"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        env
    }

    fn claims(&self, tenant: &str, roles: &[&str]) -> Value {
        json!({
            "iss": self.idp.issuer(),
            "aud": "neurallog",
            "sub": "alice",
            "tenant": tenant,
            "roles": roles,
            "exp": now() + 600,
            "iat": now(),
        })
    }

    fn token(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("http://{}{path}", self.server.addr());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, url).bearer_auth(bearer);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("send");
        let status = resp.status();
        let www = resp.headers().contains_key("www-authenticate");
        let body: Value = resp.json().await.expect("json body");
        if status == StatusCode::UNAUTHORIZED {
            assert!(www, "401 carries WWW-Authenticate");
            assert_eq!(body["error"], "unauthorized");
            assert_eq!(body["message"], "missing or invalid credentials");
        }
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_acts_within_its_tenant_and_roles() {
    let env = Env::start().await;
    let writer = env.token(&env.claims("acme", &["writer"]));
    let (s, b) = env
        .send(
            "POST",
            "/logs/app",
            &writer,
            Some(json!({"msg": "from a token"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // A writer cannot read or delete.
    let (s, _) = env.send("GET", "/logs/app", &writer, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env.send("DELETE", "/logs/app", &writer, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A reader of acme sees acme's event.
    let reader = env.token(&env.claims("acme", &["reader"]));
    let (s, b) = env.send("GET", "/logs/app", &reader, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["entries"].as_array().map(Vec::len), Some(1), "{b}");
    // The default tenant's admin key does not see acme's data, and an acme token cannot reach
    // the default tenant through X-Tenant-ID.
    let (s, b) = env.send("GET", "/logs/app", ADMIN, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["entries"].as_array().map(Vec::len), Some(0), "{b}");
    let url = format!("http://{}/logs/app", env.server.addr());
    let r = env
        .http
        .get(url)
        .bearer_auth(&reader)
        .header("X-Tenant-ID", "default")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_patterns_in_a_token_narrow_its_reach() {
    let env = Env::start().await;
    let mut c = env.claims("acme", &["reader", "writer"]);
    c["logs"] = json!(["app-*"]);
    let t = env.token(&c);
    let (s, _) = env
        .send("POST", "/logs/app-web", &t, Some(json!({"n": 1})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = env
        .send("POST", "/logs/billing", &t, Some(json!({"n": 1})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env.send("GET", "/logs/billing", &t, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_invalid_tokens_get_the_same_401_as_a_wrong_key() {
    let env = Env::start().await;
    let good = env.claims("acme", &["admin"]);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    let mut early = good.clone();
    early["nbf"] = json!(now() + 3600);
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut system = good.clone();
    system["roles"] = json!(["system"]);
    let signed = env.token(&good);
    let mut parts: Vec<&str> = signed.split('.').collect();
    let tampered_payload = base64_url(
        &serde_json::to_vec(&{
            let mut c = good.clone();
            c["tenant"] = json!("default");
            c
        })
        .expect("json"),
    );
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    let cases = [
        (
            "alg none",
            raw_token(&json!({"alg": "none", "typ": "JWT"}), &good, b""),
        ),
        (
            "HS256 signed with the RSA public key",
            sign_hmac(
                Algorithm::HS256,
                env.key.public_pem().as_bytes(),
                Some("k1"),
                &good,
            ),
        ),
        ("expired", env.token(&expired)),
        ("not yet valid", env.token(&early)),
        ("wrong issuer", env.token(&wrong_iss)),
        ("wrong audience", env.token(&wrong_aud)),
        ("tampered payload", tampered),
        ("garbage", "not.a.token".to_owned()),
        (
            "unknown key id",
            TestKey::rsa("k2", Algorithm::RS256).sign(&good),
        ),
    ];
    for (what, token) in cases {
        let (s, b) = env.send("GET", "/logs/app", &token, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {b}");
    }
    let (s, _) = env
        .send("GET", "/logs/app", "nl_000000000000_wrong", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Cross-tenant permissions never come from a token: a token claiming the system role
    // is refused on tenant administration.
    let (s, _) = env
        .send(
            "POST",
            "/api/tenants",
            &env.token(&system),
            Some(json!({"id": "evil"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a token must not create tenants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_and_inactive_ones_refused() {
    let env = Env::start().await;
    env.idp.add_opaque_token(
        "opaque-good-token",
        json!({"active": true, "sub": "svc", "tenant": "acme", "roles": "reader",
            "aud": "neurallog", "iss": env.idp.issuer(), "exp": now() + 600}),
    );
    env.idp
        .add_opaque_token("opaque-revoked", json!({"active": false}));
    let (s, b) = env
        .send("GET", "/logs/app", "opaque-good-token", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = env
        .send("GET", "/logs/app", "opaque-good-token", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(env.idp.introspection_hits(), 1, "the answer is cached");
    let (s, _) = env.send("GET", "/logs/app", "opaque-revoked", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The identity provider down: a token it would have to check is a 503, not a 401.
    env.idp.set_failing(true);
    let (s, b) = env
        .send("GET", "/logs/app", "opaque-never-seen", None)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["error"], "auth_unavailable");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
