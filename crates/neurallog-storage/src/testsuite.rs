//! The conformance suite: behaviour every [`Storage`] backend must show, tenant isolation
//! included. A backend's test file calls [`conformance_tests!`] with an async expression that
//! opens a fresh, empty store; each case becomes its own `#[tokio::test]`.

use std::sync::Arc;

use neurallog_core::{
    EntryId, LogName, TenantId,
    ingest::NewEvent,
    query::{FieldFilter, LogScope, Matcher, ReadQuery, SearchQuery, TimeRange},
};

use crate::{Scope, Storage};

mod maintenance;
pub use maintenance::*;

/// Generates one test per conformance case for a backend.
///
/// ```ignore
/// neurallog_storage::conformance_tests!(async { Arc::new(open_fresh().await) as Arc<dyn Storage> });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            append_then_read_newest_first, event_timestamps, pagination_with_cursor,
            time_range, get_and_delete_entry, delete_log, list_logs_sorted, search_text_and_fields,
            search_all_logs_and_cursor, summaries, tenant_isolation, delete_tenant_is_scoped,
            large_batch_spans_blocks, concurrent_appends, exact_bytes_round_trip,
            ids_survive_delete_of_newest, ping_and_flush, meta_records_round_trip,
            meta_records_are_scoped, audit_sequence_is_dense_and_ordered,
            delete_tenant_removes_records, purge_expired_blocks,
            purge_ignores_future_timestamps, erase_matching_events, erase_with_concurrent_appends,
            import_preserves_ids);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $crate::testsuite::MaybeStore::into_store($make.await) else {
                    return; // the backend is not available here; the factory said why
                };
                $crate::testsuite::$case(store).await;
            }
        )*
    };
}

/// What a backend's factory in [`conformance_tests!`] returns: a store, or `None` when the
/// backend cannot run on this machine (e.g. no `redis-server`), which skips the case.
pub trait MaybeStore {
    fn into_store(self) -> Option<Arc<dyn Storage>>;
}

impl MaybeStore for Arc<dyn Storage> {
    fn into_store(self) -> Option<Arc<dyn Storage>> {
        Some(self)
    }
}

impl MaybeStore for Option<Arc<dyn Storage>> {
    fn into_store(self) -> Option<Arc<dyn Storage>> {
        self
    }
}

/// Shorthand for a tenant id in tests.
pub fn tenant(s: &str) -> TenantId {
    TenantId::new(s).expect("valid tenant")
}

/// Shorthand for a log name in tests.
pub fn log(s: &str) -> LogName {
    LogName::new(s).expect("valid log name")
}

/// An event with JSON `data` and an optional timestamp.
pub fn event(data: serde_json::Value, ts: Option<i64>) -> NewEvent {
    NewEvent {
        timestamp: ts,
        data: serde_json::to_vec(&data).expect("json"),
    }
}

fn n_events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event(serde_json::json!({"i": i, "tag": tag}), None))
        .collect()
}

fn field_i(e: &neurallog_core::Entry) -> i64 {
    serde_json::from_str::<serde_json::Value>(e.data.get()).expect("json")["i"]
        .as_i64()
        .expect("i")
}

fn read_all(limit: usize) -> ReadQuery {
    ReadQuery {
        limit,
        ..ReadQuery::default()
    }
}

fn search(scope: LogScope, text: &str, filters: Vec<FieldFilter>, limit: usize) -> SearchQuery {
    SearchQuery {
        scope,
        matcher: Matcher::new(text, filters),
        range: TimeRange::default(),
        limit,
        before: None,
    }
}

pub async fn append_then_read_newest_first(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    let ids = s.append(&t, &l, n_events(3, "a")).await.expect("append");
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let more = s.append(&t, &l, n_events(2, "b")).await.expect("append");
    assert!(more[0] > ids[2]);
    let page = s.read(&t, &l, &read_all(100)).await.expect("read");
    let got: Vec<EntryId> = page.entries.iter().map(|e| e.id).collect();
    assert_eq!(got, vec![more[1], more[0], ids[2], ids[1], ids[0]]);
    assert_eq!(page.next_cursor, None);
    assert_eq!(page.entries[0].name, l);
    let unknown = s
        .read(&t, &log("nope"), &read_all(10))
        .await
        .expect("read unknown");
    assert!(unknown.entries.is_empty());
}

