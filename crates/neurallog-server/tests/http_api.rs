//! The HTTP API over a real socket: every route, and every row of spec §3.3 (limits and bad
//! input) with its status and error code. None of them may answer 500.

use std::io::{Read, Write};
use std::net::TcpStream;

use neurallog_server::{Server, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "test-key-0123456789-0123456789-0123456789";

struct TestServer {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::for_dir(dir.path());
        config.api_key = Some(neurallog_server::secret::Secret::new(KEY));
        tweak(&mut config);
        let server = Server::start(config).await.expect("start");
        let base = format!("http://{}", server.addr());
        Self {
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            _dir: dir,
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
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.expect("body");
        assert!(
            ct.starts_with("application/json"),
            "every answer is JSON, got {ct:?} for {body}"
        );
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad input must never answer 500: {body}"
        );
        (status, serde_json::from_str(&body).expect("json body"))
    }

    async fn expect_error(
        &self,
        rb: reqwest::RequestBuilder,
        status: StatusCode,
        code: &str,
    ) -> Value {
        let (s, body) = self.call(rb).await;
        assert_eq!((s, body["error"].as_str()), (status, Some(code)), "{body}");
        assert_eq!(body["status"], "error");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        body
    }

    async fn append(&self, log: &str, body: Value) -> Value {
        let (s, b) = self
            .call(self.req(Method::POST, &format!("/logs/{log}")).json(&body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b
    }

    async fn count(&self, log: &str) -> u64 {
        let (_, b) = self
            .call(self.req(Method::GET, &format!("/logs/{log}/statistics")))
            .await;
        b["count"].as_u64().expect("count")
    }

    /// Sends bytes on a raw socket, bypassing any client-side URL normalisation.
    fn raw(&self, request: &str) -> (u16, String) {
        let addr = self.server.as_ref().expect("running").addr();
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("write");
        // Read until the server closes (or the timeout; the head is what matters).
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

impl Drop for TestServer {
    fn drop(&mut self) {
        // The runtime of the test ends with it; the store flushes on its own drop.
        self.server.take();
    }
}

#[tokio::test]
async fn service_routes_need_no_key() {
    let t = TestServer::start().await;
    let (s, b) = t.call(t.http.get(format!("{}/", t.base))).await;
    assert_eq!(
        (s, b["name"].as_str(), b["status"].as_str()),
        (StatusCode::OK, Some("neurallog"), Some("success"))
    );
    assert_eq!(
        t.call(t.http.get(format!("{}/health", t.base))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        t.call(t.http.get(format!("{}/ready", t.base))).await.0,
        StatusCode::OK
    );
    let (s, doc) = t.call(t.http.get(format!("{}/openapi.json", t.base))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["paths"]["/logs/{log}"]["post"].is_object());
    assert!(doc["paths"]["/search"]["get"].is_object());
}

#[tokio::test]
async fn data_routes_refuse_missing_and_wrong_keys_alike() {
    let t = TestServer::start().await;
    for path in ["/logs", "/logs/app", "/search?query=x", "/statistics"] {
        let resp = t
            .http
            .get(format!("{}{path}", t.base))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers().get("www-authenticate").is_some(),
            "401 carries WWW-Authenticate"
        );
        let missing: Value = resp.json().await.expect("json");
        let wrong: Value = t
            .http
            .get(format!("{}{path}", t.base))
            .header("X-API-Key", "nl_abc_wrong")
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(missing, wrong, "the answer does not tell what was wrong");
    }
    let resp = t
        .http
        .post(format!("{}/logs/app", t.base))
        .header("Authorization", format!("Bearer {KEY}x"))
        .json(&json!({"a": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a key with a suffix is wrong"
    );
    let resp = t
        .http
        .post(format!("{}/logs/app", t.base))
        .header("Authorization", format!("Bearer {KEY}"))
        .json(&json!({"a": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::CREATED, "Bearer works");
    assert_eq!(
        t.count("app").await,
        1,
        "nothing was stored by the refused calls"
    );
}

#[tokio::test]
async fn append_object_array_and_ndjson() {
    let t = TestServer::start().await;
    let one = t
        .append("app", json!({"level": "info", "msg": "hello"}))
        .await;
    assert_eq!(one["count"], 1);
    assert_eq!(one["logId"], one["ids"][0]);
    let many = t.append("app", json!([{"n": 1}, {"n": 2}, "plain"])).await;
    assert_eq!(many["count"], 3);
    assert!(many.get("logId").is_none());
    let (s, nd) = t
        .call(
            t.req(Method::POST, "/logs/app")
                .header("Content-Type", "application/x-ndjson")
                .body("{\"n\":3}\n{\"n\":4}\n"),
        )
        .await;
    assert_eq!((s, nd["count"].as_u64()), (StatusCode::CREATED, Some(2)));
    let (s, patched) = t
        .call(t.req(Method::PATCH, "/logs/app").json(&json!({"n": 5})))
        .await;
    assert_eq!(
        (s, patched["count"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "PATCH is an alias"
    );
    let (_, page) = t.call(t.req(Method::GET, "/logs/app")).await;
    let entries = page["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 7);
    assert_eq!(entries[0]["data"], json!({"n": 5}), "newest first");
    assert_eq!(
        entries[3]["data"],
        json!({"data": "plain"}),
        "non-objects are wrapped"
    );
    let e = &entries[6];
    assert_eq!(e["name"], "app");
    assert!(
        e["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{e}"
    );
    assert_eq!(e["data"], json!({"level": "info", "msg": "hello"}));
}

#[tokio::test]
async fn event_timestamp_is_used_and_filters_reads() {
    let t = TestServer::start().await;
    t.append(
        "t",
        json!([
            {"i": 1, "timestamp": "2024-01-01T00:00:00Z"},
            {"i": 2, "timestamp": 1704153600000i64},
            {"i": 3, "timestamp": "2024-01-03T00:00:00.250Z"},
        ]),
    )
    .await;
    let (_, page) = t
        .call(t.req(
            Method::GET,
            "/logs/t?since=2024-01-02T00:00:00Z&until=2024-01-03T00:00:00Z",
        ))
        .await;
    let got: Vec<i64> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["data"]["i"].as_i64().expect("i"))
        .collect();
    assert_eq!(got, vec![2]);
    let (_, page) = t
        .call(t.req(Method::GET, "/logs/t?since=1704240000000"))
        .await;
    assert_eq!(page["entries"][0]["timestamp"], "2024-01-03T00:00:00.250Z");
}

#[tokio::test]
async fn read_paginates_with_cursor() {
    let t = TestServer::start().await;
    let batch: Vec<Value> = (0..25).map(|i| json!({"i": i})).collect();
    t.append("p", Value::Array(batch)).await;
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/logs/p?limit=10&cursor={c}"),
            None => "/logs/p?limit=10".to_owned(),
        };
        let (_, page) = t.call(t.req(Method::GET, &path)).await;
        for e in page["entries"].as_array().expect("entries") {
            seen.push(e["data"]["i"].as_i64().expect("i"));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).rev().collect::<Vec<_>>());
    let (s, page) = t.call(t.req(Method::GET, "/logs/never-written")).await;
    assert_eq!(
        (s, page["entries"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "unknown log reads empty"
    );
}

#[tokio::test]
async fn get_and_delete() {
    let t = TestServer::start().await;
    let r = t.append("d", json!([{"a": 1}, {"a": 2}])).await;
    let id = r["ids"][0].as_str().expect("id").to_owned();
    let (s, e) = t.call(t.req(Method::GET, &format!("/logs/d/{id}"))).await;
    assert_eq!((s, &e["entry"]["data"]), (StatusCode::OK, &json!({"a": 1})));
    let (s, b) = t
        .call(t.req(Method::DELETE, &format!("/logs/d/{id}")))
        .await;
    assert_eq!((s, b["deleted"].as_u64()), (StatusCode::OK, Some(1)));
    t.expect_error(
        t.req(Method::GET, &format!("/logs/d/{id}")),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    t.expect_error(
        t.req(Method::DELETE, &format!("/logs/d/{id}")),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    t.expect_error(
        t.req(Method::GET, "/logs/d/not-an-id"),
        StatusCode::BAD_REQUEST,
        "invalid_id",
    )
    .await;
    let (s, b) = t.call(t.req(Method::DELETE, "/logs/d")).await;
    assert_eq!((s, b["deleted"].as_u64()), (StatusCode::OK, Some(1)));
    let (_, logs) = t.call(t.req(Method::GET, "/logs")).await;
    assert_eq!(logs["logs"], json!([]));
}

#[tokio::test]
async fn search_text_fields_and_original_names() {
    let t = TestServer::start().await;
    t.append(
        "api",
        json!([
            {"msg": "Payment FAILED", "data": {"status": 500}, "timestamp": "2024-05-01T00:00:00Z"},
            {"msg": "payment ok", "data": {"status": 200}, "timestamp": "2024-05-02T00:00:00Z"},
            {"msg": "failed again", "data": {"status": "500"}, "timestamp": "2024-05-03T00:00:00Z"},
        ]),
    )
    .await;
    t.append("web", json!({"msg": "failed login"})).await;
    let (_, r) = t.call(t.req(Method::GET, "/search?query=failed")).await;
    assert_eq!(r["total"], 3);
    assert_eq!(
        r["results"][0]["logName"], "web",
        "newest first across logs"
    );
    let (_, r) = t
        .call(t.req(Method::GET, "/search?query=failed&log_name=api"))
        .await;
    assert_eq!(r["total"], 2);
    let (_, r) = t
        .call(t.req(Method::GET, "/search?field.data.data.status=500"))
        .await;
    assert_eq!(r["total"], 1, "typed: only the number 500");
    let (_, r) = t
        .call(t.req(Method::GET, "/search?field_data.data.status=%22500%22"))
        .await;
    assert_eq!(
        r["total"], 1,
        "original field_ name; quoted means the string"
    );
    let (_, r) = t
        .call(t.req(
            Method::GET,
            "/search?query=payment&start_time=2024-05-02T00:00:00Z&end_time=2024-05-04T00:00:00Z",
        ))
        .await;
    assert_eq!(r["total"], 1);
    let (_, r) = t.call(t.req(Method::GET, "/search?query=a&limit=1")).await;
    let cursor = r["next_cursor"].as_str().expect("more pages").to_owned();
    let (_, r2) = t
        .call(t.req(
            Method::GET,
            &format!("/search?query=a&limit=10&cursor={cursor}"),
        ))
        .await;
    assert_eq!(r2["total"], 3);
    t.expect_error(
        t.req(Method::GET, "/search?field.a..b=1"),
        StatusCode::BAD_REQUEST,
        "invalid_filter",
    )
    .await;
    t.expect_error(
        t.req(Method::GET, "/search?log_name=../etc"),
        StatusCode::BAD_REQUEST,
        "invalid_log_name",
    )
    .await;
    let long = "x".repeat(2000);
    t.expect_error(
        t.req(Method::GET, &format!("/search?query={long}")),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn statistics() {
    let t = TestServer::start().await;
    t.append(
        "a",
        json!([{"x": 1, "timestamp": 1000}, {"x": 2, "timestamp": 3000}]),
    )
    .await;
    t.append("b", json!({"y": 1})).await;
    let (_, s) = t.call(t.req(Method::GET, "/statistics")).await;
    assert_eq!(s["total"]["count"], 3);
    assert_eq!(s["logs"][0]["name"], "a");
    assert_eq!(s["logs"][0]["first_timestamp"], "1970-01-01T00:00:01.000Z");
    let (_, s) = t.call(t.req(Method::GET, "/logs/a/statistics")).await;
    assert_eq!(
        (s["count"].as_u64(), s["last_timestamp"].as_str()),
        (Some(2), Some("1970-01-01T00:00:03.000Z"))
    );
}

// ---- spec §3.3: limits and bad input ----

// Multi-threaded: the raw socket blocks its thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_log_names_are_refused_before_storage() {
    let t = TestServer::start().await;
    let long = "n".repeat(300);
    // Sent on a raw socket: HTTP clients would resolve `%2e%2e` and `..` themselves.
    for bad in [
        "%2e%2e",
        "%2e%2e%2fx",
        "..%2Fx",
        ".hidden",
        "a%20b",
        "a%00b",
        "%C3%A9",
        long.as_str(),
        "a:b",
        "%FF",
        "..",
        "../x",
        ".",
    ] {
        for method in ["POST", "GET", "DELETE"] {
            let (status, text) = t.raw(&format!("{method} /logs/{bad} HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{{\"a\":1}}"));
            let refused = (status == 400 && text.contains("\"invalid_log_name\""))
                || (bad.contains('/') && matches!(status, 400 | 404 | 405));
            assert!(refused, "{method} {bad}: {text}");
        }
    }
    for bad in ["..%2Fx", "a%20b", long.as_str(), "a:b"] {
        t.expect_error(
            t.req(Method::POST, &format!("/logs/{bad}"))
                .json(&json!({"a": 1})),
            StatusCode::BAD_REQUEST,
            "invalid_log_name",
        )
        .await;
    }
    // A raw `..` segment, which HTTP clients would normalise away.
    let (status, text) = t.raw(&format!("POST /logs/../x HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{{\"a\":1}}"));
    assert!(matches!(status, 400 | 404 | 405), "{text}");
    assert!(text.contains("\"status\":\"error\""), "{text}");
    let (_, logs) = t.call(t.req(Method::GET, "/logs")).await;
    assert_eq!(logs["logs"], json!([]), "nothing reached storage");
}

#[tokio::test]
async fn oversized_bodies_batches_and_events() {
    let t = TestServer::start_with(|c| {
        c.limits.max_body_bytes = 4096;
        c.limits.max_batch_events = 5;
        c.limits.max_event_bytes = 512;
    })
    .await;
    let big = json!({"pad": "x".repeat(5000)});
    t.expect_error(
        t.req(Method::POST, "/logs/l").json(&big),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let six: Vec<Value> = (0..6).map(|i| json!({"i": i})).collect();
    t.expect_error(
        t.req(Method::POST, "/logs/l").json(&six),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let fat = json!([{"ok": 1}, {"pad": "y".repeat(600)}]);
    t.expect_error(
        t.req(Method::POST, "/logs/l").json(&fat),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // A gzip bomb: small on the wire, far over the limit once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let inflated = format!("{{\"pad\":\"{}\"}}", "z".repeat(1_000_000));
    gz.write_all(inflated.as_bytes()).expect("gzip");
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 4096);
    t.expect_error(
        t.req(Method::POST, "/logs/l")
            .header("Content-Encoding", "gzip")
            .body(bomb),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    t.expect_error(
        t.req(Method::POST, "/logs/l")
            .header("Content-Encoding", "gzip")
            .body("not gzip"),
        StatusCode::BAD_REQUEST,
        "invalid_encoding",
    )
    .await;
    t.expect_error(
        t.req(Method::POST, "/logs/l")
            .header("Content-Encoding", "br")
            .body("{}"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_encoding",
    )
    .await;
    // A small gzip body is fine.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"zipped\":true}").expect("gzip");
    let (s, _) = t
        .call(
            t.req(Method::POST, "/logs/l")
                .header("Content-Encoding", "gzip")
                .body(gz.finish().expect("gzip")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(t.count("l").await, 1, "refused requests stored nothing");
}

#[tokio::test]
async fn malformed_json_names_the_position_and_stores_nothing() {
    let t = TestServer::start().await;
    let b = t
        .expect_error(
            t.req(Method::POST, "/logs/m")
                .header("Content-Type", "application/json")
                .body("[{\"a\":1},\n{\"a\":]"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        )
        .await;
    assert!(
        b["message"].as_str().expect("msg").contains("line 2"),
        "{b}"
    );
    let nd = "{\"a\":1}\n{\"a\":2}\n{\"a\":\n";
    let b = t
        .expect_error(
            t.req(Method::POST, "/logs/m")
                .header("Content-Type", "application/x-ndjson")
                .body(nd),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        )
        .await;
    assert!(
        b["message"].as_str().expect("msg").contains("line 3"),
        "{b}"
    );
    assert_eq!(t.count("m").await, 0, "the batch is all or nothing");
    t.expect_error(
        t.req(Method::POST, "/logs/m")
            .header("Content-Type", "application/json")
            .body(""),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    t.expect_error(
        t.req(Method::POST, "/logs/m").json(&json!([])),
        StatusCode::BAD_REQUEST,
        "empty_batch",
    )
    .await;
    t.expect_error(
        t.req(Method::POST, "/logs/m")
            .header("Content-Type", "application/json")
            .body("{\"a\":1} trailing"),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    t.expect_error(
        t.req(Method::POST, "/logs/m")
            .header("Content-Type", "application/json")
            .body(vec![0xff, 0xfe, b'{']),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
}

#[tokio::test]
async fn hostile_structure_is_bounded() {
    let t = TestServer::start().await;
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let (s, b) = t
        .call(
            t.req(Method::POST, "/logs/h")
                .header("Content-Type", "application/json")
                .body(format!("{{\"a\":{deep}}}")),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let very_deep = "[".repeat(200_000);
    let (s, _) = t
        .call(
            t.req(Method::POST, "/logs/h")
                .header("Content-Type", "application/json")
                .body(very_deep),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let many_keys: serde_json::Map<String, Value> =
        (0..20_000).map(|i| (format!("k{i}"), json!(i))).collect();
    t.expect_error(
        t.req(Method::POST, "/logs/h")
            .json(&Value::Object(many_keys)),
        StatusCode::BAD_REQUEST,
        "event_too_complex",
    )
    .await;
    assert_eq!(t.count("h").await, 0);
}

#[tokio::test]
async fn bad_query_parameters() {
    let t = TestServer::start().await;
    for (q, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=10001", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("since=yesterday", "invalid_time"),
        ("until=-1", "invalid_time"),
        (
            "since=2024-02-01T00:00:00Z&until=2024-01-01T00:00:00Z",
            "invalid_time",
        ),
        ("cursor=../../etc", "invalid_cursor"),
    ] {
        t.expect_error(
            t.req(Method::GET, &format!("/logs/x?{q}")),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let t = TestServer::start().await;
    t.expect_error(
        t.req(Method::GET, "/nope"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    t.expect_error(
        t.req(Method::GET, "/logs/a/b/c/d"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let resp = t.req(Method::PUT, "/logs/x").send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        allow.contains("POST") && allow.contains("GET"),
        "Allow: {allow}"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "method_not_allowed");
    t.expect_error(
        t.req(Method::POST, "/search"),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn openapi_document_is_committed_and_current() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap_or_default();
    let current = neurallog_server::openapi::json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"),
            format!("{current}\n"),
        )
        .expect("write");
        return;
    }
    assert_eq!(
        committed.trim_end(),
        current.trim_end(),
        "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p neurallog-server --test http_api openapi`"
    );
}
