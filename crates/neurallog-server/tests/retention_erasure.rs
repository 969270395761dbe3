//! Retention settings, the background purge and erasure over a real socket (spec §6.3):
//! valid use, and malformed, oversized, hostile and cross-tenant input. None may answer 500.

use std::path::Path;
use std::time::Duration;

use neurallog_core::TenantId;
use neurallog_server::{Server, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "test-key-0123456789-0123456789-0123456789";

struct Api {
    server: Server,
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::for_dir(dir);
        config.api_key = Some(neurallog_server::secret::Secret::new(KEY));
        tweak(&mut config);
        let server = Server::start(config).await.expect("start");
        let base = format!("http://{}", server.addr());
        Self {
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("X-API-Key", KEY)
    }

    async fn call(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = rb.send().await.expect("send");
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "500: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        (status, v)
    }

    async fn expect_error(&self, rb: reqwest::RequestBuilder, status: StatusCode, code: &str) {
        let (s, b) = self.call(rb).await;
        assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{b}");
        assert_eq!(b["status"], "error");
    }

    async fn append(&self, log: &str, body: Value) {
        let (s, b) = self
            .call(self.req(Method::POST, &format!("/logs/{log}")).json(&body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }

    async fn entries(&self, log: &str) -> Vec<Value> {
        let (s, b) = self
            .call(self.req(Method::GET, &format!("/logs/{log}?limit=10000")))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["entries"].as_array().expect("entries").clone()
    }

    async fn put_retention(&self, body: Value) -> (StatusCode, Value) {
        self.call(self.req(Method::PUT, "/api/retention").json(&body))
            .await
    }

    async fn erase(&self, body: Value) -> (StatusCode, Value) {
        self.call(self.req(Method::POST, "/api/erasure").json(&body))
            .await
    }

    async fn stop(self) {
        self.server.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn retention_settings_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |c| c.retention_days = Some(90)).await;
    let (s, b) = api.call(api.req(Method::GET, "/api/retention")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!({"status": "success", "default_days": null, "logs": {}, "server_default_days": 90})
    );
    let (s, b) = api
        .put_retention(
            json!({"default_days": 30, "logs": {"audit-trail": 36500, "debug": 1, "gone": null}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["logs"], json!({"audit-trail": 36500, "debug": 1}));
    let (_, b) = api.call(api.req(Method::GET, "/api/retention")).await;
    assert_eq!(b["default_days"], 30);
    assert_eq!(b["logs"]["debug"], 1);
    // Clearing.
    let (s, b) = api.put_retention(json!({"default_days": null})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = api.call(api.req(Method::GET, "/api/retention")).await;
    assert_eq!(
        (b["default_days"].clone(), b["logs"].clone()),
        (Value::Null, json!({}))
    );
    // Without a key.
    let (s, _) = api
        .call(api.http.get(format!("{}/api/retention", api.base)))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test]
async fn bad_retention_settings_are_refused_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |_| {}).await;
    api.put_retention(json!({"default_days": 7})).await;
    let bad = StatusCode::BAD_REQUEST;
    for (body, code) in [
        (json!({"default_days": 0}), "invalid_retention"),
        (json!({"default_days": 36501}), "invalid_retention"),
        (json!({"logs": {"app": 0}}), "invalid_retention"),
        (
            json!({"logs": {"../../etc/passwd": 3}}),
            "invalid_retention",
        ),
        (json!({"logs": {"a\u{0}b": 3}}), "invalid_retention"),
        (json!({"logs": {"": 3}}), "invalid_retention"),
        (json!({"default_days": -1}), "invalid_json"),
        (json!({"default_days": 1.5}), "invalid_json"),
        (json!({"default_days": "7"}), "invalid_json"),
        (json!({"default_days": 1e300}), "invalid_json"),
        (json!({"logs": ["app"]}), "invalid_json"),
        (json!({"unknown": 1}), "invalid_json"),
        (json!([]), "invalid_json"),
        (json!([7, {}]), "invalid_json"),
        (json!(null), "invalid_json"),
    ] {
        api.expect_error(
            api.req(Method::PUT, "/api/retention").json(&body),
            bad,
            code,
        )
        .await;
    }
    api.expect_error(
        api.req(Method::PUT, "/api/retention").body("{not json"),
        bad,
        "invalid_json",
    )
    .await;
    let many: serde_json::Map<String, Value> =
        (0..1001).map(|i| (format!("log{i}"), json!(1))).collect();
    api.expect_error(
        api.req(Method::PUT, "/api/retention")
            .json(&json!({"logs": many})),
        bad,
        "invalid_retention",
    )
    .await;
    api.expect_error(
        api.req(Method::PUT, "/api/retention")
            .body(" ".repeat(300 * 1024)),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // Nothing of the refused requests was stored.
    let (_, b) = api.call(api.req(Method::GET, "/api/retention")).await;
    assert_eq!(
        (b["default_days"].clone(), b["logs"].clone()),
        (json!(7), json!({}))
    );
    api.stop().await;
}

/// The background purge removes expired events (old timestamps), keeps the rest, and honours
/// per-log periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_purge_removes_expired_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |c| {
        c.purge_interval = Duration::from_millis(100)
    })
    .await;
    let old = |i: i64| json!({"timestamp": "2001-02-03T04:05:06Z", "i": i});
    api.append("app", json!([old(1), old(2), old(3)])).await;
    api.append("app", json!({"fresh": true})).await;
    api.append("keep", json!([old(4), old(5)])).await;
    let (s, b) = api
        .put_retention(json!({"default_days": 30, "logs": {"keep": 36500}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let mut left = api.entries("app").await;
    for _ in 0..300 {
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = api.entries("app").await;
    }
    assert_eq!(left.len(), 1, "expired events were purged: {left:?}");
    assert_eq!(left[0]["data"]["fresh"], true);
    assert_eq!(
        api.entries("keep").await.len(),
        2,
        "per-log period honoured"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_matching_events_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |_| {}).await;
    let ev = |email: &str, i: i64| json!({"user": {"email": email}, "i": i});
    api.append(
        "web",
        json!([
            ev("alice@example.com", 1),
            ev("bob@example.com", 2),
            ev("alice@example.com", 3)
        ]),
    )
    .await;
    api.append(
        "api",
        json!([ev("alice@example.com", 4), {"code": 500}, {"code": "500"}]),
    )
    .await;
    let before = api.entries("web").await;
    let (s, b) = api
        .erase(json!({"field": "user.email", "value": "alice@example.com"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"status": "success", "erased": 3, "logs": {"web": 2, "api": 1}})
    );
    let web = api.entries("web").await;
    assert_eq!(web.len(), 1);
    assert_eq!(web[0]["id"], before[1]["id"], "kept event keeps its id");
    assert_eq!(web[0]["timestamp"], before[1]["timestamp"]);
    // Numbers match numbers only, and only the listed logs are touched.
    let (s, b) = api
        .erase(json!({"field": "code", "value": 500, "logs": ["api", "nothing-here"]}))
        .await;
    assert_eq!((s, b["erased"].clone()), (StatusCode::OK, json!(1)), "{b}");
    assert_eq!(api.entries("api").await.len(), 1);
    // Hostile paths are just paths that match nothing.
    for field in ["user/etc/passwd", "__proto__", "$where", "user.email.0.1.2"] {
        let (s, b) = api.erase(json!({"field": field, "value": "x"})).await;
        assert_eq!((s, b["erased"].clone()), (StatusCode::OK, json!(0)), "{b}");
    }
    api.stop().await;
}

#[tokio::test]
async fn bad_erasure_requests_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |_| {}).await;
    api.append("web", json!({"user": {"email": "a"}})).await;
    let bad = StatusCode::BAD_REQUEST;
    let many: Vec<String> = (0..1001).map(|i| format!("l{i}")).collect();
    for (body, code) in [
        (json!({"field": "", "value": "a"}), "invalid_erasure"),
        (
            json!({"field": "user..email", "value": "a"}),
            "invalid_erasure",
        ),
        (json!({"field": "..", "value": "a"}), "invalid_erasure"),
        (
            json!({"field": "x".repeat(300), "value": "a"}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": null}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": ["a"]}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": {"$ne": 1}}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": "v".repeat(5000)}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": "a", "logs": []}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": "a", "logs": ["../web"]}),
            "invalid_erasure",
        ),
        (
            json!({"field": "user.email", "value": "a", "logs": many}),
            "invalid_erasure",
        ),
        (json!({"value": "a"}), "invalid_json"),
        (json!({"field": "user.email"}), "invalid_json"),
        (json!({"field": 3, "value": "a"}), "invalid_json"),
        (
            json!({"field": "a", "value": "a", "extra": 1}),
            "invalid_json",
        ),
        (json!(["user.email", "a"]), "invalid_json"),
    ] {
        api.expect_error(api.req(Method::POST, "/api/erasure").json(&body), bad, code)
            .await;
    }
    api.expect_error(
        api.req(Method::POST, "/api/erasure")
            .body(" ".repeat(200 * 1024)),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let (s, _) = api
        .call(
            api.http
                .post(format!("{}/api/erasure", api.base))
                .json(&json!({"field": "user.email", "value": "a"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(api.entries("web").await.len(), 1, "nothing was erased");
    api.stop().await;
}

/// Erasure and retention settings of one tenant never reach another's data, even in the
/// same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_and_retention_stay_in_their_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let as_tenant = |t: &'static str| {
        move |c: &mut ServerConfig| c.tenant = Some(TenantId::new(t).expect("tenant"))
    };
    let ev =
        json!([{"user": {"email": "carol@example.com"}}, {"user": {"email": "dave@example.com"}}]);
    let a = Api::start(dir.path(), as_tenant("tenant-a")).await;
    a.append("web", ev.clone()).await;
    a.stop().await;

    let b = Api::start(dir.path(), as_tenant("tenant-b")).await;
    b.append("web", ev.clone()).await;
    let (s, r) = b
        .erase(json!({"field": "user.email", "value": "carol@example.com"}))
        .await;
    assert_eq!((s, r["erased"].clone()), (StatusCode::OK, json!(1)), "{r}");
    b.put_retention(json!({"default_days": 1})).await;
    b.stop().await;

    let a = Api::start(dir.path(), as_tenant("tenant-a")).await;
    assert_eq!(a.entries("web").await.len(), 2, "tenant A untouched");
    let (_, r) = a.call(a.req(Method::GET, "/api/retention")).await;
    assert_eq!(
        r["default_days"],
        Value::Null,
        "tenant B's settings are not A's"
    );
    a.stop().await;
}

/// Only a credential holding `retention:manage` (settings) or `logs:delete` (erasure) gets
/// through; a writer, a reader and an auditor are refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_roles_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |_| {}).await;
    api.append("web", json!({"user": {"email": "a"}})).await;
    api.put_retention(json!({"default_days": 9})).await;
    for role in ["reader", "writer", "auditor"] {
        let (s, b) = api
            .call(
                api.req(Method::POST, "/api/keys")
                    .json(&json!({"name": format!("{role} key"), "role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let key = b["key"].as_str().expect("key").to_owned();
        let as_role = |m: Method, p: &str| {
            api.http
                .request(m, format!("{}{}", api.base, p))
                .header("X-API-Key", key.clone())
        };
        for rb in [
            as_role(Method::GET, "/api/retention"),
            as_role(Method::PUT, "/api/retention").json(&json!({"default_days": 1})),
            as_role(Method::POST, "/api/erasure")
                .json(&json!({"field": "user.email", "value": "a"})),
        ] {
            api.expect_error(rb, StatusCode::FORBIDDEN, "forbidden")
                .await;
        }
    }
    assert_eq!(api.entries("web").await.len(), 1);
    let (_, b) = api.call(api.req(Method::GET, "/api/retention")).await;
    assert_eq!(b["default_days"], 9);
    api.stop().await;
}

/// Every purge that removed something is in the tenant's audit trail, and so is an erasure
/// (without the erased value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_and_erasures_are_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |c| {
        c.purge_interval = Duration::from_millis(100)
    })
    .await;
    api.append(
        "app",
        json!([{"timestamp": "2001-02-03T04:05:06Z", "user": {"email": "x@y.z"}}]),
    )
    .await;
    api.put_retention(json!({"default_days": 1})).await;
    let mut found = Value::Null;
    for _ in 0..300 {
        let (_, b) = api
            .call(api.req(Method::GET, "/api/audit?action=retention.purge"))
            .await;
        if b["events"].as_array().is_some_and(|e| !e.is_empty()) {
            found = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ev = &found["events"][0];
    assert_eq!(ev["action"], "retention.purge", "{found}");
    assert_eq!(ev["count"], 1, "{found}");
    api.put_retention(json!({})).await;
    api.append(
        "app",
        json!({"user": {"email": "secret-value@example.com"}}),
    )
    .await;
    let (s, _) = api
        .erase(json!({"field": "user.email", "value": "secret-value@example.com"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = api
        .call(api.req(Method::GET, "/api/audit?action=logs.erase"))
        .await;
    assert_eq!(b["events"].as_array().map(Vec::len), Some(1), "{b}");
    assert!(
        !b.to_string().contains("secret-value"),
        "the erased value is not audited"
    );
    api.stop().await;
}

/// An admin key narrowed to some logs erases in those only, and is refused a log it does not
/// reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_keys_erase_only_their_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path(), |_| {}).await;
    let ev = json!({"user": {"email": "n@x.org"}});
    api.append("web", ev.clone()).await;
    api.append("api", ev.clone()).await;
    let (s, b) = api
        .call(
            api.req(Method::POST, "/api/keys")
                .json(&json!({"name": "web admin", "role": "admin", "logs": ["web"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = b["key"].as_str().expect("key").to_owned();
    let erase = |body: Value| {
        api.http
            .post(format!("{}/api/erasure", api.base))
            .header("X-API-Key", key.clone())
            .json(&body)
    };
    api.expect_error(
        erase(json!({"field": "user.email", "value": "n@x.org", "logs": ["api"]})),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (s, b) = api
        .call(erase(json!({"field": "user.email", "value": "n@x.org"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["logs"], json!({"web": 1}));
    assert_eq!(
        api.entries("api").await.len(),
        1,
        "a log the key does not reach is kept"
    );
    api.stop().await;
}