pub async fn event_timestamps(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    let before = neurallog_core::time::now_ms();
    let ids = s
        .append(
            &t,
            &l,
            vec![
                event(serde_json::json!({"a": 1}), Some(1_000)),
                event(serde_json::json!({"a": 2}), None),
            ],
        )
        .await
        .expect("append");
    let after = neurallog_core::time::now_ms();
    let e0 = s.get(&t, &l, ids[0]).await.expect("get").expect("present");
    let e1 = s.get(&t, &l, ids[1]).await.expect("get").expect("present");
    assert_eq!(e0.timestamp, 1_000, "the event's own time is kept");
    assert!(
        (before..=after).contains(&e1.timestamp),
        "else the time it was accepted"
    );
}

pub async fn pagination_with_cursor(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    for _ in 0..5 {
        s.append(&t, &l, n_events(7, "x")).await.expect("append");
    }
    let mut seen = Vec::new();
    let mut q = read_all(4);
    loop {
        let page = s.read(&t, &l, &q).await.expect("read");
        assert!(page.entries.len() <= 4);
        seen.extend(page.entries.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 35, "every entry exactly once");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
}

pub async fn time_range(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    let evs = (0..10)
        .map(|i| event(serde_json::json!({"i": i}), Some(1_000 + i * 100)))
        .collect();
    s.append(&t, &l, evs).await.expect("append");
    let q = ReadQuery {
        range: TimeRange {
            since: Some(1_200),
            until: Some(1_500),
        },
        limit: 100,
        before: None,
    };
    let page = s.read(&t, &l, &q).await.expect("read");
    let got: Vec<i64> = page.entries.iter().map(field_i).collect();
    assert_eq!(got, vec![5, 4, 3, 2]);
    let q = ReadQuery {
        range: TimeRange {
            since: Some(5_000),
            until: None,
        },
        limit: 100,
        before: None,
    };
    assert!(s.read(&t, &l, &q).await.expect("read").entries.is_empty());
}

pub async fn get_and_delete_entry(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    let ids = s.append(&t, &l, n_events(3, "x")).await.expect("append");
    assert!(s.get(&t, &l, ids[1]).await.expect("get").is_some());
    assert!(
        s.get(&t, &log("other"), ids[1])
            .await
            .expect("get")
            .is_none(),
        "id is per log"
    );
    assert!(
        s.get(&t, &l, EntryId::from_u128(ids[2].as_u128() + 1))
            .await
            .expect("get")
            .is_none()
    );
    assert!(s.delete_entry(&t, &l, ids[1]).await.expect("delete"));
    assert!(
        !s.delete_entry(&t, &l, ids[1]).await.expect("delete again"),
        "second delete finds nothing"
    );
    assert!(s.get(&t, &l, ids[1]).await.expect("get").is_none());
    let left: Vec<EntryId> = s
        .read(&t, &l, &read_all(10))
        .await
        .expect("read")
        .entries
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![ids[2], ids[0]]);
    assert_eq!(s.log_summary(&t, &l).await.expect("summary").count, 2);
}

pub async fn delete_log(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    s.append(&t, &l, n_events(5, "x")).await.expect("append");
    s.append(&t, &log("keep"), n_events(1, "x"))
        .await
        .expect("append");
    assert_eq!(s.delete_log(&t, &l).await.expect("delete"), 5);
    assert_eq!(s.delete_log(&t, &l).await.expect("delete again"), 0);
    assert!(
        s.read(&t, &l, &read_all(10))
            .await
            .expect("read")
            .entries
            .is_empty()
    );
    assert_eq!(s.list_logs(&t).await.expect("list"), vec![log("keep")]);
    // The name can be used again.
    s.append(&t, &l, n_events(1, "y")).await.expect("append");
    assert_eq!(s.log_summary(&t, &l).await.expect("summary").count, 1);
}

