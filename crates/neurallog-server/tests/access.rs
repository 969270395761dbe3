//! Attacks on authentication, authorisation, tenant isolation and the audit trail, each over
//! HTTP against a real server: every test is what an attacker would try, and fails if the
//! defence it targets breaks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use neurallog_core::TenantId;
use neurallog_server::secret::Secret;
use neurallog_server::{Server, ServerConfig};
use neurallog_storage::{EmbeddedStorage, Scope, Storage};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "bootstrap-admin-key-0123456789-0123456789";
const SYSTEM: &str = "system-key-0123456789-0123456789-0123456789";

struct T {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    store: Arc<EmbeddedStorage>,
    _dir: tempfile::TempDir,
}

impl T {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::for_dir(dir.path());
        config.api_key = Some(Secret::new(ADMIN));
        config.system_key = Some(Secret::new(SYSTEM));
        config.roles.insert(
            "shipper".into(),
            ["logs:write".parse().expect("perm")].into_iter().collect(),
        );
        let store =
            Arc::new(EmbeddedStorage::open_unencrypted(&dir.path().join("store")).expect("open"));
        let server = Server::start_on(config, store.clone())
            .await
            .expect("start");
        let base = format!("http://{}", server.addr());
        Self {
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            store,
            _dir: dir,
        }
    }

    fn rb(&self, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .timeout(Duration::from_secs(30));
        match key {
            Some(k) => rb.header("X-API-Key", k),
            None => rb,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = rb.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("json: {text}"));
        (status, body)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.rb(method, path, Some(key));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, key, None).await
    }

    async fn write(&self, key: &str, log: &str, body: Value) -> StatusCode {
        self.call(Method::POST, &format!("/logs/{log}"), key, Some(body))
            .await
            .0
    }

    async fn tenant(&self, id: &str) {
        let (s, b) = self
            .call(
                Method::POST,
                "/api/tenants",
                SYSTEM,
                Some(json!({"id": id})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    /// A new key; `extra` adds fields to the request body. Panics unless 201.
    async fn key(&self, creator: &str, role: &str, extra: Value) -> (String, String) {
        let mut body = json!({"name": format!("{role} key"), "role": role});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (s, b) = self
            .call(Method::POST, "/api/keys", creator, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        (
            b["id"].as_str().expect("id").into(),
            b["key"].as_str().expect("key").into(),
        )
    }

    fn raw(&self, request: &str) -> (u16, String) {
        let addr = self.server.as_ref().expect("running").addr();
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let out = String::from_utf8_lossy(&buf).into_owned();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    }
}

impl Drop for T {
    fn drop(&mut self) {
        self.server.take();
    }
}

fn assert_forbidden(s: StatusCode, b: &Value) {
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{b}"
    );
}

fn assert_unauthorized(s: StatusCode, b: &Value) {
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "{b}"
    );
}

#[tokio::test]
async fn a_key_of_one_tenant_never_reaches_another() {
    let t = T::start().await;
    t.tenant("acme").await;
    t.tenant("umbrella").await;
    let (_, a) = t.key(SYSTEM, "admin", json!({"tenant": "acme"})).await;
    let (_, b) = t.key(SYSTEM, "admin", json!({"tenant": "umbrella"})).await;
    assert_eq!(
        t.write(&b, "secrets", json!({"msg": "umbrella-only"}))
            .await,
        StatusCode::CREATED
    );
    assert_eq!(
        t.write(&a, "app", json!({"msg": "acme"})).await,
        StatusCode::CREATED
    );

    // Reading "the same" log name from tenant A sees A's space only.
    let (s, body) = t.get("/logs/secrets", &a).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(0), "{body}");
    let (_, body) = t.get("/logs", &a).await;
    assert_eq!(body["logs"], json!(["app"]));
    let (_, body) = t.get("/search?query=umbrella-only", &a).await;
    assert_eq!(body["results"].as_array().map(Vec::len), Some(0), "{body}");
    let (_, body) = t.get("/statistics", &a).await;
    assert_eq!(body["total"]["count"], 1, "{body}");

    // X-Tenant-ID cannot choose a tenant the credential lacks, whatever it names.
    for target in ["umbrella", "default", "nope", "UMBRELLA", "../umbrella", ""] {
        let (s, body) = t
            .send(
                t.rb(Method::GET, "/logs/secrets", Some(&a))
                    .header("X-Tenant-ID", target),
            )
            .await;
        assert_forbidden(s, &body);
    }
    // Its own tenant is fine.
    let (s, _) = t
        .send(
            t.rb(Method::GET, "/logs", Some(&a))
                .header("X-Tenant-ID", "acme"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // The bootstrap key of the default tenant does not reach a created tenant either.
    let (s, body) = t
        .send(
            t.rb(Method::GET, "/logs", Some(ADMIN))
                .header("X-Tenant-ID", "umbrella"),
        )
        .await;
    assert_forbidden(s, &body);

    // System principals choose any tenant but have no log access there.
    for (m, p) in [
        (Method::GET, "/logs"),
        (Method::GET, "/logs/secrets"),
        (Method::POST, "/logs/x"),
        (Method::GET, "/search"),
    ] {
        let (s, body) = t
            .send(
                t.rb(m, p, Some(SYSTEM))
                    .header("X-Tenant-ID", "umbrella")
                    .json(&json!({"a": 1})),
            )
            .await;
        assert_forbidden(s, &body);
    }
    // And only system principals manage tenants.
    for key in [a.as_str(), ADMIN] {
        let (s, body) = t
            .call(
                Method::POST,
                "/api/tenants",
                key,
                Some(json!({"id": "evil"})),
            )
            .await;
        assert_forbidden(s, &body);
        let (s, body) = t
            .call(Method::DELETE, "/api/tenants/umbrella", key, None)
            .await;
        assert_forbidden(s, &body);
        let (s, body) = t.get("/api/tenants", key).await;
        assert_forbidden(s, &body);
    }
    // Key management is per tenant too: A's admin neither lists nor revokes B's keys.
    let (_, keys) = t.get("/api/keys?tenant=umbrella", &a).await;
    assert_eq!(keys["error"], "forbidden");
    let (_, listed) = t.get("/api/keys?tenant=umbrella", SYSTEM).await;
    let b_id = listed["keys"][0]["id"].as_str().expect("id").to_owned();
    let (s, _) = t
        .call(Method::DELETE, &format!("/api/keys/{b_id}"), &a, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        t.write(&b, "secrets", json!({"still": "works"})).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn revoked_expired_and_rotated_keys_stop_working() {
    let t = T::start().await;
    let (id, k) = t.key(ADMIN, "reader", json!({})).await;
    assert_eq!(t.get("/logs", &k).await.0, StatusCode::OK);
    let (s, body) = t
        .call(Method::DELETE, &format!("/api/keys/{id}"), ADMIN, None)
        .await;
    assert_eq!(
        (s, body["revoked"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{body}"
    );
    let (s, body) = t.get("/logs", &k).await;
    assert_unauthorized(s, &body);
    let (s, _) = t
        .call(Method::DELETE, &format!("/api/keys/{id}"), ADMIN, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Expiry: a key that lives one second works, then stops (polled, no timing asserted).
    let (_, short) = t.key(ADMIN, "reader", json!({"expires_in": "1s"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = t.get("/logs", &short).await;
        if s == StatusCode::UNAUTHORIZED {
            assert_unauthorized(s, &body);
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(Instant::now() < deadline, "the expired key kept working");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Rotation with the default grace: both keys work.
    let (old_id, old) = t.key(ADMIN, "writer", json!({"logs": ["app-*"]})).await;
    let (s, rotated) = t
        .call(
            Method::POST,
            &format!("/api/keys/{old_id}/rotate"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["replaces"], old_id.as_str());
    assert_eq!(rotated["role"], "writer");
    assert_eq!(rotated["logs"], json!(["app-*"]));
    let new = rotated["key"].as_str().expect("key").to_owned();
    assert_eq!(
        t.write(&old, "app-1", json!({"a": 1})).await,
        StatusCode::CREATED
    );
    assert_eq!(
        t.write(&new, "app-1", json!({"a": 1})).await,
        StatusCode::CREATED
    );
    assert_eq!(
        t.write(&new, "billing", json!({"a": 1})).await,
        StatusCode::FORBIDDEN
    );
    // Rotating again with no grace: the key rotated away stops at once, the new one works.
    let new_id = rotated["id"].as_str().expect("id").to_owned();
    let (s, again) = t
        .call(
            Method::POST,
            &format!("/api/keys/{new_id}/rotate"),
            ADMIN,
            Some(json!({"grace": "0"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    let (s, body) = t
        .call(Method::POST, "/logs/app-1", &new, Some(json!({"a": 1})))
        .await;
    assert_unauthorized(s, &body);
    let newest = again["key"].as_str().expect("key");
    assert_eq!(
        t.write(newest, "app-1", json!({"a": 1})).await,
        StatusCode::CREATED
    );
    // Grace through the query parameter; a bad grace is refused and rotates nothing.
    let (s, body) = t
        .call(
            Method::POST,
            &format!(
                "/api/keys/{}/rotate?grace=forever",
                again["id"].as_str().expect("id")
            ),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grace"))
    );
    assert_eq!(
        t.write(newest, "app-1", json!({"a": 1})).await,
        StatusCode::CREATED
    );

    // Listing shows keys but never a secret or hash.
    let (_, listed) = t.get("/api/keys", ADMIN).await;
    let text = listed.to_string();
    assert!(!text.contains(newest) && !text.contains("hash"), "{text}");
    assert!(listed["keys"].as_array().is_some_and(|k| !k.is_empty()));
}

#[tokio::test]
async fn log_patterns_narrow_every_route() {
    let t = T::start().await;
    for log in ["app-web", "app-db", "billing"] {
        assert_eq!(
            t.write(ADMIN, log, json!({"msg": format!("needle in {log}")}))
                .await,
            StatusCode::CREATED
        );
    }
    let (_, billing) = t.get("/logs/billing", ADMIN).await;
    let billing_id = billing["entries"][0]["id"].as_str().expect("id").to_owned();
    let (_, k) = t.key(ADMIN, "reader", json!({"logs": ["app-*"]})).await;

    assert_eq!(t.get("/logs/app-web", &k).await.0, StatusCode::OK);
    for path in [
        "/logs/billing".to_owned(),
        format!("/logs/billing/{billing_id}"),
        "/logs/billing/statistics".into(),
        "/search?log_name=billing&query=needle".into(),
        "/search?log=billing".into(),
    ] {
        let (s, body) = t.get(&path, &k).await;
        assert_forbidden(s, &body);
    }
    let (_, listed) = t.get("/logs", &k).await;
    assert_eq!(listed["logs"], json!(["app-db", "app-web"]));
    let (_, found) = t.get("/search?query=needle", &k).await;
    let logs: Vec<&str> = found["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|h| h["logName"].as_str())
        .collect();
    assert_eq!(logs.len(), 2, "{found}");
    assert!(logs.iter().all(|l| l.starts_with("app-")), "{found}");
    let (_, stats) = t.get("/statistics", &k).await;
    assert_eq!(stats["total"]["count"], 2, "{stats}");
    assert!(!stats.to_string().contains("billing"));
    // A reader writes and deletes nothing, even on its own logs.
    assert_eq!(
        t.write(&k, "app-web", json!({"a": 1})).await,
        StatusCode::FORBIDDEN
    );
    let (s, body) = t.call(Method::DELETE, "/logs/app-web", &k, None).await;
    assert_forbidden(s, &body);
    let (_, still) = t.get("/statistics", ADMIN).await;
    assert_eq!(still["total"]["count"], 3);
}

#[tokio::test]
async fn no_key_grants_more_than_its_creator() {
    let t = T::start().await;
    let (_, reader) = t.key(ADMIN, "reader", json!({})).await;
    let (_, writer) = t.key(ADMIN, "writer", json!({})).await;
    let (_, shipper) = t.key(ADMIN, "shipper", json!({})).await;
    t.write(ADMIN, "app", json!({"a": 1})).await;

    let (s, body) = t.call(Method::DELETE, "/logs/app", &reader, None).await;
    assert_forbidden(s, &body);
    let (_, app) = t.get("/logs/app", ADMIN).await;
    let id = app["entries"][0]["id"].as_str().expect("id").to_owned();
    let (s, body) = t
        .call(Method::DELETE, &format!("/logs/app/{id}"), &reader, None)
        .await;
    assert_forbidden(s, &body);
    for creator in [&writer, &reader, &shipper] {
        let (s, body) = t
            .call(
                Method::POST,
                "/api/keys",
                creator,
                Some(json!({"name": "x", "role": "reader"})),
            )
            .await;
        assert_forbidden(s, &body);
        let (s, body) = t.get("/api/keys", creator).await;
        assert_forbidden(s, &body);
    }
    // The custom role does exactly what the config file says.
    assert_eq!(
        t.write(&shipper, "app", json!({"a": 2})).await,
        StatusCode::CREATED
    );
    assert_eq!(t.get("/logs/app", &shipper).await.0, StatusCode::FORBIDDEN);
    // An admin mints neither a system key nor a key of another tenant.
    let (s, body) = t
        .call(
            Method::POST,
            "/api/keys",
            ADMIN,
            Some(json!({"name": "x", "role": "system"})),
        )
        .await;
    assert_forbidden(s, &body);
    t.tenant("other").await;
    let (s, body) = t
        .call(
            Method::POST,
            "/api/keys",
            ADMIN,
            Some(json!({"name": "x", "role": "reader", "tenant": "other"})),
        )
        .await;
    assert_forbidden(s, &body);
    // A narrowed admin only hands out keys narrowed within its own patterns.
    let (_, narrow) = t.key(ADMIN, "admin", json!({"logs": ["app-*"]})).await;
    for logs in [
        json!(null),
        json!(["*"]),
        json!(["billing"]),
        json!(["app*"]),
    ] {
        let (s, body) = t
            .call(
                Method::POST,
                "/api/keys",
                &narrow,
                Some(json!({"name": "x", "role": "reader", "logs": logs})),
            )
            .await;
        assert_forbidden(s, &body);
    }
    t.key(&narrow, "reader", json!({"logs": ["app-web-*"]}))
        .await;
    // A system key holds no logs:*, so the admin cannot revoke or rotate one it did not make.
    let (sys_id, _) = t.key(SYSTEM, "system", json!({})).await;
    let (s, body) = t
        .call(Method::DELETE, &format!("/api/keys/{sys_id}"), ADMIN, None)
        .await;
    assert_forbidden(s, &body);
    let (s, body) = t
        .call(
            Method::POST,
            &format!("/api/keys/{sys_id}/rotate"),
            ADMIN,
            None,
        )
        .await;
    assert_forbidden(s, &body);
}

#[tokio::test]
async fn unknown_key_ids_and_wrong_secrets_look_the_same() {
    let t = T::start().await;
    let (id, key) = t.key(ADMIN, "admin", json!({})).await;
    let wrong_secret = format!("nl_{id}_{}", "A".repeat(43));
    let unknown_id = format!("nl_{}_{}", "0".repeat(12), &key[16..]);
    let mut answers = Vec::new();
    for k in [
        wrong_secret.as_str(),
        unknown_id.as_str(),
        "nl_junk",
        "garbage",
        &key[..key.len() - 1],
    ] {
        for _ in 0..2 {
            let resp = t
                .rb(Method::GET, "/logs", Some(k))
                .send()
                .await
                .expect("send");
            let status = resp.status();
            let mut headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .filter(|(n, _)| !matches!(n.as_str(), "date" | "x-request-id"))
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            headers.sort();
            let body = resp.text().await.expect("body");
            answers.push((status, headers, body));
        }
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert!(answers[0].1.iter().any(|(n, _)| n == "www-authenticate"));
    for a in &answers {
        assert_eq!(a, &answers[0]);
    }
    // Brute force: many guesses learn nothing new and the real key keeps working.
    for i in 0..200 {
        let guess = format!("nl_{id}_{i:043}");
        let resp = t
            .rb(Method::GET, "/logs", Some(&guess))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.text().await.expect("body"), answers[0].2);
    }
    assert_eq!(t.get("/logs", &key).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_names_cannot_escape_the_tenant() {
    let t = T::start().await;
    t.tenant("victim").await;
    let (_, victim) = t.key(SYSTEM, "admin", json!({"tenant": "victim"})).await;
    assert_eq!(
        t.write(&victim, "secret", json!({"msg": "victim-data"}))
            .await,
        StatusCode::CREATED
    );
    let attempts = [
        "/logs/../victim/secret",
        "/logs/..%2Fvictim%2Fsecret",
        "/logs/%2e%2e%2fvictim%2fsecret",
        "/logs/victim%2Fsecret",
        "/logs/victim:secret",
        "/logs/%7Bvictim%7D:secret",
        "/logs/secret%00victim",
        "/logs/..%5Cvictim%5Csecret",
        "/logs/victim%3Asecret",
        "/logs/tenant:victim:log:secret",
    ];
    for path in attempts {
        let (status, out) = t.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {ADMIN}\r\nConnection: close\r\n\r\n"
        ));
        assert!(!out.contains("victim-data"), "{path} leaked: {out}");
        assert!(matches!(status, 200 | 400 | 404), "{path}: {status}");
        let (status, out) = t.raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{{\"a\": 1}}"
        ));
        assert!(matches!(status, 400 | 404 | 201), "{path}: {status} {out}");
    }
    // Whatever was accepted went into the default tenant: the victim's log is untouched.
    let (_, stats) = t.get("/statistics", &victim).await;
    assert_eq!(stats["total"]["count"], 1, "{stats}");
    assert_eq!(stats["logs"][0]["name"], "secret");
    // A tenant id in the header is validated like one in the body, even on a raw socket.
    for header in ["victim/../default", "victim\u{0}", "victim x", "*"] {
        let (status, out) = t.raw(&format!(
            "GET /logs/secret HTTP/1.1\r\nHost: x\r\nX-API-Key: {ADMIN}\r\nX-Tenant-ID: {header}\r\nConnection: close\r\n\r\n"
        ));
        assert!(matches!(status, 400 | 403), "{header:?}: {out}");
        assert!(!out.contains("victim-data"));
    }
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_data_and_keys() {
    let t = T::start().await;
    t.tenant("gone").await;
    let (_, k) = t.key(SYSTEM, "admin", json!({"tenant": "gone"})).await;
    assert_eq!(
        t.write(&k, "app", json!({"a": 1})).await,
        StatusCode::CREATED
    );
    let (s, body) = t
        .call(Method::DELETE, "/api/tenants/gone", SYSTEM, None)
        .await;
    assert_eq!(
        (s, body["deleted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let (s, body) = t.get("/logs", &k).await;
    assert_unauthorized(s, &body);
    let (s, _) = t
        .call(Method::DELETE, "/api/tenants/gone", SYSTEM, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The system principal cannot act on it either, and a key for it cannot be made.
    let (s, _) = t
        .send(
            t.rb(Method::GET, "/api/keys", Some(SYSTEM))
                .header("X-Tenant-ID", "gone"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = t
        .call(
            Method::POST,
            "/api/keys",
            SYSTEM,
            Some(json!({"name": "x", "role": "admin", "tenant": "gone"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Re-created, it starts empty and the old key stays dead.
    t.tenant("gone").await;
    let (_, k2) = t.key(SYSTEM, "admin", json!({"tenant": "gone"})).await;
    let (_, logs) = t.get("/logs", &k2).await;
    assert_eq!(logs["logs"], json!([]));
    assert_eq!(t.get("/logs", &k).await.0, StatusCode::UNAUTHORIZED);
    // The default tenant is protected; tenant ids are DNS labels; duplicates conflict.
    let (s, _) = t
        .call(Method::DELETE, "/api/tenants/default", SYSTEM, None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    for bad in ["", "UPPER", "a_b", "../x", &"x".repeat(64)] {
        let (s, body) = t
            .call(
                Method::POST,
                "/api/tenants",
                SYSTEM,
                Some(json!({"id": bad})),
            )
            .await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_tenant")),
            "{bad}"
        );
    }
    let (s, _) = t
        .call(
            Method::POST,
            "/api/tenants",
            SYSTEM,
            Some(json!({"id": "gone"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, listed) = t.get("/api/tenants", SYSTEM).await;
    let ids: Vec<&str> = listed["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["default", "gone"]);
}

#[tokio::test]
async fn admin_routes_refuse_malformed_and_hostile_bodies() {
    let t = T::start().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/api/keys", json!({"name": "x"}), "invalid_json"),
        (
            "/api/keys",
            json!({"name": "x", "role": "reader", "extra": 1}),
            "invalid_json",
        ),
        (
            "/api/keys",
            json!({"name": "x", "role": "root"}),
            "invalid_role",
        ),
        (
            "/api/keys",
            json!({"name": "", "role": "reader"}),
            "invalid_name",
        ),
        (
            "/api/keys",
            json!({"name": "a\u{0}b", "role": "reader"}),
            "invalid_name",
        ),
        (
            "/api/keys",
            json!({"name": "x".repeat(101), "role": "reader"}),
            "invalid_name",
        ),
        (
            "/api/keys",
            json!({"name": "x", "role": "reader", "logs": []}),
            "invalid_pattern",
        ),
        (
            "/api/keys",
            json!({"name": "x", "role": "reader", "logs": ["../x"]}),
            "invalid_pattern",
        ),
        (
            "/api/keys",
            json!({"name": "x", "role": "reader", "expires_in": "-5"}),
            "invalid_expiry",
        ),
        (
            "/api/keys",
            json!({"name": "x", "role": "reader", "expires_in": "0"}),
            "invalid_expiry",
        ),
        (
            "/api/keys",
            json!({"name": "x", "role": "reader", "expires_in": "99999d"}),
            "invalid_expiry",
        ),
        (
            "/api/tenants",
            json!({"id": "ok", "displayName": "x".repeat(201)}),
            "invalid_display_name",
        ),
    ];
    for (path, body, code) in cases {
        let key = if path == "/api/tenants" {
            SYSTEM
        } else {
            ADMIN
        };
        let (s, b) = t.call(Method::POST, path, key, Some(body.clone())).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {b}"
        );
    }
    let (s, b) = t
        .send(
            t.rb(Method::POST, "/api/keys", Some(ADMIN))
                .body("{not json"),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (s, b) = t
        .send(
            t.rb(Method::POST, "/api/keys", Some(ADMIN))
                .body(vec![b' '; 70_000]),
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    for path in [
        "/api/keys/zzz",
        "/api/keys/%2e%2e",
        "/api/keys/0123456789ab",
        "/api/keys/%FF%FE",
    ] {
        let (s, _) = t.call(Method::DELETE, path, ADMIN, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        let (s, _) = t
            .call(Method::POST, &format!("{path}/rotate"), ADMIN, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, b) = t
        .call(Method::DELETE, "/api/tenants/%FF", SYSTEM, None)
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_tenant"))
    );
    // Callers who manage no keys are refused before their body is read.
    let (_, reader) = t.key(ADMIN, "reader", json!({})).await;
    let (s, b) = t
        .send(t.rb(Method::POST, "/api/keys", Some(&reader)).body("{junk"))
        .await;
    assert_forbidden(s, &b);
    let (_, listed) = t.get("/api/keys", ADMIN).await;
    assert_eq!(
        listed["keys"].as_array().map(Vec::len),
        Some(1),
        "only the reader: {listed}"
    );
    for q in [
        "limit=0",
        "limit=x",
        "cursor=-1",
        "since=yesterday",
        "scope=all",
    ] {
        let (s, _) = t.get(&format!("/api/audit?{q}"), ADMIN).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
    }
}

async fn verify(t: &T, key: &str) -> Value {
    let (s, v) = t.get("/api/audit/verify", key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn the_audit_trail_records_calls_and_detects_tampering() {
    let t = T::start().await;
    let (_, reader) = t.key(ADMIN, "reader", json!({})).await;
    let (_, auditor) = t.key(ADMIN, "auditor", json!({})).await;
    t.write(ADMIN, "app", json!({"a": 1})).await;
    t.write(ADMIN, "app", json!({"a": 2})).await;
    let resp = t
        .rb(Method::DELETE, "/logs/app", Some(&reader))
        .header("X-Request-Id", "attack-42")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.headers()["x-request-id"],
        "attack-42",
        "the request id is echoed"
    );
    let resp = t.rb(Method::GET, "/logs", None).send().await.expect("send");
    let generated = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    assert_eq!(generated.len(), 32, "a request id is generated when absent");

    // Reading the trail needs audit:read.
    let (s, body) = t.get("/api/audit", &reader).await;
    assert_forbidden(s, &body);
    let (s, body) = t.get("/api/audit/verify", &reader).await;
    assert_forbidden(s, &body);
    let (s, body) = t.get("/api/audit?scope=global", ADMIN).await;
    assert_forbidden(s, &body);

    let (s, trail) = t.get("/api/audit?limit=1000", &auditor).await;
    assert_eq!(s, StatusCode::OK, "{trail}");
    let events = trail["events"].as_array().expect("events");
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| e["request_id"] == "attack-42")
        .collect();
    assert_eq!(denied.len(), 1, "{trail}");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["action"], "logs.delete");
    assert_eq!(denied[0]["status"], 403);
    assert_eq!(denied[0]["auth_method"], "api_key");
    assert_eq!(denied[0]["tenant"], "default");
    assert_eq!(denied[0]["client"], "127.0.0.1");
    assert!(
        denied[0]["principal"]
            .as_str()
            .is_some_and(|p| p.starts_with("key:"))
    );
    let appends: u64 = events
        .iter()
        .filter(|e| e["action"] == "logs.append")
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        appends, 2,
        "aggregated appends still count every call: {trail}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "keys.create" && e["principal"] == "bootstrap")
    );
    // Filters and paging.
    let (_, only) = t.get("/api/audit?outcome=denied", &auditor).await;
    assert!(
        only["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty() && e.iter().all(|e| e["outcome"] == "denied"))
    );
    let (_, page) = t.get("/api/audit?limit=1", &auditor).await;
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, next) = t
        .get(&format!("/api/audit?limit=1&cursor={cursor}"), &auditor)
        .await;
    assert_ne!(page["events"][0]["seq"], next["events"][0]["seq"]);
    // The unauthenticated refusal went to the global trail, readable by the system principal.
    let (_, global) = t.get("/api/audit?scope=global", SYSTEM).await;
    assert!(
        global["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["request_id"] == generated.as_str())
    );
    assert_eq!(
        t.get("/api/audit/verify?scope=global", SYSTEM).await.1["verified"],
        true
    );

    let v = verify(&t, &auditor).await;
    assert_eq!(v["verified"], true, "{v}");
    let n = v["events"].as_u64().expect("events");
    assert!(n >= 6, "{v}");

    // Alter one record: change what it says, keep its stated hash.
    let tenant = TenantId::default_tenant();
    let scope = Scope::Tenant(&tenant);
    let recs = t.store.audit_read(scope, 0, 10).await.expect("read");
    let (seq, bytes) = recs[2].clone();
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    let forged = text.replacen("\"status\":", "\"status\":2", 1);
    assert_ne!(forged, text);
    t.store
        .audit_overwrite(scope, seq, forged.into_bytes())
        .await
        .expect("overwrite");
    let v = verify(&t, &auditor).await;
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["first_bad"]["seq"], seq);
    assert_eq!(v["first_bad"]["reason"], "hash_mismatch");
    t.store
        .audit_overwrite(scope, seq, bytes)
        .await
        .expect("restore");
    assert_eq!(verify(&t, &auditor).await["verified"], true);

    // Remove one record from the middle.
    t.store.audit_remove(scope, 1).await.expect("remove");
    let v = verify(&t, &auditor).await;
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["first_bad"]["reason"], "broken_link");
}
