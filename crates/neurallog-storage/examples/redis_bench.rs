//! Storage-level benchmark of the Redis backend (no HTTP): ingest, newest-100 reads, search
//! scan, and memory per raw byte. Until `neurallog bench --redis` exists this is how the
//! backend's figures are measured; compare them with `redis-benchmark -P 64` on the same
//! machine.
//!
//! ```sh
//! cargo run --release -p neurallog-storage --features redis --example redis_bench -- \
//!     redis://127.0.0.1:6379 200000 1000 8
//! ```
//! Arguments: url, events, batch size, concurrent writers. Uses key prefix `nlbench`.

use std::sync::Arc;
use std::time::Instant;

use neurallog_core::ingest::NewEvent;
use neurallog_core::query::{LogScope, Matcher, ReadQuery, SearchQuery, TimeRange};
use neurallog_core::{LogName, TenantId};
use neurallog_storage::Storage;
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use rand::Rng;

fn event(rng: &mut impl Rng, i: usize) -> NewEvent {
    const LEVELS: [&str; 4] = ["info", "info", "warn", "error"];
    const PATHS: [&str; 5] = [
        "/api/v1/items",
        "/api/v1/users",
        "/login",
        "/health",
        "/api/v2/orders",
    ];
    let data = format!(
        r#"{{"level":"{}","service":"api-{}","msg":"request completed path={}/{} status={} duration_ms={}","user":"u-{}","trace":"{:016x}","seq":{}}}"#,
        LEVELS[rng.random_range(0..4)],
        rng.random_range(0..8),
        PATHS[rng.random_range(0..5)],
        rng.random_range(0..100_000),
        [200, 200, 201, 404, 500][rng.random_range(0..5)],
        rng.random_range(1..900),
        rng.random_range(0..50_000),
        rng.random::<u64>(),
        i
    );
    NewEvent {
        timestamp: None,
        data: data.into_bytes(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let total: usize = args.get(2).map_or(Ok(200_000), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(1_000), |s| s.parse())?;
    let writers: usize = args.get(4).map_or(Ok(8), |s| s.parse())?;

    let mut opts = RedisOptions::new(url);
    opts.key_prefix = Some("nlbench".into());
    let store = Arc::new(RedisStorage::connect(opts).await?);
    let tenant = TenantId::new("bench")?;
    let log = LogName::new("bench")?;
    store.delete_tenant(&tenant).await?;

    // Pre-generate the events so that generation is not measured.
    let mut rng = rand::rng();
    let batches: Vec<Vec<NewEvent>> = (0..total.div_ceil(batch))
        .map(|b| {
            (0..batch.min(total - b * batch))
                .map(|i| event(&mut rng, b * batch + i))
                .collect()
        })
        .collect();
    let raw_bytes: usize = batches.iter().flatten().map(|e| e.data.len()).sum();
    let queue = Arc::new(std::sync::Mutex::new(batches));

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (store, queue, tenant, log) =
            (store.clone(), queue.clone(), tenant.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().map_err(|_| "queue poisoned")?.pop();
                let Some(b) = next else { break };
                store
                    .append(&tenant, &log, b)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ingest_s = started.elapsed().as_secs_f64();

    let mut lat = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let page = store.read(&tenant, &log, &ReadQuery::default()).await?;
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.entries.len(), 100.min(total));
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];

    let t0 = Instant::now();
    let q = SearchQuery {
        scope: LogScope::One(log.clone()),
        matcher: Matcher::new("no-such-text-anywhere", vec![]),
        range: TimeRange::default(),
        limit: 100,
        before: None,
    };
    let hits = store.search(&tenant, &q).await?;
    let search_s = t0.elapsed().as_secs_f64();
    assert!(hits.entries.is_empty());

    let mem = store.disk_usage().await?.unwrap_or(0);
    let mb = raw_bytes as f64 / 1e6;
    println!("events {total}, batch {batch}, writers {writers}, raw {mb:.1} MB");
    println!("ingest_events_per_s     {:.0}", total as f64 / ingest_s);
    println!("ingest_mb_per_s         {:.1}", mb / ingest_s);
    println!("query_newest100_p50_ms  {:.2}", pct(0.5));
    println!("query_newest100_p99_ms  {:.2}", pct(0.99));
    println!("search_scan_mb_per_s    {:.0}", mb / search_s);
    println!("redis_dataset_mb        {:.1}", mem as f64 / 1e6);
    println!(
        "raw_to_redis_ratio      {:.1}",
        raw_bytes as f64 / mem.max(1) as f64
    );
    store.delete_tenant(&tenant).await?;
    Ok(())
}
