//! A real identity provider for tests (feature `testsuite`): an HTTP server on 127.0.0.1
//! serving OIDC discovery, a JWKS, a client-credentials token endpoint and RFC 7662
//! introspection, with keys generated at run time. It counts the requests it gets, so tests
//! can check caching and rate limits from the outside.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use crate::settings::TokenSettings;

/// A signing key with its public forms (PEM and JWK).
#[derive(Clone)]
pub struct TestKey {
    /// Key id published in the JWKS and put in token headers.
    pub kid: String,
    /// The algorithm the key signs with.
    pub alg: Algorithm,
    encoding: EncodingKey,
    public_pem: String,
    jwk: Jwk,
}

impl TestKey {
    /// A fresh 2048-bit RSA key for `alg` (RS*/PS*).
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        use rsa::Generate;
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::PrivateKey::generate();
        let private_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode rsa key");
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encode rsa public key");
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("rsa pem");
        Self::assemble(kid, alg, encoding, public_pem, None)
    }

    /// A fresh P-256 (`ES256`) or P-384 (`ES384`) key.
    pub fn ec(kid: &str, alg: Algorithm) -> Self {
        let curve = match alg {
            Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            _ => &rcgen::PKCS_ECDSA_P256_SHA256,
        };
        let pair = rcgen::KeyPair::generate_for(curve).expect("generate ec key");
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("ec pem");
        // Uncompressed SEC1 point: 0x04, then x and y of equal length.
        let point = pair.public_key_raw();
        let (x, y) = point[1..].split_at((point.len() - 1) / 2);
        let crv = if alg == Algorithm::ES384 {
            "P-384"
        } else {
            "P-256"
        };
        let jwk = json!({"kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)});
        Self::assemble(kid, alg, encoding, pair.public_key_pem(), Some(jwk))
    }

    /// A fresh Ed25519 (`EdDSA`) key.
    pub fn ed25519(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("generate ed key");
        let encoding = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).expect("ed pem");
        let x = URL_SAFE_NO_PAD.encode(pair.public_key_raw());
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
        Self::assemble(
            kid,
            Algorithm::EdDSA,
            encoding,
            pair.public_key_pem(),
            Some(jwk),
        )
    }

    /// `public_jwk`: the key parameters when the library cannot derive them from the private
    /// key (EC and Ed25519 keys in the PKCS#8 form `rcgen` writes).
    fn assemble(
        kid: &str,
        alg: Algorithm,
        encoding: EncodingKey,
        public_pem: String,
        public_jwk: Option<Value>,
    ) -> Self {
        let mut jwk = match public_jwk {
            Some(v) => serde_json::from_value::<Jwk>(v).expect("jwk parameters"),
            None => Jwk::from_encoding_key(&encoding, alg).expect("jwk from key"),
        };
        jwk.common.key_algorithm = Some(alg.into());
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            public_pem,
            jwk,
        }
    }

    /// The same key material under another key id and algorithm of its family (RSA keys
    /// serve RS256 to PS512), so tests need not generate a key per algorithm.
    pub fn renamed(&self, kid: &str, alg: Algorithm) -> Self {
        let mut jwk = self.jwk.clone();
        jwk.common.key_id = None;
        let params = serde_json::to_value(&jwk).expect("jwk json");
        Self::assemble(
            kid,
            alg,
            self.encoding.clone(),
            self.public_pem.clone(),
            Some(params),
        )
    }

    /// The SPKI PEM of the public key.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The public JWK (`kid`, `alg`, `use: sig`).
    pub fn jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// A token over `claims` with this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with_header(header, claims)
    }

    /// A token over `claims` with the given header, signed by this key.
    pub fn sign_with_header(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign token")
    }
}

/// An HS* token signed with `secret` (any bytes, including a public key's PEM text).
pub fn sign_hmac(alg: Algorithm, secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_secret(secret).expect("hmac key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign token")
}