pub async fn list_logs_sorted(s: Arc<dyn Storage>) {
    let t = tenant("t1");
    for name in ["b", "a", "c.d", "A"] {
        s.append(&t, &log(name), n_events(1, "x"))
            .await
            .expect("append");
    }
    assert_eq!(
        s.list_logs(&t).await.expect("list"),
        vec![log("A"), log("a"), log("b"), log("c.d")]
    );
    assert!(
        s.list_logs(&tenant("empty"))
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn search_text_and_fields(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("api"));
    s.append(
        &t,
        &l,
        vec![
            event(
                serde_json::json!({"msg": "Disk FULL on /var", "status": 500}),
                None,
            ),
            event(serde_json::json!({"msg": "all good", "status": 200}), None),
            event(serde_json::json!({"msg": "disk ok", "status": "500"}), None),
        ],
    )
    .await
    .expect("append");
    let hits = s
        .search(&t, &search(LogScope::One(l.clone()), "disk", vec![], 10))
        .await
        .expect("search");
    assert_eq!(hits.entries.len(), 2, "case-insensitive text");
    let typed = vec![FieldFilter::new("data.status", "500").expect("filter")];
    let hits = s
        .search(&t, &search(LogScope::One(l.clone()), "", typed, 10))
        .await
        .expect("search");
    assert_eq!(hits.entries.len(), 1, "typed: the number 500 only");
    let both = vec![FieldFilter::new("status", "200").expect("filter")];
    let hits = s
        .search(&t, &search(LogScope::One(l.clone()), "DISK", both, 10))
        .await
        .expect("search");
    assert!(hits.entries.is_empty());
    let none = s
        .search(
            &t,
            &search(LogScope::One(log("missing")), "disk", vec![], 10),
        )
        .await
        .expect("search");
    assert!(none.entries.is_empty());
}

pub async fn search_all_logs_and_cursor(s: Arc<dyn Storage>) {
    let t = tenant("t1");
    for (i, name) in ["x", "y", "z"].iter().enumerate() {
        for j in 0..4 {
            s.append(
                &t,
                &log(name),
                vec![event(
                    serde_json::json!({"needle": true, "i": i * 10 + j}),
                    None,
                )],
            )
            .await
            .expect("append");
        }
    }
    let mut q = search(LogScope::All, "NEEDLE", vec![], 5);
    let mut seen = Vec::new();
    loop {
        let page = s.search(&t, &q).await.expect("search");
        seen.extend(page.entries.iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first across logs"
    );
}

pub async fn summaries(s: Arc<dyn Storage>) {
    let t = tenant("t1");
    s.append(
        &t,
        &log("a"),
        vec![
            event(serde_json::json!({"x": 1}), Some(5_000)),
            event(serde_json::json!({"x": 22}), Some(3_000)),
        ],
    )
    .await
    .expect("append");
    s.append(
        &t,
        &log("b"),
        vec![event(serde_json::json!({}), Some(9_000))],
    )
    .await
    .expect("append");
    let a = s.log_summary(&t, &log("a")).await.expect("summary");
    assert_eq!(
        (a.count, a.bytes, a.min_ts, a.max_ts),
        (2, 15, Some(3_000), Some(5_000))
    );
    let all = s.tenant_summary(&t).await.expect("tenant summary");
    assert_eq!(
        all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(
        s.log_summary(&t, &log("none")).await.expect("summary"),
        crate::LogSummary::default()
    );
}

pub async fn tenant_isolation(s: Arc<dyn Storage>) {
    let (a, b, l) = (tenant("alpha"), tenant("beta"), log("shared-name"));
    let ids_a = s
        .append(
            &a,
            &l,
            vec![event(serde_json::json!({"secret": "alpha-only"}), None)],
        )
        .await
        .expect("append");
    s.append(
        &b,
        &l,
        vec![event(serde_json::json!({"public": "beta"}), None)],
    )
    .await
    .expect("append");
    // B sees only its own entry under the same log name.
    let page = s.read(&b, &l, &read_all(10)).await.expect("read");
    assert_eq!(page.entries.len(), 1);
    assert!(!page.entries[0].data.get().contains("alpha-only"));
    // A's id is not reachable through B.
    assert!(s.get(&b, &l, ids_a[0]).await.expect("get").is_none());
    assert!(!s.delete_entry(&b, &l, ids_a[0]).await.expect("delete"));
    // Searching everything in B never finds A's data.
    let hits = s
        .search(&b, &search(LogScope::All, "alpha-only", vec![], 10))
        .await
        .expect("search");
    assert!(hits.entries.is_empty());
    // Deleting B's log leaves A's.
    assert_eq!(s.delete_log(&b, &l).await.expect("delete"), 1);
    assert!(s.get(&a, &l, ids_a[0]).await.expect("get").is_some());
    assert_eq!(s.tenant_summary(&b).await.expect("summary").len(), 0);
    assert_eq!(s.tenant_summary(&a).await.expect("summary").len(), 1);
    // A tenant whose id is a prefix of another's is still separate.
    let (p, pq) = (tenant("p"), tenant("pq"));
    s.append(&pq, &log("x"), n_events(1, "pq"))
        .await
        .expect("append");
    assert!(s.list_logs(&p).await.expect("list").is_empty());
}

pub async fn delete_tenant_is_scoped(s: Arc<dyn Storage>) {
    let (a, b) = (tenant("a"), tenant("b"));
    s.append(&a, &log("one"), n_events(2, "a"))
        .await
        .expect("append");
    s.append(&a, &log("two"), n_events(3, "a"))
        .await
        .expect("append");
    s.append(&b, &log("one"), n_events(4, "b"))
        .await
        .expect("append");
    assert_eq!(s.delete_tenant(&a).await.expect("delete tenant"), 5);
    assert!(s.list_logs(&a).await.expect("list").is_empty());
    assert_eq!(
        s.log_summary(&b, &log("one")).await.expect("summary").count,
        4
    );
}

pub async fn large_batch_spans_blocks(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("big"));
    let evs: Vec<NewEvent> = (0..10_000)
        .map(|i| event(serde_json::json!({"i": i, "pad": "x".repeat(150)}), None))
        .collect();
    let ids = s.append(&t, &l, evs).await.expect("append");
    assert_eq!(ids.len(), 10_000);
    let page = s.read(&t, &l, &read_all(10_000)).await.expect("read");
    assert_eq!(page.entries.len(), 10_000);
    assert_eq!(field_i(&page.entries[0]), 9_999);
    assert_eq!(field_i(&page.entries[9_999]), 0);
    let mid = s
        .get(&t, &l, ids[4_321])
        .await
        .expect("get")
        .expect("present");
    assert_eq!(field_i(&mid), 4_321);
}

pub async fn concurrent_appends(s: Arc<dyn Storage>) {
    let t = tenant("t1");
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let l = log(if w % 2 == 0 { "even" } else { "odd" });
            let mut ids = Vec::new();
            for _ in 0..20 {
                ids.extend(s.append(&t, &l, n_events(3, "c")).await.expect("append"));
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "ids are unique");
    assert_eq!(n, 16 * 20 * 3);
    let even = s
        .read(&t, &log("even"), &read_all(10_000))
        .await
        .expect("read");
    assert_eq!(even.entries.len(), 8 * 60);
    assert!(even.entries.windows(2).all(|w| w[0].id > w[1].id));
}

pub async fn exact_bytes_round_trip(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("utf8"));
    let raw = r#"{"msg":"héllo \"wörld\" \u0000 ☃ 😀","n":1.50,"nested":{"a":[1,null,true]}}"#;
    let ids = s
        .append(
            &t,
            &l,
            vec![NewEvent {
                timestamp: None,
                data: raw.as_bytes().to_vec(),
            }],
        )
        .await
        .expect("append");
    let e = s.get(&t, &l, ids[0]).await.expect("get").expect("present");
    assert_eq!(e.data.get(), raw, "stored as sent");
}

pub async fn ids_survive_delete_of_newest(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("app"));
    let ids = s.append(&t, &l, n_events(3, "x")).await.expect("append");
    assert!(s.delete_entry(&t, &l, ids[2]).await.expect("delete newest"));
    // The block lost its newest entry; the rest must still be found and ordered.
    assert!(s.get(&t, &l, ids[1]).await.expect("get").is_some());
    let more = s.append(&t, &l, n_events(1, "y")).await.expect("append");
    assert!(more[0] > ids[2], "ids never go back");
    let got: Vec<EntryId> = s
        .read(&t, &l, &read_all(10))
        .await
        .expect("read")
        .entries
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, vec![more[0], ids[1], ids[0]]);
}

