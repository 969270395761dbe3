//! Faults of the Redis backend against a real `redis-server`: Redis killed, hung and
//! restarted while the store is in use.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use neurallog_core::EntryId;
use neurallog_core::query::ReadQuery;
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::testsuite::{event, log, tenant};
use neurallog_storage::{ErrorKind, Storage};
use support::{RedisServer, redis_available};

const TIMEOUT: Duration = Duration::from_millis(500);
/// How long a call may take against a Redis that is gone or hung: the store's operation
/// bound (twice the timeout) plus scheduling slack.
const PROMPT: Duration = Duration::from_secs(3);

async fn store_for(server: &RedisServer) -> RedisStorage {
    let mut opts = RedisOptions::new(server.url());
    opts.timeout = TIMEOUT;
    RedisStorage::connect(opts).await.expect("connect")
}

/// Runs a call and checks it fails as Unavailable, promptly.
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    fut: impl std::future::Future<Output = neurallog_storage::Result<T>>,
) {
    let started = Instant::now();
    let r = fut.await;
    let took = started.elapsed();
    let err = r.expect_err(what);
    assert_eq!(err.kind, ErrorKind::Unavailable, "{what}: {err}");
    assert!(took < PROMPT, "{what} took {took:?}");
}

async fn wait_until_ready(store: &RedisStorage) -> Duration {
    let started = Instant::now();
    loop {
        if store.ping().await.is_ok() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "store did not reconnect by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_and_the_store_reconnects() {
    if !redis_available() {
        return;
    }
    let mut server = RedisServer::start(&[]);
    let store = store_for(&server).await;
    let (t, l) = (tenant("acme"), log("app"));
    let one = || vec![event(serde_json::json!({"m": 1}), None)];
    store.append(&t, &l, one()).await.expect("append");

    server.kill();
    unavailable("ping", store.ping()).await;
    unavailable("append", store.append(&t, &l, one())).await;
    unavailable("read", store.read(&t, &l, &ReadQuery::default())).await;
    unavailable("list", store.list_logs(&t)).await;
    unavailable("summary", store.log_summary(&t, &l)).await;
    unavailable("flush", store.flush()).await;
    // Still unavailable on repeated calls, never a hang or a panic.
    unavailable("ping again", store.ping()).await;

    server.restart();
    let took = wait_until_ready(&store).await;
    eprintln!("reconnected {took:?} after redis came back");
    store
        .append(&t, &l, one())
        .await
        .expect("append after recovery");
    assert_eq!(store.log_summary(&t, &l).await.expect("summary").count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_times_out_instead_of_hanging() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let store = store_for(&server).await;
    let (t, l) = (tenant("acme"), log("app"));
    store
        .append(&t, &l, vec![event(serde_json::json!({"m": 1}), None)])
        .await
        .expect("append");

    server.signal("STOP");
    unavailable("ping", store.ping()).await;
    unavailable(
        "append",
        store.append(&t, &l, vec![event(serde_json::json!({"m": 2}), None)]),
    )
    .await;
    unavailable("read", store.read(&t, &l, &ReadQuery::default())).await;
    server.signal("CONT");
    wait_until_ready(&store).await;
    let page = store
        .read(&t, &l, &ReadQuery::default())
        .await
        .expect("read");
    // The timed-out append was not acknowledged; it may or may not have been applied, but
    // never half: 1 or 2 entries.
    assert!(
        (1..=2).contains(&page.entries.len()),
        "{}",
        page.entries.len()
    );
}

/// Appends batches from several tasks while Redis is killed (SIGKILL) and restarted, with
/// `appendfsync always`: every acknowledged batch must be there afterwards, and every batch
/// must be all there or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_a_redis_crash() {
    if !redis_available() {
        return;
    }
    const BATCH: usize = 25;
    const WRITERS: usize = 4;
    let mut server = RedisServer::start_with(
        [
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        false,
    );
    let store = Arc::new(store_for(&server).await);
    let (t, l) = (tenant("acme"), log("ingest"));
    let stop = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, stop, t, l) = (store.clone(), stop.clone(), t.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0usize);
            let mut b = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let events = (0..BATCH)
                    .map(|i| event(serde_json::json!({"w": w, "b": b, "i": i}), None))
                    .collect();
                match store.append(&t, &l, events).await {
                    Ok(ids) => {
                        assert_eq!(ids.len(), BATCH);
                        acked.push((w, b, ids));
                    }
                    Err(e) => {
                        assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                b += 1;
            }
            (acked, failed)
        }));
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.restart();
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (a, f) = task.await.expect("writer task");
        acked.extend(a);
        failed += f;
    }
    assert!(failed > 0, "some appends met the dead redis");
    let after_restart = acked.len();
    assert!(after_restart > 0, "appends were acknowledged");

    // Read everything back.
    let mut seen: Vec<(EntryId, serde_json::Value)> = Vec::new();
    let mut q = ReadQuery {
        limit: 10_000,
        ..ReadQuery::default()
    };
    loop {
        let page = store.read(&t, &l, &q).await.expect("read");
        for e in &page.entries {
            seen.push((e.id, serde_json::from_str(e.data.get()).expect("json")));
        }
        match page.next_cursor {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 > w[1].0),
        "newest first, unique"
    );
    let ids: HashSet<EntryId> = seen.iter().map(|(id, _)| *id).collect();
    let mut per_batch: HashMap<(u64, u64), usize> = HashMap::new();
    for (_, v) in &seen {
        let key = (v["w"].as_u64().expect("w"), v["b"].as_u64().expect("b"));
        *per_batch.entry(key).or_default() += 1;
    }
    for (w, b, batch_ids) in &acked {
        for id in batch_ids {
            assert!(
                ids.contains(id),
                "acknowledged entry {id} of batch {w}/{b} lost"
            );
        }
    }
    for (key, n) in &per_batch {
        assert_eq!(*n, BATCH, "batch {key:?} is partial");
    }
    let summary = store.log_summary(&t, &l).await.expect("summary");
    assert_eq!(
        summary.count as usize,
        seen.len(),
        "counters match the data"
    );
    eprintln!(
        "acknowledged {} batches, {} refused while redis was down, {} stored",
        acked.len(),
        failed,
        per_batch.len()
    );
}
