//! The server on the Redis backend, over a real socket and a real `redis-server`: the HTTP API
//! works, a Redis outage answers 503 `storage_unavailable` (and `/ready` fails) until Redis is
//! back, when the server recovers by itself; bad credentials stop start-up with one clear line.

use std::time::{Duration, Instant};

use neurallog_server::secret::Secret;
use neurallog_server::{Server, ServerConfig};
use neurallog_storage::redis::testing::{RedisServer, redis_available};
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "redis-test-key-0123456789-0123456789-0123";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("X-API-Key", KEY)
            .timeout(Duration::from_secs(20));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let started = Instant::now();
        let resp = rb.send().await.expect("send");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{path} answered only after {:?}",
            started.elapsed()
        );
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).expect("json body"))
    }
}

async fn start(
    redis_url: String,
    password: Option<&str>,
) -> anyhow::Result<(Server, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::for_dir(dir.path());
    config.api_key = Some(Secret::new(KEY));
    config.redis_url = Some(Secret::new(redis_url));
    config.redis_password = password.map(Secret::new);
    // Replicas sharing a Redis share the master key that wraps the tenants' data keys.
    config.master_key = Some(Secret::new("5a".repeat(32)));
    let server = Server::start(config).await?;
    Ok((server, dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_answers_503_and_the_server_recovers() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start_with(
        [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--requirepass",
            "pw-8812",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        false,
    );
    let (server, _dir) = start(redis.url(), Some("pw-8812")).await.expect("start");
    let api = Api {
        base: format!("http://{}", server.addr()),
        http: reqwest::Client::new(),
    };
    use reqwest::Method;

    let (s, b) = api
        .call(Method::POST, "/logs/app", Some(json!([{"n": 1}, {"n": 2}])))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = api.call(Method::GET, "/ready", None).await;
    assert_eq!(s, StatusCode::OK);
    // The data is in Redis, under the default tenant's keys.
    let keys = redis.cli(Some("pw-8812"), &["KEYS", "neurallog:{default}:*"]);
    assert!(keys.contains("neurallog:{default}:blocks:app"), "{keys}");

    redis.kill();
    for (method, path, body) in [
        (Method::POST, "/logs/app", Some(json!({"n": 3}))),
        (Method::GET, "/logs/app", None),
        (Method::GET, "/search?q=n", None),
        (Method::GET, "/logs", None),
        (Method::GET, "/statistics", None),
    ] {
        let (s, b) = api.call(method.clone(), path, body).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}: {b}");
        assert_eq!(b["error"], "storage_unavailable", "{b}");
        assert!(
            !b.to_string().contains("127.0.0.1"),
            "no internals in the body: {b}"
        );
    }
    let (s, b) = api.call(Method::GET, "/ready", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    // Each of those failures is counted by kind on the metrics listener.
    let metrics_url = format!("http://{}/metrics", server.metrics_addr().expect("metrics"));
    let text = api
        .http
        .get(&metrics_url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(r#"neurallog_storage_errors_total{kind="unavailable"} 5"#),
        "{text}"
    );
    let (s, _) = api.call(Method::GET, "/health", None).await;
    assert_eq!(s, StatusCode::OK, "liveness does not depend on Redis");

    redis.restart();
    let started = Instant::now();
    loop {
        let (s, _) = api.call(Method::GET, "/ready", None).await;
        if s == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, b) = api
        .call(Method::POST, "/logs/app", Some(json!({"n": 4})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = api.call(Method::GET, "/logs/app", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let ns: Vec<i64> = b["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["data"]["n"].as_i64())
        .collect();
    // 1 and 2 were acknowledged before the crash (AOF, fsync always); 3 was refused.
    assert_eq!(ns, vec![4, 2, 1], "{b}");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_redis_password_fails_start_up_clearly() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(&["--requirepass", "right-pw-3390"]);
    let err = match start(redis.url(), Some("wrong-pw-1177")).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("authentication failed"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", redis.port)),
        "names the server: {err}"
    );
    assert!(
        !err.contains("wrong-pw-1177") && !err.contains("right-pw"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_audit_trail_and_raw_tampering_is_detected() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(&["--save", ""]);
    // Two servers on one Redis: two writers of the default tenant's audit sequence.
    let (a, _da) = start(redis.url(), None).await.expect("start a");
    let (b, _db) = start(redis.url(), None).await.expect("start b");
    let apis: Vec<Api> = [&a, &b]
        .iter()
        .map(|s| Api {
            base: format!("http://{}", s.addr()),
            http: reqwest::Client::new(),
        })
        .collect();
    use reqwest::Method;
    for i in 0..6 {
        let api = &apis[i % 2];
        let (s, _) = api.call(Method::GET, "/logs", None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = api
            .call(
                Method::POST,
                &format!("/logs/app-{i}"),
                Some(json!({"n": i})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // Each replica flushes its writer when asked; then the interleaved chains verify.
    for api in &apis {
        let (s, v) = api.call(Method::GET, "/api/audit/verify", None).await;
        assert_eq!((s, &v["verified"]), (StatusCode::OK, &json!(true)), "{v}");
    }
    // A key created on one replica works on the other; revoked there, it stops here too.
    let (s, created) = apis[0]
        .call(
            Method::POST,
            "/api/keys",
            Some(json!({"name": "k", "role": "reader"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().expect("key").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    let as_key = |api: &Api| {
        api.http
            .get(format!("{}/logs", api.base))
            .header("X-API-Key", key.clone())
            .send()
    };
    assert_eq!(
        as_key(&apis[1]).await.expect("send").status(),
        StatusCode::OK
    );
    let (s, _) = apis[1]
        .call(Method::DELETE, &format!("/api/keys/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Revocation reaches the other replica within the one-second cache (polled).
    let deadline = Instant::now() + Duration::from_secs(20);
    while as_key(&apis[0]).await.expect("send").status() != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "the revoked key kept working");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Tamper through raw Redis: alter one record, then remove one.
    let list = "neurallog:{default}:audit";
    let original = redis.cli(None, &["LINDEX", list, "2"]);
    let original = original.trim_end_matches('\n');
    assert!(original.contains("\"chain\""), "{original}");
    let forged = original.replacen("\"status\":", "\"status\":4", 1);
    redis.cli(None, &["LSET", list, "2", &forged]);
    let (_, v) = apis[0].call(Method::GET, "/api/audit/verify", None).await;
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["first_bad"]["seq"], 2);
    assert_eq!(v["first_bad"]["reason"], "hash_mismatch");
    redis.cli(None, &["LSET", list, "2", original]);
    let (_, v) = apis[0].call(Method::GET, "/api/audit/verify", None).await;
    assert_eq!(v["verified"], true, "{v}");
    redis.cli(None, &["LREM", list, "1", original]);
    let (_, v) = apis[0].call(Method::GET, "/api/audit/verify", None).await;
    assert_eq!(v["verified"], false, "{v}");
    a.shutdown().await.expect("stop a");
    b.shutdown().await.expect("stop b");
}
