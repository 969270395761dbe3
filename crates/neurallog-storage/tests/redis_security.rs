//! Security of the Redis backend against a real `redis-server`: passwords, TLS with a CA
//! check, and an ACL user confined to one tenant's keys.

mod support;

use std::time::{Duration, Instant};

use neurallog_core::query::ReadQuery;
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::testsuite::{event, log, tenant};
use neurallog_storage::{ErrorKind, Storage, StorageError};
use support::{RedisServer, pki, redis_available, tls_server};

const PASSWORD: &str = "correct-horse-7f3a";

async fn refused(opts: RedisOptions) -> StorageError {
    let started = Instant::now();
    let err = RedisStorage::connect(opts)
        .await
        .expect_err("connect must fail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refusal must come promptly, took {:?}",
        started.elapsed()
    );
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    eprintln!("refused as expected: {err}");
    assert!(!err.message.contains('\n'), "one line: {err}");
    err
}

async fn works(store: &RedisStorage) {
    let (t, l) = (tenant("acme"), log("app"));
    let ids = store
        .append(&t, &l, vec![event(serde_json::json!({"m": "hi"}), None)])
        .await
        .expect("append");
    let page = store
        .read(&t, &l, &ReadQuery::default())
        .await
        .expect("read");
    assert_eq!(page.entries.first().map(|e| e.id), ids.first().copied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_missing_or_wrong_is_a_clear_error() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&["--requirepass", PASSWORD]);

    let err = refused(RedisOptions::new(server.url())).await;
    assert!(err.message.contains("authentication required"), "{err}");

    let mut wrong = RedisOptions::new(server.url());
    wrong.password = Some("not-the-password-91c2".into());
    let err = refused(wrong).await;
    assert!(err.message.contains("authentication failed"), "{err}");
    assert!(
        !err.message.contains("not-the-password-91c2"),
        "no secret: {err}"
    );

    let in_url = format!("redis://:wrong-in-url-55d1@127.0.0.1:{}", server.port);
    let err = refused(RedisOptions::new(in_url)).await;
    assert!(err.message.contains("authentication failed"), "{err}");
    assert!(
        !err.message.contains("wrong-in-url-55d1"),
        "no secret: {err}"
    );

    // The right password, as an option or in the URL (the option wins over the URL).
    let mut opt = RedisOptions::new(format!("redis://:stale@127.0.0.1:{}", server.port));
    opt.password = Some(PASSWORD.into());
    works(&RedisStorage::connect(opt).await.expect("password option")).await;
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/3", server.port);
    let store = RedisStorage::connect(RedisOptions::new(url))
        .await
        .expect("password in url");
    assert!(store.target().ends_with("db 3"), "{}", store.target());
    assert!(!format!("{store:?}").contains(PASSWORD));
    works(&store).await;
    // Database 3 holds the second store's keys: meta, index, blocks, logs, names.
    assert_eq!(
        server.cli(Some(PASSWORD), &["-n", "3", "DBSIZE"]).trim(),
        "5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_limited_to_its_tenant_prefix() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let out = server.cli(
        None,
        &[
            "ACL",
            "SETUSER",
            "acme-svc",
            "on",
            ">acme-pw-1",
            "~neurallog:{acme}:*",
            "+@all",
            "-@dangerous",
        ],
    );
    assert_eq!(out.trim(), "OK", "{out}");
    let url = format!("redis://acme-svc:acme-pw-1@127.0.0.1:{}", server.port);
    let store = RedisStorage::connect(RedisOptions::new(url))
        .await
        .expect("acl user connects");

    // Everything works for its own tenant.
    let (t, l) = (tenant("acme"), log("app"));
    let ids = store
        .append(
            &t,
            &l,
            vec![
                event(serde_json::json!({"x": 1}), None),
                event(serde_json::json!({"x": 2}), None),
            ],
        )
        .await
        .expect("append");
    assert!(store.get(&t, &l, ids[0]).await.expect("get").is_some());
    assert_eq!(store.list_logs(&t).await.expect("list"), vec![l.clone()]);
    assert!(
        store
            .delete_entry(&t, &l, ids[0])
            .await
            .expect("delete entry")
    );
    assert_eq!(store.log_summary(&t, &l).await.expect("summary").count, 1);
    assert_eq!(store.delete_log(&t, &l).await.expect("delete log"), 1);
    store.ping().await.expect("ping");
    assert_eq!(
        store.disk_usage().await.expect("usage"),
        None,
        "INFO is @dangerous"
    );

    // Another tenant's keys are refused by Redis itself.
    let other = tenant("beta");
    let err = store
        .append(&other, &l, vec![event(serde_json::json!({"x": 3}), None)])
        .await
        .expect_err("other tenant refused");
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("permission denied"), "{err}");
    let err = store
        .list_logs(&other)
        .await
        .expect_err("other tenant refused");
    assert!(err.message.contains("permission denied"), "{err}");
    let keys = server.cli(None, &["KEYS", "*beta*"]);
    assert!(keys.trim().is_empty(), "nothing written for beta: {keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_checks_the_server_certificate() {
    if !redis_available() {
        return;
    }
    let (server, ca) = tls_server();
    let url = format!("rediss://127.0.0.1:{}", server.port);

    // Trusting the CA that signed the server's certificate: works.
    let mut good = RedisOptions::new(url.clone());
    good.ca_cert_pem = Some(ca.into_bytes());
    works(
        &RedisStorage::connect(good)
            .await
            .expect("tls with the right CA"),
    )
    .await;

    // Trusting another CA: refused.
    let (other_ca, _, _) = pki();
    let mut bad = RedisOptions::new(url.clone());
    bad.ca_cert_pem = Some(other_ca.into_bytes());
    let err = refused(bad).await;
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "says why: {err}"
    );

    // The system trust store does not know our CA either.
    refused(RedisOptions::new(url.clone())).await;

    // Turning the check off through the URL is not possible.
    let err = refused(RedisOptions::new(format!("{url}/#insecure"))).await;
    assert!(err.message.contains("insecure"), "{err}");

    // Plain text to the TLS port fails within the timeout instead of hanging.
    let mut plain = RedisOptions::new(format!("redis://127.0.0.1:{}", server.port));
    plain.timeout = Duration::from_millis(500);
    refused(plain).await;
}