pub async fn ping_and_flush(s: Arc<dyn Storage>) {
    s.ping().await.expect("ping");
    s.append(&tenant("t1"), &log("app"), n_events(1, "x"))
        .await
        .expect("append");
    s.flush().await.expect("flush");
}

pub async fn meta_records_round_trip(s: Arc<dyn Storage>) {
    let g = Scope::Global;
    assert_eq!(s.meta_get(g, "keys", "a").await.expect("get"), None);
    s.meta_put(g, "keys", "b", b"two".to_vec())
        .await
        .expect("put");
    s.meta_put(g, "keys", "a", b"one".to_vec())
        .await
        .expect("put");
    s.meta_put(g, "keys", "a", b"uno".to_vec())
        .await
        .expect("replace");
    s.meta_put(g, "other", "a", b"x".to_vec())
        .await
        .expect("put");
    assert_eq!(
        s.meta_get(g, "keys", "a").await.expect("get"),
        Some(b"uno".to_vec())
    );
    let all = s.meta_list(g, "keys").await.expect("list");
    assert_eq!(
        all,
        vec![("a".into(), b"uno".to_vec()), ("b".into(), b"two".to_vec())],
        "sorted, and only this space"
    );
    assert!(s.meta_delete(g, "keys", "a").await.expect("delete"));
    assert!(!s.meta_delete(g, "keys", "a").await.expect("delete again"));
    assert_eq!(s.meta_list(g, "keys").await.expect("list").len(), 1);
    // Names that could break a key layout are refused, not stored.
    assert!(s.meta_put(g, "keys", "", b"x".to_vec()).await.is_err());
    assert!(s.meta_put(g, "ke\0ys", "a", b"x".to_vec()).await.is_err());
    assert!(s.meta_put(g, "keys", "a b", b"x".to_vec()).await.is_err());
    assert!(s.meta_get(g, "keys", &"k".repeat(201)).await.is_err());
}