/// A compact token built from raw JSON header and claims and a raw signature, for attacks
/// that no library would sign (`alg: none`, tampered payloads).
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let s = URL_SAFE_NO_PAD.encode(signature);
    format!("{h}.{c}.{s}")
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The provider's state, shared with its handlers.
struct IdpState {
    base: String,
    advertised_issuer: Mutex<String>,
    advertise_introspection: Mutex<bool>,
    keys: Mutex<Vec<TestKey>>,
    extra_jwks: Mutex<Vec<Value>>,
    opaque: Mutex<HashMap<String, Value>>,
    token_claims: Mutex<Value>,
    client_id: String,
    client_secret: String,
    failing: Mutex<bool>,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
    token_hits: AtomicUsize,
    introspection_hits: AtomicUsize,
    introspected: Mutex<Vec<String>>,
    issued: AtomicUsize,
}

/// The running provider. Dropping it leaves the server running until the test's runtime ends;
/// [`TestIdp::stop`] takes it down for outage tests.
pub struct TestIdp {
    addr: SocketAddr,
    state: Arc<IdpState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Client id the provider accepts.
pub const CLIENT_ID: &str = "neurallog-server";
/// Client secret the provider accepts.
pub const CLIENT_SECRET: &str = "introspection secret: with spaces & symbols";

impl TestIdp {
    /// Starts the provider on 127.0.0.1 with an ephemeral port and no keys.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind idp");
        let addr = listener.local_addr().expect("idp address");
        let base = format!("http://{addr}");
        let state = Arc::new(IdpState {
            base: base.clone(),
            advertised_issuer: Mutex::new(base),
            advertise_introspection: Mutex::new(true),
            keys: Mutex::new(Vec::new()),
            extra_jwks: Mutex::new(Vec::new()),
            opaque: Mutex::new(HashMap::new()),
            token_claims: Mutex::new(json!({})),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            failing: Mutex::new(false),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            introspection_hits: AtomicUsize::new(0),
            introspected: Mutex::new(Vec::new()),
            issued: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            state,
            shutdown: Some(tx),
            task,
        }
    }

