//! The conformance suite against a real `redis-server`, each case on a fresh server, in
//! each way of reaching Redis: plain, with a password, as an ACL user confined to the key
//! prefix, and over TLS. Then Redis-specific behaviour beyond the shared suite.

mod support;

use std::sync::Arc;

use neurallog_storage::Storage;
use support::{Mode, ServedStore, redis_available};

async fn fresh(mode: Mode) -> Option<Arc<dyn Storage>> {
    if !redis_available() {
        return None;
    }
    Some(Arc::new(ServedStore::fresh_in(mode).await))
}

mod plain {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(Mode::Plain));
}

mod password {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(Mode::Password));
}

mod acl {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(Mode::Acl));
}

mod tls {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(Mode::Tls));
}

mod encrypted {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(Mode::Encrypted));
}

// ---- Redis-specific behaviour beyond the shared suite ----

use std::collections::HashSet;

use neurallog_core::EntryId;
use neurallog_core::query::{LogScope, Matcher, ReadQuery, SearchQuery, TimeRange};
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::testsuite::{event, log, tenant};
use support::RedisServer;

async fn store_on(server: &RedisServer, prefix: Option<&str>) -> RedisStorage {
    let mut opts = RedisOptions::new(server.url());
    opts.key_prefix = prefix.map(str::to_owned);
    RedisStorage::connect(opts).await.expect("connect")
}

/// Several server replicas share one Redis and append to the same log at once: ids are
/// unique, each batch's ids form a range no other batch overlaps, and reads see all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_appending_to_one_log() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let replicas = [store_on(&server, None).await, store_on(&server, None).await];
    let (t, l) = (tenant("acme"), log("shared"));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = replicas[w % 2].clone();
        let (t, l) = (t.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            let mut batches = Vec::new();
            for b in 0..25 {
                let evs = (0..4)
                    .map(|i| event(serde_json::json!({"w": w, "b": b, "i": i}), None))
                    .collect();
                batches.push(s.append(&t, &l, evs).await.expect("append"));
            }
            batches
        }));
    }
    let mut batches: Vec<Vec<EntryId>> = Vec::new();
    for task in tasks {
        batches.extend(task.await.expect("task"));
    }
    batches.sort();
    for pair in batches.windows(2) {
        assert!(
            pair[0].last() < pair[1].first(),
            "batch id ranges must not overlap"
        );
    }
    let all: Vec<EntryId> = batches.concat();
    let unique: HashSet<EntryId> = all.iter().copied().collect();
    assert_eq!(unique.len(), 8 * 25 * 4);
    let page = replicas[1]
        .read(
            &t,
            &l,
            &ReadQuery {
                limit: 10_000,
                ..ReadQuery::default()
            },
        )
        .await
        .expect("read");
    let read: Vec<EntryId> = page.entries.iter().map(|e| e.id).collect();
    let mut expected = all.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(read, expected);
    assert_eq!(
        replicas[0]
            .log_summary(&t, &l)
            .await
            .expect("summary")
            .count,
        800
    );
    eprintln!(
        "renumbered shares: {} + {}",
        replicas[0].renumbered(),
        replicas[1].renumbered()
    );
}

/// A replica whose clock is behind (here: a floor an hour in the future, written by
/// "another replica") still gets ids above everything stored, after renumbering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_the_floor_renumbers() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let store = store_on(&server, None).await;
    let (t, l) = (tenant("acme"), log("app"));
    let first = store
        .append(&t, &l, vec![event(serde_json::json!({"n": 1}), None)])
        .await
        .expect("append");
    let future_ms = neurallog_core::time::now_ms() + 3_600_000;
    let floor = EntryId::first_of_millis(future_ms);
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let _: () = redis::cmd("HSET")
        .arg("neurallog:{acme}:meta:app")
        .arg("last")
        .arg(floor.to_bytes().as_slice())
        .query_async(&mut c)
        .await
        .expect("hset");
    let next = store
        .append(&t, &l, vec![event(serde_json::json!({"n": 2}), None)])
        .await
        .expect("append after floor");
    assert!(next[0] > floor, "renumbered above the floor");
    assert_eq!(store.renumbered(), 1);
    assert!(next[0] > first[0]);
    let page = store
        .read(&t, &l, &ReadQuery::default())
        .await
        .expect("read");
    assert_eq!(
        page.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![next[0], first[0]]
    );
}

/// Two deployments with different key prefixes share one Redis without seeing each other,
/// and every key lives under `<prefix>:{<tenant>}:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefixes_keep_deployments_apart() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let a = store_on(&server, Some("dep-a")).await;
    let b = store_on(&server, Some("dep-b:eu")).await;
    let (t, l) = (tenant("acme"), log("app"));
    a.append(&t, &l, vec![event(serde_json::json!({"from": "a"}), None)])
        .await
        .expect("append a");
    b.append(&t, &l, vec![event(serde_json::json!({"from": "b"}), None)])
        .await
        .expect("append b");
    let ra = a.read(&t, &l, &ReadQuery::default()).await.expect("read a");
    assert_eq!(ra.entries.len(), 1);
    assert!(ra.entries[0].data.get().contains("\"a\""));
    assert_eq!(a.delete_tenant(&t).await.expect("delete tenant"), 1);
    assert_eq!(b.log_summary(&t, &l).await.expect("summary").count, 1);
    let keys = server.cli(None, &["KEYS", "*"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty());
    for k in keys {
        assert!(k.starts_with("dep-b:eu:{acme}:"), "stray key {k}");
    }
    assert!(
        RedisStorage::connect(RedisOptions {
            key_prefix: Some("bad{prefix}".into()),
            ..RedisOptions::new(server.url())
        })
        .await
        .is_err()
    );
}