pub async fn meta_records_are_scoped(s: Arc<dyn Storage>) {
    let (a, b) = (tenant("a"), tenant("ab"));
    s.meta_put(Scope::Tenant(&a), "keys", "k", b"of a".to_vec())
        .await
        .expect("put");
    s.meta_put(Scope::Tenant(&b), "keys", "k", b"of ab".to_vec())
        .await
        .expect("put");
    s.meta_put(Scope::Global, "keys", "k", b"global".to_vec())
        .await
        .expect("put");
    assert_eq!(
        s.meta_get(Scope::Tenant(&a), "keys", "k")
            .await
            .expect("get"),
        Some(b"of a".to_vec())
    );
    assert_eq!(
        s.meta_list(Scope::Tenant(&b), "keys").await.expect("list"),
        vec![("k".into(), b"of ab".to_vec())]
    );
    assert_eq!(
        s.meta_get(Scope::Global, "keys", "k").await.expect("get"),
        Some(b"global".to_vec())
    );
}

pub async fn audit_sequence_is_dense_and_ordered(s: Arc<dyn Storage>) {
    let t = tenant("t1");
    let scope = Scope::Tenant(&t);
    assert_eq!(s.audit_len(scope).await.expect("len"), 0);
    assert_eq!(
        s.audit_append(scope, vec![b"r0".to_vec(), b"r1".to_vec()])
            .await
            .expect("append"),
        0
    );
    assert_eq!(
        s.audit_append(scope, vec![b"r2".to_vec()])
            .await
            .expect("append"),
        2
    );
    // Concurrent appends never share or skip a number.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let s = s.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            s.audit_append(Scope::Tenant(&t), vec![vec![i], vec![i]])
                .await
                .expect("append")
        }));
    }
    let mut firsts = Vec::new();
    for task in tasks {
        firsts.push(task.await.expect("task"));
    }
    firsts.sort();
    assert_eq!(firsts, (0..8).map(|i| 3 + 2 * i).collect::<Vec<u64>>());
    assert_eq!(s.audit_len(scope).await.expect("len"), 19);
    let page = s.audit_read(scope, 1, 2).await.expect("read");
    assert_eq!(page, vec![(1, b"r1".to_vec()), (2, b"r2".to_vec())]);
    let all = s.audit_read(scope, 0, 1000).await.expect("read all");
    assert_eq!(all.len(), 19);
    assert!(all.iter().enumerate().all(|(i, (seq, _))| *seq == i as u64));
    assert!(
        s.audit_read(scope, 19, 10)
            .await
            .expect("past end")
            .is_empty()
    );
    // Another tenant and the global scope have sequences of their own.
    let other = tenant("t2");
    assert_eq!(s.audit_len(Scope::Tenant(&other)).await.expect("len"), 0);
    assert_eq!(
        s.audit_append(Scope::Global, vec![b"g".to_vec()])
            .await
            .expect("append"),
        0
    );
}

pub async fn delete_tenant_removes_records(s: Arc<dyn Storage>) {
    let (a, b) = (tenant("a"), tenant("b"));
    for t in [&a, &b] {
        s.meta_put(Scope::Tenant(t), "keys", "k", b"v".to_vec())
            .await
            .expect("put");
        s.audit_append(Scope::Tenant(t), vec![b"r".to_vec()])
            .await
            .expect("audit");
        s.append(t, &log("app"), n_events(1, "x"))
            .await
            .expect("append");
    }
    s.delete_tenant(&a).await.expect("delete tenant");
    assert_eq!(
        s.meta_get(Scope::Tenant(&a), "keys", "k")
            .await
            .expect("get"),
        None
    );
    assert_eq!(s.audit_len(Scope::Tenant(&a)).await.expect("len"), 0);
    assert_eq!(
        s.meta_get(Scope::Tenant(&b), "keys", "k")
            .await
            .expect("get"),
        Some(b"v".to_vec()),
        "the other tenant keeps its records"
    );
    assert_eq!(s.audit_len(Scope::Tenant(&b)).await.expect("len"), 1);
}
