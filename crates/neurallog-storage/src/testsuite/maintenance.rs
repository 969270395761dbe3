//! Conformance cases for retention (`purge_before`), erasure (`erase`) and restore (`import`).

use std::sync::Arc;

use neurallog_core::{
    Entry, EntryId,
    query::{FieldFilter, Matcher},
    time::now_ms,
};

use super::{event, log, read_all, tenant};
use crate::{ImportOutcome, PurgeOutcome, Storage};

const DAY_MS: i64 = 86_400_000;

fn stamped(n: usize, ts: i64, tag: &str) -> Vec<neurallog_core::ingest::NewEvent> {
    (0..n)
        .map(|i| event(serde_json::json!({"i": i, "tag": tag}), Some(ts)))
        .collect()
}

async fn all_entries(s: &Arc<dyn Storage>, t: &str, l: &str) -> Vec<Entry> {
    s.read(&tenant(t), &log(l), &read_all(10_000))
        .await
        .expect("read")
        .entries
}

fn outcome(blocks: u64, entries: u64, more: bool) -> PurgeOutcome {
    PurgeOutcome {
        blocks,
        entries,
        more,
    }
}

/// Retention removes the oldest wholly expired blocks, a bounded number per call, stops at a
/// block that straddles the cut-off, keeps the counters right and touches no other tenant.
pub async fn purge_expired_blocks(s: Arc<dyn Storage>) {
    let (t, other, l) = (tenant("t1"), tenant("t2"), log("app"));
    let old = now_ms() - 10 * DAY_MS;
    // Sequential appends: one block each.
    s.append(&t, &l, stamped(3, old, "a"))
        .await
        .expect("append");
    s.append(&t, &l, stamped(4, old, "b"))
        .await
        .expect("append");
    let mut straddling = stamped(1, old, "c");
    straddling.push(event(serde_json::json!({"tag": "c-new"}), None));
    s.append(&t, &l, straddling).await.expect("append");
    s.append(&t, &l, stamped(5, old, "d"))
        .await
        .expect("append");
    s.append(&other, &l, stamped(6, old, "x"))
        .await
        .expect("append");
    let cutoff = now_ms() - DAY_MS;

    assert_eq!(
        s.purge_before(&t, &l, cutoff, 1).await.expect("purge"),
        outcome(1, 3, true),
        "one block per call at most"
    );
    assert_eq!(
        s.purge_before(&t, &l, cutoff, 10).await.expect("purge"),
        outcome(1, 4, false),
        "stops at the straddling block"
    );
    assert_eq!(
        s.purge_before(&t, &l, cutoff, 10).await.expect("purge"),
        outcome(0, 0, false)
    );
    let left = all_entries(&s, "t1", "app").await;
    assert_eq!(left.len(), 7);
    assert_eq!(s.log_summary(&t, &l).await.expect("summary").count, 7);
    assert_eq!(
        all_entries(&s, "t2", "app").await.len(),
        6,
        "other tenant untouched"
    );

    // Once the straddling block has wholly expired, everything goes and the log is gone.
    let all = s
        .purge_before(&t, &l, now_ms() + DAY_MS, 10)
        .await
        .expect("purge");
    assert_eq!(all, outcome(2, 7, false));
    assert!(s.list_logs(&t).await.expect("list").is_empty());
    assert_eq!(s.log_summary(&t, &l).await.expect("summary").count, 0);
    // The log takes new events afterwards, with ids above the purged ones.
    let new = s
        .append(&t, &l, stamped(1, old, "e"))
        .await
        .expect("append");
    assert!(new[0] > left[0].id);
}

/// A far-future timestamp does not keep an event past the retention of when it was accepted.
pub async fn purge_ignores_future_timestamps(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("future"));
    let year_2100 = 4_102_444_800_000;
    s.append(&t, &l, stamped(2, year_2100, "f"))
        .await
        .expect("append");
    assert_eq!(
        s.purge_before(&t, &l, now_ms() - DAY_MS, 10)
            .await
            .expect("purge"),
        outcome(0, 0, false)
    );
    let accepted_after = now_ms() + DAY_MS;
    assert_eq!(
        s.purge_before(&t, &l, accepted_after, 10)
            .await
            .expect("purge"),
        outcome(1, 2, false)
    );
    // An unknown log purges nothing.
    assert_eq!(
        s.purge_before(&t, &log("nope"), accepted_after, 10)
            .await
            .expect("purge"),
        outcome(0, 0, false)
    );
}

fn email_filter(v: &str) -> Matcher {
    let raw = serde_json::to_string(v).expect("json");
    Matcher::new(
        "",
        vec![FieldFilter::new("user.email", &raw).expect("filter")],
    )
}