/// Many small blocks: reads and searches walk the index in chunks and page correctly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_logs_page_through_many_blocks() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let store = store_on(&server, None).await;
    let (t, l) = (tenant("acme"), log("many"));
    // Sequential one-event appends: one block each, more than one index chunk.
    let mut ids = Vec::new();
    for i in 0..300 {
        let tag = if i % 10 == 0 { "needle" } else { "hay" };
        let ts = 1_000_000 + i as i64;
        ids.extend(
            store
                .append(
                    &t,
                    &l,
                    vec![event(serde_json::json!({"i": i, "t": tag}), Some(ts))],
                )
                .await
                .expect("append"),
        );
    }
    let mut seen = Vec::new();
    let mut q = ReadQuery {
        limit: 7,
        ..ReadQuery::default()
    };
    loop {
        let page = store.read(&t, &l, &q).await.expect("read");
        seen.extend(page.entries.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every entry once, newest first");
    // A time window far down the log.
    let q = ReadQuery {
        range: TimeRange {
            since: Some(1_000_010),
            until: Some(1_000_019),
        },
        limit: 100,
        before: None,
    };
    assert_eq!(
        store.read(&t, &l, &q).await.expect("read").entries.len(),
        10
    );
    // Search across all of it, paged.
    let mut sq = SearchQuery {
        scope: LogScope::One(l.clone()),
        matcher: Matcher::new("NEEDLE", vec![]),
        range: TimeRange::default(),
        limit: 4,
        before: None,
    };
    let mut hits = 0;
    loop {
        let page = store.search(&t, &sq).await.expect("search");
        hits += page.entries.len();
        match page.next_cursor {
            Some(c) => sq.before = Some(c),
            None => break,
        }
    }
    assert_eq!(hits, 30);
}

/// Retention removes whole blocks older than a cutoff from the index alone, and keeps the
/// counters right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_whole_blocks() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let store = store_on(&server, None).await;
    let (t, l) = (tenant("acme"), log("app"));
    let batch = |n: usize| {
        (0..n)
            .map(|i| event(serde_json::json!({"i": i}), None))
            .collect::<Vec<_>>()
    };
    store.append(&t, &l, batch(3)).await.expect("append");
    store.append(&t, &l, batch(4)).await.expect("append");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let newest = store.append(&t, &l, batch(5)).await.expect("append");
    let cutoff = newest[0].millis();
    // At most one block per call: bounded work.
    assert_eq!(
        store.purge_before(&t, &l, cutoff, 1).await.expect("purge"),
        (1, 3)
    );
    assert_eq!(
        store.purge_before(&t, &l, cutoff, 10).await.expect("purge"),
        (1, 4)
    );
    assert_eq!(
        store.purge_before(&t, &l, cutoff, 10).await.expect("purge"),
        (0, 0)
    );
    let s = store.log_summary(&t, &l).await.expect("summary");
    assert_eq!(s.count, 5);
    let page = store
        .read(&t, &l, &ReadQuery::default())
        .await
        .expect("read");
    assert_eq!(page.entries.len(), 5);
    // Purging everything empties the log.
    let later = newest[4].millis() + 1;
    assert_eq!(
        store.purge_before(&t, &l, later, 10).await.expect("purge"),
        (1, 5)
    );
    assert!(store.list_logs(&t).await.expect("list").is_empty());
}

/// A replica's decoded-block cache never serves a block another replica changed: a block's
/// cache key is its full index member, which a rewrite changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_cache_is_coherent_across_replicas() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let (a, b) = (store_on(&server, None).await, store_on(&server, None).await);
    let (t, l) = (tenant("acme"), log("app"));
    let evs = (0..5)
        .map(|i| event(serde_json::json!({"i": i}), None))
        .collect();
    let ids = a.append(&t, &l, evs).await.expect("append");
    let ids_of = |p: neurallog_storage::Page| p.entries.iter().map(|e| e.id).collect::<Vec<_>>();
    // A reads (and caches) the block; B deletes an entry in the middle of it and the newest.
    assert_eq!(
        a.read(&t, &l, &ReadQuery::default())
            .await
            .expect("read")
            .entries
            .len(),
        5
    );
    assert!(a.get(&t, &l, ids[2]).await.expect("get").is_some());
    assert!(b.delete_entry(&t, &l, ids[2]).await.expect("delete"));
    assert!(b.delete_entry(&t, &l, ids[4]).await.expect("delete"));
    let seen = ids_of(a.read(&t, &l, &ReadQuery::default()).await.expect("read"));
    assert_eq!(seen, vec![ids[3], ids[1], ids[0]]);
    assert!(a.get(&t, &l, ids[2]).await.expect("get").is_none());
    // B removes the log: A sees it empty.
    assert_eq!(b.delete_log(&t, &l).await.expect("delete log"), 3);
    assert!(
        a.read(&t, &l, &ReadQuery::default())
            .await
            .expect("read")
            .entries
            .is_empty()
    );
    assert!(a.get(&t, &l, ids[0]).await.expect("get").is_none());
}