    /// The issuer URL (also the base URL), e.g. `http://127.0.0.1:41234`.
    pub fn issuer(&self) -> String {
        self.state.base.clone()
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> Url {
        Url::parse(&format!("{}/jwks", self.state.base)).expect("jwks url")
    }

    /// The token endpoint.
    pub fn token_url(&self) -> Url {
        Url::parse(&format!("{}/token", self.state.base)).expect("token url")
    }

    /// The introspection endpoint.
    pub fn introspection_url(&self) -> Url {
        Url::parse(&format!("{}/introspect", self.state.base)).expect("introspection url")
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes `key` in the JWKS and makes it the token endpoint's signing key if it is the
    /// first.
    pub fn publish(&self, key: &TestKey) {
        lock(&self.state.keys).push(key.clone());
    }

    /// Removes the key with `kid` from the JWKS.
    pub fn withdraw(&self, kid: &str) {
        lock(&self.state.keys).retain(|k| k.kid != kid);
    }

    /// Adds a raw JSON entry to the JWKS (malformed or hostile keys).
    pub fn publish_raw_jwk(&self, jwk: Value) {
        lock(&self.state.extra_jwks).push(jwk);
    }

    /// Registers an opaque token and the introspection answer it gets (`active` is added as
    /// `true` unless present).
    pub fn add_opaque_token(&self, token: &str, mut answer: Value) {
        if answer.get("active").is_none() {
            answer["active"] = json!(true);
        }
        lock(&self.state.opaque).insert(token.to_owned(), answer);
    }

    /// Extra claims put into every token the token endpoint issues.
    pub fn set_token_claims(&self, claims: Value) {
        *lock(&self.state.token_claims) = claims;
    }

    /// Makes discovery advertise another issuer than the provider's own URL.
    pub fn set_advertised_issuer(&self, issuer: &str) {
        *lock(&self.state.advertised_issuer) = issuer.to_owned();
    }

    /// Whether discovery advertises the introspection endpoint (default yes).
    pub fn set_advertise_introspection(&self, on: bool) {
        *lock(&self.state.advertise_introspection) = on;
    }

    /// While set, the JWKS and introspection endpoints answer 503.
    pub fn set_failing(&self, failing: bool) {
        *lock(&self.state.failing) = failing;
    }

    /// Requests served so far, per endpoint.
    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// JWKS requests served so far.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// Token requests served so far.
    pub fn token_hits(&self) -> usize {
        self.state.token_hits.load(Ordering::SeqCst)
    }

    /// Introspection requests served so far.
    pub fn introspection_hits(&self) -> usize {
        self.state.introspection_hits.load(Ordering::SeqCst)
    }

    /// The tokens that were introspected, in order.
    pub fn introspected_tokens(&self) -> Vec<String> {
        lock(&self.state.introspected).clone()
    }

    /// Settings that point at this provider through OIDC discovery, accept `algorithms`, and
    /// carry the introspection client credentials. Refresh limits are the defaults.
    pub fn settings(&self, algorithms: &[Algorithm]) -> TokenSettings {
        TokenSettings {
            algorithms: algorithms.to_vec(),
            oidc_issuer: Some(self.issuer()),
            client_id: Some(CLIENT_ID.into()),
            client_secret: Some(crate::SecretBytes::new(CLIENT_SECRET)),
            http_timeout: Duration::from_secs(5),
            ..TokenSettings::default()
        }
    }

    /// Takes the provider down: stops accepting, closes connections, waits for the server to
    /// end. Later calls to it fail to connect.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn discovery(State(s): State<Arc<IdpState>>) -> Json<Value> {
    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let mut doc = json!({
        "issuer": *lock(&s.advertised_issuer),
        "jwks_uri": format!("{}/jwks", s.base),
        "token_endpoint": format!("{}/token", s.base),
        "grant_types_supported": ["client_credentials"],
    });
    if *lock(&s.advertise_introspection) {
        doc["introspection_endpoint"] = json!(format!("{}/introspect", s.base));
    }
    Json(doc)
}

async fn jwks(State(s): State<Arc<IdpState>>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if *lock(&s.failing) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut keys: Vec<Value> = lock(&s.keys)
        .iter()
        .map(|k| serde_json::to_value(k.jwk()).unwrap_or(Value::Null))
        .collect();
    keys.extend(lock(&s.extra_jwks).iter().cloned());
    Json(json!({ "keys": keys })).into_response()
}

/// Checks HTTP Basic client credentials (form-encoded id and secret, RFC 6749 §2.3.1).
fn client_authenticated(s: &IdpState, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return false;
    };
    let unescape = |v: &str| -> String {
        url::form_urlencoded::parse(format!("x={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    unescape(id) == s.client_id && unescape(secret) == s.client_secret
}

async fn token(
    State(s): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.token_hits.fetch_add(1, Ordering::SeqCst);
    if !client_authenticated(&s, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let mut claims = json!({
        "iss": s.base,
        "sub": s.client_id,
        "iat": now(),
        "exp": now() + 300,
    });
    if let (Some(obj), Value::Object(extra)) = (claims.as_object_mut(), &*lock(&s.token_claims)) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    let access_token = if form.get("token_format").map(String::as_str) == Some("opaque") {
        let n = s.issued.fetch_add(1, Ordering::SeqCst);
        let token = format!("opaque-{n}-{}", URL_SAFE_NO_PAD.encode(now().to_be_bytes()));
        let mut answer = claims.clone();
        answer["active"] = json!(true);
        lock(&s.opaque).insert(token.clone(), answer);
        token
    } else {
        let Some(key) = lock(&s.keys).first().cloned() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "no signing key").into_response();
        };
        key.sign(&claims)
    };
    Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300}))
        .into_response()
}

async fn introspect(
    State(s): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.introspection_hits.fetch_add(1, Ordering::SeqCst);
    if *lock(&s.failing) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if !client_authenticated(&s, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let Some(token) = form.get("token") else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    };
    lock(&s.introspected).push(token.clone());
    let answer = lock(&s.opaque)
        .get(token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    Json(answer).into_response()
}