/// Erasure removes exactly the matching events, keeps the others' ids and timestamps, and
/// stays inside the tenant.
pub async fn erase_matching_events(s: Arc<dyn Storage>) {
    let (t, other, l) = (tenant("t1"), tenant("t2"), log("app"));
    let mut evs = Vec::new();
    for i in 0..40 {
        let email = if i % 4 == 0 {
            "gone@example.com"
        } else {
            "kept@example.com"
        };
        evs.push(event(
            serde_json::json!({"i": i, "user": {"email": email}}),
            Some(1_000 + i),
        ));
    }
    s.append(&t, &l, evs.clone()).await.expect("append");
    // The newest event of a second block matches: its block key changes.
    s.append(&t, &l, stamped(3, 5, "x")).await.expect("append");
    s.append(
        &t,
        &l,
        vec![event(
            serde_json::json!({"user": {"email": "gone@example.com"}}),
            None,
        )],
    )
    .await
    .expect("append");
    // A block where every event matches disappears.
    s.append(
        &t,
        &log("only"),
        vec![event(
            serde_json::json!({"user": {"email": "gone@example.com"}}),
            None,
        )],
    )
    .await
    .expect("append");
    s.append(&other, &l, evs).await.expect("append");
    let before = all_entries(&s, "t1", "app").await;

    let m = email_filter("gone@example.com");
    assert_eq!(s.erase(&t, &l, &m).await.expect("erase"), 11);
    assert_eq!(s.erase(&t, &log("only"), &m).await.expect("erase"), 1);
    assert_eq!(s.erase(&t, &l, &m).await.expect("erase"), 0, "idempotent");
    assert_eq!(s.erase(&t, &log("none"), &m).await.expect("erase"), 0);

    let after = all_entries(&s, "t1", "app").await;
    let expected: Vec<_> = before
        .iter()
        .filter(|e| !e.data.get().contains("gone@"))
        .map(|e| (e.id, e.timestamp, e.data.get().to_owned()))
        .collect();
    let got: Vec<_> = after
        .iter()
        .map(|e| (e.id, e.timestamp, e.data.get().to_owned()))
        .collect();
    assert_eq!(got, expected);
    for (id, _, _) in &expected {
        assert!(s.get(&t, &l, *id).await.expect("get").is_some());
    }
    for e in before.iter().filter(|e| e.data.get().contains("gone@")) {
        assert!(s.get(&t, &l, e.id).await.expect("get").is_none());
    }
    assert_eq!(s.log_summary(&t, &l).await.expect("summary").count, 33);
    assert!(!s.list_logs(&t).await.expect("list").contains(&log("only")));
    assert_eq!(
        all_entries(&s, "t2", "app").await.len(),
        40,
        "other tenant untouched"
    );
    // New appends still sort after everything.
    let new = s.append(&t, &l, stamped(1, 7, "y")).await.expect("append");
    assert!(new[0] > before[0].id);
    assert_eq!(all_entries(&s, "t1", "app").await[0].id, new[0]);
}

/// Appends racing an erasure are never lost.
pub async fn erase_with_concurrent_appends(s: Arc<dyn Storage>) {
    let (t, l) = (tenant("t1"), log("race"));
    for _ in 0..20 {
        let evs = (0..20)
            .map(|i| event(serde_json::json!({"i": i, "user": {"email": if i % 2 == 0 { "a" } else { "b" }}}), None))
            .collect();
        s.append(&t, &l, evs).await.expect("append");
    }
    let writer = {
        let (s, t, l) = (s.clone(), t.clone(), l.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..50 {
                let evs = (0..4)
                    .map(|_| event(serde_json::json!({"user": {"email": "c"}}), None))
                    .collect();
                ids.extend(s.append(&t, &l, evs).await.expect("append"));
            }
            ids
        })
    };
    let erased = s.erase(&t, &l, &email_filter("a")).await.expect("erase");
    let ids = writer.await.expect("writer");
    assert_eq!(erased, 200);
    let all = all_entries(&s, "t1", "race").await;
    assert_eq!(all.len(), 200 + ids.len());
    for id in ids {
        assert!(
            s.get(&t, &l, id).await.expect("get").is_some(),
            "append lost"
        );
    }
    assert_eq!(
        s.log_summary(&t, &l).await.expect("summary").count,
        all.len() as u64
    );
}

/// Import keeps ids, timestamps and bytes, skips ids already there, merges with blocks it
/// overlaps, and later appends get newer ids.
pub async fn import_preserves_ids(s: Arc<dyn Storage>) {
    let (src, dst, l) = (tenant("src"), tenant("dst"), log("app"));
    for round in 0..3 {
        let evs = (0..3000)
            .map(|i| {
                event(
                    serde_json::json!({"i": i, "round": round}),
                    Some(100 * i as i64),
                )
            })
            .collect();
        s.append(&src, &l, evs).await.expect("append");
    }
    let mut original = all_entries(&s, "src", "app").await;
    original.reverse(); // oldest first
    assert_eq!(original.len(), 9000);

    // Every other entry first, then all: the second import interleaves with the first.
    let odd: Vec<Entry> = original.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(
        s.import(&dst, &l, odd).await.expect("import"),
        ImportOutcome {
            imported: 4500,
            skipped: 0
        }
    );
    assert_eq!(
        s.import(&dst, &l, original.clone()).await.expect("import"),
        ImportOutcome {
            imported: 4500,
            skipped: 4500
        }
    );
    assert_eq!(
        s.import(&dst, &l, original[..10].to_vec())
            .await
            .expect("import"),
        ImportOutcome {
            imported: 0,
            skipped: 10
        }
    );
    let mut copy = all_entries(&s, "dst", "app").await;
    copy.reverse();
    let key = |e: &Entry| (e.id, e.timestamp, e.data.get().to_owned());
    assert_eq!(
        copy.iter().map(key).collect::<Vec<_>>(),
        original.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(s.log_summary(&dst, &l).await.expect("summary").count, 9000);
    for e in original.iter().step_by(997) {
        assert!(s.get(&dst, &l, e.id).await.expect("get").is_some());
    }
    // Imported ids from the future still sort below new appends.
    let future = EntryId::first_of_millis(now_ms() + 3_600_000);
    let late = Entry {
        id: future,
        name: l.clone(),
        timestamp: 1,
        data: serde_json::value::RawValue::from_string("{\"late\":true}".into()).expect("raw"),
    };
    s.import(&dst, &log("other"), vec![late])
        .await
        .expect("import");
    let new = s
        .append(&dst, &log("other"), stamped(1, 2, "n"))
        .await
        .expect("append");
    assert!(new[0] > future, "new id sorts after imported ones");
    let other = all_entries(&s, "dst", "other").await;
    assert_eq!(other.len(), 2);
    assert_eq!(other[0].id, new[0]);
}
