//! Encryption at rest through the server: the development key file, the start-up check of
//! the master key, the admin API, and a damaged block answered as `storage_corrupt` with no
//! detail.

use std::time::Duration;

use neurallog_server::secret::Secret;
use neurallog_server::{Server, ServerConfig};
use neurallog_storage::redis::testing::{RedisServer, redis_available};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "test-key-0123456789-0123456789-0123456789";

fn config(dir: &std::path::Path, master: Option<&str>) -> ServerConfig {
    let mut c = ServerConfig::for_dir(dir);
    c.api_key = Some(Secret::new(KEY));
    c.master_key = master.map(Secret::new);
    c
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = reqwest::Client::new()
        .request(method, format!("http://{}{}", server.addr(), path))
        .header("X-API-Key", KEY);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("send");
    let status = resp.status();
    (status, resp.json().await.expect("json"))
}

/// Starts a server on a directory a previous server just released (its store lock goes
/// with its writer thread, shortly after shutdown).
async fn start_again(config: ServerConfig) -> anyhow::Result<Server> {
    for _ in 0..100 {
        match Server::start(config.clone()).await {
            Err(e) if format!("{e:#}").contains("lock") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => return other,
        }
    }
    Server::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_key_file_admin_api_and_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), None))
        .await
        .expect("start");
    let key_file = dir.path().join("master.key");
    let meta = std::fs::metadata(&key_file).expect("a development key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let _ = meta;
    let (s, _) = call(
        &server,
        Method::POST,
        "/logs/app",
        Some(json!({"m": "one"})),
    )
    .await;
    assert!(s.is_success(), "{s}");
    let (s, st) = call(&server, Method::GET, "/api/encryption", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (st["status"].as_str(), st["algorithm"].as_str()),
        (Some("enabled"), Some("AES-256-GCM"))
    );
    let first = st["key_id"].as_str().expect("key id").to_owned();
    assert_eq!(st["keys"].as_array().map(Vec::len), Some(1));
    assert!(
        !st.to_string().contains(
            &std::fs::read_to_string(&key_file)
                .expect("key")
                .trim()
                .to_owned()
        )
    );

    let (s, r) = call(&server, Method::POST, "/api/encryption/rotate", None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let second = r["key_id"].as_str().expect("new id").to_owned();
    assert_ne!(first, second);
    call(
        &server,
        Method::POST,
        "/logs/app",
        Some(json!({"m": "two"})),
    )
    .await;
    let (_, st) = call(&server, Method::GET, "/api/encryption", None).await;
    assert_eq!(st["key_id"].as_str(), Some(second.as_str()));
    assert_eq!(st["keys"].as_array().map(Vec::len), Some(2));
    let (s, page) = call(&server, Method::GET, "/logs/app", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2), "{page}");
    // The re-encryption job moves the block of the first key to the second: one block
    // the first time, none after; the entries stay as they were.
    let (s, r) = call(&server, Method::POST, "/api/encryption/reencrypt", None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (
            r["reencrypted"].as_u64(),
            r["more"].as_bool(),
            r["key_id"].as_str()
        ),
        (Some(1), Some(false), Some(second.as_str())),
        "{r}"
    );
    let (_, r) = call(&server, Method::POST, "/api/encryption/reencrypt", None).await;
    assert_eq!(r["reencrypted"].as_u64(), Some(0), "{r}");
    let (_, again) = call(&server, Method::GET, "/logs/app", None).await;
    assert_eq!(again["entries"], page["entries"]);
    for bad in [
        "?max_blocks=0",
        "?max_blocks=1001",
        "?max_blocks=x",
        "?evil=1",
    ] {
        let path = format!("/api/encryption/reencrypt{bad}");
        let (s, r) = call(&server, Method::POST, &path, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {r}");
        assert_eq!(r["error"], "invalid_parameter");
    }

    // Without credentials: 401, nothing rotated.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/api/encryption/rotate", server.addr()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    server.shutdown().await.expect("shutdown");

    // The same key file is used again on the next start, and everything still reads.
    let server = start_again(config(dir.path(), None))
        .await
        .expect("restart");
    let (_, page) = call(&server, Method::GET, "/logs/app", None).await;
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2), "{page}");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_master_key_stops_start_up_and_rotation_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = ("11".repeat(32), "22".repeat(32));
    let server = Server::start(config(dir.path(), Some(&old)))
        .await
        .expect("start");
    call(
        &server,
        Method::POST,
        "/logs/app",
        Some(json!({"m": "kept"})),
    )
    .await;
    server.shutdown().await.expect("shutdown");

    let e = start_again(config(dir.path(), Some(&new)))
        .await
        .err()
        .expect("a wrong master key must stop start-up");
    let text = format!("{e:#}");
    assert!(
        text.contains("the master key does not match the stored data keys"),
        "{text}"
    );
    assert!(
        !text.contains(&old) && !text.contains(&new),
        "no key in the message"
    );

    // Rotation: the new key with the old one as previous re-wraps, then the new alone works.
    let mut rotating = config(dir.path(), Some(&new));
    rotating.master_key_previous = Some(Secret::new(old.clone()));
    start_again(rotating)
        .await
        .expect("rotate")
        .shutdown()
        .await
        .expect("shutdown");
    let server = start_again(config(dir.path(), Some(&new)))
        .await
        .expect("new key alone");
    let (_, page) = call(&server, Method::GET, "/logs/app", None).await;
    assert_eq!(page["entries"][0]["data"]["m"], "kept", "{page}");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_block_is_storage_corrupt_without_detail() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), Some(&"33".repeat(32)));
    c.redis_url = Some(Secret::new(redis.url()));
    let server = Server::start(c).await.expect("start");
    for log in ["bad", "good"] {
        let (s, _) = call(
            &server,
            Method::POST,
            &format!("/logs/{log}"),
            Some(json!({"secret": "s3cr3t-payload"})),
        )
        .await;
        assert!(s.is_success());
    }
    let flip = "local k = KEYS[1] local f = redis.call('HKEYS', k)[1] local v = redis.call('HGET', k, f) \
        local n = #v - 20 redis.call('HSET', k, f, v:sub(1, n - 1) .. string.char(bit.bxor(string.byte(v, n), 1)) .. v:sub(n + 1)) return 1";
    let out = redis.cli(None, &["EVAL", flip, "1", "neurallog:{default}:blocks:bad"]);
    assert_eq!(out.trim(), "1", "{out}");
    let (s, body) = call(&server, Method::GET, "/logs/bad", None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "storage_corrupt");
    let text = body.to_string();
    // The generic sentence only: nothing of which block, which key or what failed.
    assert_eq!(body["message"], "stored data failed an integrity check");
    assert!(
        !text.contains("s3cr3t") && !text.contains("block"),
        "{text}"
    );
    let (s, page) = call(&server, Method::GET, "/logs/good", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["entries"][0]["data"]["secret"], "s3cr3t-payload");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_api_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(config(dir.path(), None))
        .await
        .expect("start");
    // A wrong method gets the JSON 405; a body (even hostile) is ignored by rotate.
    let (s, body) = call(&server, Method::DELETE, "/api/encryption", None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
    let (s, body) = call(
        &server,
        Method::POST,
        "/api/encryption/rotate",
        Some(json!({"tenant": "other", "key": "00"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, st) = call(&server, Method::GET, "/api/encryption", None).await;
    assert_eq!(st["key_id"], body["key_id"]);
    server.shutdown().await.expect("shutdown");

    // With encryption disabled (benchmarks only): the status says so and rotation is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), None);
    c.unsafe_disable_encryption = true;
    let server = Server::start(c).await.expect("start");
    assert!(!dir.path().join("master.key").exists());
    let (s, st) = call(&server, Method::GET, "/api/encryption", None).await;
    assert_eq!(
        (s, st["status"].as_str()),
        (StatusCode::OK, Some("disabled"))
    );
    let (s, body) = call(&server, Method::POST, "/api/encryption/rotate", None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("encryption_disabled"))
    );
    server.shutdown().await.expect("shutdown");
}
