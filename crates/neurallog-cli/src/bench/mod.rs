//! `neurallog bench` (spec §9): drives a server over loopback HTTP and reports figures.
//!
//! By default it starts `neurallog serve` as a child process on a temporary directory (so
//! that the server's memory and disk are measured apart from the load generator), then runs:
//!
//! 1. ingest — `--events` events in NDJSON batches of `--batch` over `--concurrency`
//!    connections, into one log;
//! 2. newest-100 reads of that log, one at a time, for p50/p99 latency;
//! 3. a full-text search for a string that occurs nowhere, which scans the whole log: raw
//!    bytes scanned per second (one request runs on one core);
//! 4. the comparison with the original server: one event per request, newest-100 reads and
//!    searches, each over 64 connections for `--compare-seconds`;
//!
//! then stops the server gracefully and measures its peak RSS and its bytes on disk.
//!
//! With `--tls` the started server speaks HTTPS with a self-signed certificate made for the
//! run, every phase above goes over TLS, and a second server without TLS repeats phases 1
//! and 2 so that `security_overhead.tls` can compare the two.
//!
//! Authentication is on: the phases present a managed `nl_…` API key, and the server writes
//! its audit trail. Unless `--skip-auth-cost`, two fresh servers, one as above and one with
//! both off (`NEURALLOG_BENCH_DISABLE_AUTH=1`), then take the same ingest and single-event
//! appends in alternating rounds, and the report gives the ratios on ÷ off (`auth_cost`): what
//! authentication, authorisation and audit together cost, on the same machine in the same run.

mod tls;

mod generate;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use neurallog_client::{Client, Framing};
use reqwest::Method;
use serde_json::{Value, json};

use generate::Source;

/// Benchmark options.
#[derive(Clone, Debug, Args)]
pub struct BenchArgs {
    /// Target a running server instead of starting one (needs --api-key).
    #[arg(long)]
    pub url: Option<String>,
    /// API key for --url.
    #[arg(long, env = "NEURALLOG_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Events to ingest into the benchmark log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Stop ingesting after this many seconds even if fewer events were sent.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Size of a synthetic event in bytes.
    #[arg(long, default_value_t = 200)]
    pub event_size: usize,
    /// Events per ingest request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent ingest connections.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Real-log NDJSON file to use instead of synthetic events (repeated as needed).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Newest-100 reads to time.
    #[arg(long, default_value_t = 2000)]
    pub queries: u64,
    /// Seconds of each 64-connection comparison phase (0 skips them).
    #[arg(long, default_value_t = 5.0)]
    pub compare_seconds: f64,
    /// Keep the server's data here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print only the JSON document.
    #[arg(long)]
    pub json: bool,
    /// Run the started server on this Redis (its REDIS_URL; REDIS_PASSWORD is passed on from
    /// the environment). The bench logs are emptied first; "disk" is then Redis's dataset
    /// memory, and `redis-benchmark -P 64` on the same Redis gives the raw ceiling.
    #[arg(long)]
    pub redis: Option<String>,
    /// Serve HTTPS (a self-signed certificate made for the run) and measure TLS's cost
    /// against a second, plain-HTTP run of the ingest and newest-100 phases.
    #[arg(long)]
    pub tls: bool,
    /// How to trust a --url server over HTTPS.
    #[command(flatten)]
    pub trust: crate::cli::TlsArgs,
    /// Run the started server with authentication and audit off (a benchmark-only setting
    /// that production mode refuses).
    #[arg(long)]
    pub no_auth: bool,
    /// Skip the second run without authentication that measures what authentication and
    /// audit cost.
    #[arg(long)]
    pub skip_auth_cost: bool,
}

/// The server under test.
struct Target {
    client: Client,
    child: Option<tokio::process::Child>,
    data_dir: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
    _pki: Option<tls::SelfSigned>,
}

/// Starts the server under test; with `auth`, the phases then use a managed `nl_…` API key
/// (admin role, created through the API), so that they pay for what real clients pay: key
/// lookup, keyed hash, RBAC decision and an audit event per call. With `with_tls` it serves
/// HTTPS; `data_dir` is used instead of a temporary directory.
async fn start_target(
    args: &BenchArgs,
    auth: bool,
    with_tls: bool,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<Target> {
    start_target_with(args, auth, with_tls, data_dir, false).await
}

/// [`start_target`]; `unencrypted` sets the benchmark-only switch that stores events without
/// encryption (to measure what encryption at rest costs).
async fn start_target_with(
    args: &BenchArgs,
    auth: bool,
    with_tls: bool,
    data_dir: Option<&PathBuf>,
    unencrypted: bool,
) -> anyhow::Result<Target> {
    if let Some(url) = &args.url {
        let key = args
            .api_key
            .clone()
            .context("--url needs --api-key (or NEURALLOG_API_KEY)")?;
        return Ok(Target {
            client: Client::with_tls(url, Some(key), &args.trust.options()?)?,
            child: None,
            data_dir: None,
            _temp: None,
            _pki: None,
        });
    }
    let (temp, dir) = match data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let key = format!("bench-{:032x}", rand::random::<u128>());
    let pki = if with_tls {
        Some(tls::SelfSigned::create()?)
    } else {
        None
    };
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("PORT", port.to_string())
        .env("METRICS_PORT", "0")
        .env("NEURALLOG_BIND", "127.0.0.1")
        .env("NEURALLOG_DATA_DIR", &dir)
        .env("API_KEY", &key)
        .env("LOG_LEVEL", "warn")
        .env("NEURALLOG_BENCH_DISABLE_AUTH", if auth { "0" } else { "1" })
        .envs(args.redis.iter().map(|url| ("REDIS_URL", url.as_str())))
        .envs(unencrypted.then_some(("NEURALLOG_UNSAFE_DISABLE_ENCRYPTION", "1")))
        .envs(pki.iter().flat_map(|p| p.server_env()))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the server")?;
    let (base, trust) = match &pki {
        Some(p) => (format!("https://127.0.0.1:{port}"), p.client_options()),
        None => (format!("http://127.0.0.1:{port}"), Default::default()),
    };
    let mut client = Client::with_tls(&base, Some(key), &trust)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.ready().await.unwrap_or(false) {
        anyhow::ensure!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if auth {
        let created = client
            .create_key(&neurallog_core::admin::CreateKeyRequest {
                name: "bench".into(),
                role: "admin".into(),
                ..Default::default()
            })
            .await
            .context("cannot create the benchmark API key")?;
        client = Client::with_tls(&base, Some(created.key), &trust)?;
    }
    Ok(Target {
        client,
        child: Some(child),
        data_dir: Some(dir),
        _temp: temp,
        _pki: pki,
    })
}

/// CPU seconds (user + system) a process has used, from /proc (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // NB: USER_HZ is 100 on every Linux target this runs on.
    Some((utime + stime) / 100.0)
}

/// Events of each run of the encryption comparison (at most `--events`).
const OVERHEAD_EVENTS: u64 = 500_000;

/// Ingest and full-scan rates of a fresh embedded server with encryption at rest on and off
/// (the `security_overhead.encryption` entry), both without authentication so that only
/// encryption differs. `None` against `--url` or `--redis`, where the bench does not control
/// the server's settings or storage.
async fn encryption_overhead(
    args: &BenchArgs,
    source: Arc<Source>,
) -> anyhow::Result<Option<Value>> {
    if args.url.is_some() || args.redis.is_some() {
        return Ok(None);
    }
    let mut short = args.clone();
    short.events = args.events.min(OVERHEAD_EVENTS);
    short.duration = None;
    short.data_dir = None;
    let mut rates = Vec::new();
    for unencrypted in [false, true] {
        let mut target = start_target_with(&short, false, false, None, unencrypted).await?;
        let ing = ingest(&target.client, source.clone(), &short, short.events).await?;
        let scan_s = full_scan(&target.client).await?;
        rates.push((
            ing.events as f64 / ing.seconds,
            ing.raw_bytes as f64 / 1e6 / scan_s,
        ));
        if let Some(child) = target.child.as_mut() {
            let _ = child.kill().await;
        }
    }
    let ((ingest_on, scan_on), (ingest_off, scan_off)) = (rates[0], rates[1]);
    Ok(Some(json!({
        "events": short.events,
        "ingest_events_per_sec_on": ingest_on,
        "ingest_events_per_sec_off": ingest_off,
        "ingest_ratio": ingest_on / ingest_off,
        "scan_mb_per_sec_on": scan_on,
        "scan_mb_per_sec_off": scan_off,
        "scan_ratio": scan_on / scan_off,
    })))
}

/// Stops a started server with SIGTERM (a graceful drain and flush) and returns its peak RSS
/// measured just before.
async fn stop(child: &mut tokio::process::Child) -> anyhow::Result<Option<f64>> {
    let mut peak = None;
    if let Some(pid) = child.id() {
        peak = peak_rss_mb(pid);
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .context("the server did not stop")??;
    anyhow::ensure!(status.success(), "the server exited with {status}");
    Ok(peak)
}

/// Peak resident memory of a process, from /proc (Linux).
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Bytes a directory occupies on disk: allocated blocks, not file lengths, since the
/// storage engine preallocates its journal as a sparse file.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => allocated(&m),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(unix)]
fn allocated(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::blocks(m) * 512
}

#[cfg(not(unix))]
fn allocated(m: &std::fs::Metadata) -> u64 {
    m.len()
}

struct IngestResult {
    events: u64,
    raw_bytes: u64,
    seconds: f64,
}

/// Phase 1: batched ingest over several connections.
async fn ingest(
    client: &Client,
    source: Arc<Source>,
    args: &BenchArgs,
    events: u64,
) -> anyhow::Result<IngestResult> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.batch),
        "--batch must be from 1 to 10000"
    );
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let total_batches = events.div_ceil(args.batch as u64);
    // A pool of distinct request bodies, built before the clock starts and cycled; each
    // block the server writes still compresses on its own, so the disk figure stays honest.
    let pool_size = total_batches.clamp(1, 256);
    let mut rng = rand::rng();
    let mut pool = Vec::with_capacity(pool_size as usize);
    let mut seq = 0u64;
    for _ in 0..pool_size {
        let mut body = Vec::with_capacity(args.batch * (args.event_size + 1));
        let mut raw = 0u64;
        for _ in 0..args.batch {
            let e = source.event(seq, &mut rng);
            seq += 1;
            raw += e.len() as u64;
            body.extend_from_slice(&e);
            body.push(b'\n');
        }
        pool.push((bytes::Bytes::from(body), raw));
    }
    let pool = Arc::new(pool);
    let next = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let raw = Arc::new(AtomicU64::new(0));
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, pool, next, events, raw) = (
            client.clone(),
            pool.clone(),
            next.clone(),
            events.clone(),
            raw.clone(),
        );
        let batch = args.batch as u64;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total_batches || deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok::<(), anyhow::Error>(());
                }
                let (body, bytes) = &pool[(i % pool.len() as u64) as usize];
                let r = client
                    .append("bench", body.to_vec(), Framing::Ndjson)
                    .await?;
                anyhow::ensure!(
                    r.count as u64 == batch,
                    "server stored {} of {batch}",
                    r.count
                );
                events.fetch_add(batch, Ordering::Relaxed);
                raw.fetch_add(*bytes, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(IngestResult {
        events: events.load(Ordering::Relaxed),
        raw_bytes: raw.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Phase 2: newest-100 reads, one at a time; (p50, p99) in ms.
async fn newest_100(client: &Client, n: u64) -> anyhow::Result<(f64, f64)> {
    let mut h = Histogram::<u64>::new(3)?;
    let params = vec![("limit".to_owned(), "100".to_owned())];
    for _ in 0..n.max(1) {
        let t = Instant::now();
        let r = client.read("bench", &params).await?;
        h.record(t.elapsed().as_micros() as u64)?;
        anyhow::ensure!(!r.entries.is_empty(), "the benchmark log is empty");
    }
    Ok((
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// Phase 3: a search that matches nothing scans the whole log; best of three, in seconds.
async fn full_scan(client: &Client) -> anyhow::Result<f64> {
    let params = vec![
        ("query".to_owned(), "zq-never-occurs-qz".to_owned()),
        ("log_name".to_owned(), "bench".to_owned()),
    ];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let r = client.search(&params).await?;
        anyhow::ensure!(r.total == 0, "the scan needle was found");
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Phase 4: one kind of request over 64 connections for `secs`; requests per second.
async fn closed_loop(
    client: &Client,
    secs: f64,
    kind: &'static str,
    event: Arc<Vec<u8>>,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, done, event) = (client.clone(), done.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let rb = match kind {
                    "append" => client
                        .request(Method::POST, "/logs/bench-single")
                        .header("Content-Type", "application/json")
                        .body(event.to_vec()),
                    "read" => client.request(Method::GET, "/logs/bench?limit=100"),
                    _ => {
                        client.request(Method::GET, "/search?query=error&log_name=bench&limit=100")
                    }
                };
                let resp = rb.send().await?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "{kind} answered {}",
                    resp.status()
                );
                resp.bytes().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// What authentication, authorisation and audit cost: two fresh servers, one with them and one
/// without, take the same work in alternating rounds (so that drift in the machine's load hits
/// both alike): batched ingest, then single-event appends over 64 connections. The ratios are
/// on ÷ off of the totals.
async fn measure_auth_cost(args: &BenchArgs, source: Arc<Source>) -> anyhow::Result<Value> {
    const ROUNDS: u64 = 3;
    let mut on = start_target(args, true, args.tls, None).await?;
    let mut off = start_target(args, false, args.tls, None).await?;
    let per_round = (args.events.min(600_000) / ROUNDS).max(args.batch as u64);
    let secs = (args.compare_seconds / 2.0).max(0.0);
    let one = Arc::new(source.event(0, &mut rand::rng()));
    // [on, off]: (events, seconds) of ingest, (requests, seconds) of appends, and the server
    // process's CPU seconds in each (less disturbed by other load on the machine than
    // throughput is).
    let mut ingest_tot = [(0u64, 0f64); 2];
    let mut append_tot = [(0f64, 0f64); 2];
    let mut ingest_cpu = [0f64; 2];
    let mut append_cpu = [0f64; 2];
    let pids = [
        on.child.as_ref().and_then(|c| c.id()),
        off.child.as_ref().and_then(|c| c.id()),
    ];
    for _ in 0..ROUNDS {
        for (i, t) in [&on, &off].into_iter().enumerate() {
            let c0 = pids[i].and_then(cpu_seconds);
            let r = ingest(&t.client, source.clone(), args, per_round).await?;
            let c1 = pids[i].and_then(cpu_seconds);
            ingest_tot[i].0 += r.events;
            ingest_tot[i].1 += r.seconds;
            ingest_cpu[i] += c1.zip(c0).map_or(0.0, |(b, a)| b - a);
            if secs > 0.0 {
                let rps = closed_loop(&t.client, secs, "append", one.clone()).await?;
                let c2 = pids[i].and_then(cpu_seconds);
                append_tot[i].0 += rps * secs;
                append_tot[i].1 += secs;
                append_cpu[i] += c2.zip(c1).map_or(0.0, |(b, a)| b - a);
            }
        }
    }
    for t in [&mut on, &mut off] {
        if let Some(child) = t.child.as_mut() {
            let _ = child.kill().await;
        }
    }
    let eps = |(n, s): (u64, f64)| n as f64 / s.max(1e-9);
    let rps = |(n, s): (f64, f64)| (s > 0.0).then(|| n / s);
    let (on_eps, off_eps) = (eps(ingest_tot[0]), eps(ingest_tot[1]));
    let (on_rps, off_rps) = (rps(append_tot[0]), rps(append_tot[1]));
    // Server CPU microseconds per ingested event / per append request.
    let per = |cpu: f64, n: f64| (cpu > 0.0 && n > 0.0).then(|| cpu * 1e6 / n);
    let ingest_us = [0, 1].map(|i| per(ingest_cpu[i], ingest_tot[i].0 as f64));
    let append_us = [0, 1].map(|i| per(append_cpu[i], append_tot[i].0));
    Ok(json!({
        "rounds": ROUNDS,
        "server_cpu_us_per_ingested_event_on": ingest_us[0],
        "server_cpu_us_per_ingested_event_off": ingest_us[1],
        "server_cpu_us_per_append_request_on": append_us[0],
        "server_cpu_us_per_append_request_off": append_us[1],
        "ingest_events_per_s_auth_on": on_eps,
        "ingest_events_per_s_auth_off": off_eps,
        "ingest_ratio_on_over_off": on_eps / off_eps,
        "append_rps_auth_on": on_rps,
        "append_rps_auth_off": off_rps,
        "append_ratio_on_over_off": on_rps.zip(off_rps).map(|(a, b)| a / b),
    }))
}

/// Redis's `used_memory_dataset`: what the benchmark's data occupies when the Redis serves
/// nothing else.
async fn redis_dataset_bytes(url: &str) -> anyhow::Result<Option<u64>> {
    use neurallog_storage::Storage;
    let mut opts = neurallog_storage::redis::RedisOptions::new(url);
    opts.password = std::env::var("REDIS_PASSWORD").ok();
    let store = neurallog_storage::redis::RedisStorage::connect(opts)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(store.disk_usage().await?)
}

/// `redis-benchmark -P 64` against the same Redis: pipelined `RPUSH` and `SET` of values the
/// size of one event — what storing each event as its own Redis value could reach at best.
/// `None`s when `redis-benchmark` is not installed.
fn redis_ceiling(url: &str, event_size: usize) -> (Option<f64>, Option<f64>) {
    let mut cmd = std::process::Command::new("redis-benchmark");
    cmd.args([
        "-u",
        url,
        "-P",
        "64",
        "-t",
        "rpush,set",
        "-n",
        "1000000",
        "-q",
    ])
    .args(["-d", &event_size.to_string()])
    .stderr(std::process::Stdio::null());
    if let Ok(pw) = std::env::var("REDIS_PASSWORD") {
        cmd.args(["-a", &pw]);
    }
    let Ok(out) = cmd.output() else {
        return (None, None);
    };
    // `-q` prints "\r"-separated progress, then "SET: 123.45 requests per second, …".
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let rate = |name: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .next_back()
    };
    (rate("RPUSH"), rate("SET"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// Redis keeps the logs of earlier runs: start from empty ones.
async fn empty_bench_logs(client: &Client) -> anyhow::Result<()> {
    for log in ["bench", "bench-single"] {
        let resp = client
            .request(Method::DELETE, &format!("/logs/{log}"))
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success() || resp.status() == reqwest::StatusCode::NOT_FOUND,
            "cannot empty the bench log {log}: {}",
            resp.status()
        );
    }
    Ok(())
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let source = Arc::new(match &args.corpus {
        Some(p) => Source::corpus(p)?,
        None => Source::Synthetic {
            size: args.event_size,
        },
    });
    anyhow::ensure!(
        !(args.tls && args.url.is_some()),
        "--tls starts its own HTTPS server: give it without --url (use --ca-cert for an https --url)"
    );
    let auth = !args.no_auth;
    let mut target = start_target(&args, auth, args.tls, args.data_dir.as_ref()).await?;
    let client = target.client.clone();
    if args.redis.is_some() {
        empty_bench_logs(&client).await?;
    }
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };

    say(&format!(
        "ingesting {} events in batches of {} over {} connections…",
        args.events, args.batch, args.concurrency
    ));
    let ing = ingest(&client, source.clone(), &args, args.events).await?;
    say("timing newest-100 reads…");
    let (p50, p99) = newest_100(&client, args.queries).await?;
    say("scanning the whole log…");
    let scan_s = full_scan(&client).await?;
    let (mut append_rps, mut read_rps, mut search_rps) = (None, None, None);
    let mut single_raw = 0u64;
    if args.compare_seconds > 0.0 {
        say("64-connection comparison: single-event appends, newest-100 reads, searches…");
        let one = Arc::new(source.event(0, &mut rand::rng()));
        let rps = closed_loop(&client, args.compare_seconds, "append", one.clone()).await?;
        single_raw = (rps * args.compare_seconds) as u64 * one.len() as u64;
        append_rps = Some(rps);
        read_rps = Some(closed_loop(&client, args.compare_seconds, "read", one.clone()).await?);
        search_rps = Some(closed_loop(&client, args.compare_seconds, "search", one).await?);
    }

    // Stop the server gracefully so that its data is flushed, then measure it.
    let mut peak_rss = None;
    let mut disk = None;
    if let Some(child) = target.child.as_mut() {
        peak_rss = stop(child).await?;
        disk = target.data_dir.as_deref().map(dir_bytes);
    }
    let mut ceiling = (None, None);
    if let Some(url) = &args.redis {
        say("measuring redis: dataset memory and redis-benchmark ceiling…");
        disk = redis_dataset_bytes(url).await?;
        ceiling = redis_ceiling(url, args.event_size);
    }
    let mut security_overhead = serde_json::Map::new();
    if args.tls {
        say("baseline without TLS: ingest and newest-100 reads…");
        // A fresh directory, so that the plain run starts from the same empty store.
        let mut plain = start_target(&args, auth, false, None).await?;
        if args.redis.is_some() {
            empty_bench_logs(&plain.client).await?;
        }
        let plain_ing = ingest(&plain.client, source.clone(), &args, args.events).await?;
        let (plain_p50, plain_p99) = newest_100(&plain.client, args.queries).await?;
        if let Some(child) = plain.child.as_mut() {
            stop(child).await?;
        }
        let rate = |r: &IngestResult| r.events as f64 / r.seconds;
        security_overhead.insert(
            "tls".into(),
            json!({
                "ingest_ratio": rate(&ing) / rate(&plain_ing),
                "newest100_p50_ratio": p50 / plain_p50.max(0.001),
                "newest100_p99_ratio": p99 / plain_p99.max(0.001),
                "ingest_events_per_s_tls": rate(&ing),
                "ingest_events_per_s_plain": rate(&plain_ing),
                "newest100_p50_ms_plain": plain_p50,
                "newest100_p99_ms_plain": plain_p99,
            }),
        );
    }

    let auth_cost = if auth && args.url.is_none() && args.redis.is_none() && !args.skip_auth_cost {
        say("authentication and audit on vs off, alternating…");
        measure_auth_cost(&args, source.clone()).await?
    } else {
        Value::Null
    };

    say("comparing ingest and scan with encryption at rest on and off…");
    if let Some(enc) = encryption_overhead(&args, source.clone()).await? {
        security_overhead.insert("encryption".into(), enc);
    }

    let mb = |b: u64| b as f64 / 1e6;
    let raw_total = ing.raw_bytes + single_raw;
    let report = json!({
        "ingest_events_per_s": ing.events as f64 / ing.seconds,
        "ingest_mb_per_s": mb(ing.raw_bytes) / ing.seconds,
        "query_newest100_p50_ms": p50,
        "query_newest100_p99_ms": p99,
        "search_scan_mb_per_s": mb(ing.raw_bytes) / scan_s,
        "peak_rss_mb": peak_rss,
        "disk_ratio": disk.map(|d| raw_total as f64 / d.max(1) as f64),
        "disk_bytes": disk,
        "raw_bytes": raw_total,
        "security_overhead": Value::Object(security_overhead),
        "auth_cost": auth_cost,
        "compare_append_rps": append_rps,
        "compare_newest100_rps": read_rps,
        "compare_search_rps": search_rps,
        "redis_ceiling_rpush_per_s": ceiling.0,
        "redis_ceiling_set_per_s": ceiling.1,
        "params": {
            "events": ing.events, "event_size": args.event_size, "batch": args.batch,
            "concurrency": args.concurrency, "corpus": args.corpus.as_ref().map(|p| p.display().to_string()),
            "log_events_at_query_time": ing.events, "compare_seconds": args.compare_seconds,
            "auth": if auth { "api-key+audit" } else { "off" }, "encryption": args.url.is_none(), "tls": args.tls, "machine": machine(),
            "storage": if args.redis.is_some() { "redis" } else { "embedded" },
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Value) {
    let f = |k: &str, digits: usize| {
        r[k].as_f64()
            .map_or("n/a".to_owned(), |v| format!("{v:.digits$}"))
    };
    let rows = vec![
        vec![
            "ingest".into(),
            format!(
                "{} events/s, {} MB/s",
                f("ingest_events_per_s", 0),
                f("ingest_mb_per_s", 1)
            ),
            "≥ 500 000 events/s, 100 MB/s".into(),
        ],
        vec![
            "newest 100, p50 / p99".into(),
            format!(
                "{} / {} ms",
                f("query_newest100_p50_ms", 2),
                f("query_newest100_p99_ms", 2)
            ),
            "p99 < 5 ms (10 M-event log)".into(),
        ],
        vec![
            "search scan".into(),
            format!("{} MB/s", f("search_scan_mb_per_s", 0)),
            "≥ 1000 MB/s per core".into(),
        ],
        vec![
            "server peak RSS".into(),
            format!("{} MB", f("peak_rss_mb", 0)),
            "< 256 MB".into(),
        ],
        vec![
            "disk ratio (raw / on disk)".into(),
            format!("{}×", f("disk_ratio", 1)),
            "≥ 5×".into(),
        ],
        vec![
            "appends, 1 event/request, 64 conns".into(),
            format!("{} req/s", f("compare_append_rps", 0)),
            "≥ 50 000 (20× 2 500)".into(),
        ],
        vec![
            "newest-100 reads, 64 conns".into(),
            format!("{} req/s", f("compare_newest100_rps", 0)),
            "≥ 13 400 (20× 670)".into(),
        ],
        vec![
            "searches, 64 conns".into(),
            format!("{} req/s", f("compare_search_rps", 0)),
            "≥ 9 800 (20× 490)".into(),
        ],
        vec![
            "redis ceiling: redis-benchmark -P 64, RPUSH / SET".into(),
            format!(
                "{} / {} ops/s",
                f("redis_ceiling_rpush_per_s", 0),
                f("redis_ceiling_set_per_s", 0)
            ),
            "ingest ≥ ½ of it (with --redis)".into(),
        ],
        vec![
            "auth + audit cost: ingest / 1-event appends, on ÷ off".into(),
            format!(
                "{} / {}",
                r["auth_cost"]["ingest_ratio_on_over_off"]
                    .as_f64()
                    .map_or("n/a".to_owned(), |v| format!("{v:.3}")),
                r["auth_cost"]["append_ratio_on_over_off"]
                    .as_f64()
                    .map_or("n/a".to_owned(), |v| format!("{v:.3}")),
            ),
            "audit ≤ 10 % of ingest".into(),
        ],
        vec![
            "security overhead: TLS ingest / plain ingest".into(),
            r["security_overhead"]["tls"]["ingest_ratio"]
                .as_f64()
                .map_or("n/a (run with --tls)".to_owned(), |v| format!("{v:.2}×")),
            "≥ 0.85× (≤ 15 %)".into(),
        ],
        vec![
            "server CPU per ingested event / per 1-event append, auth on vs off".into(),
            {
                let c = &r["auth_cost"];
                let us = |k: &str| {
                    c[k].as_f64()
                        .map_or("n/a".to_owned(), |v| format!("{v:.2}"))
                };
                format!(
                    "{} vs {} µs / {} vs {} µs",
                    us("server_cpu_us_per_ingested_event_on"),
                    us("server_cpu_us_per_ingested_event_off"),
                    us("server_cpu_us_per_append_request_on"),
                    us("server_cpu_us_per_append_request_off")
                )
            },
            "".into(),
        ],
    ];
    crate::output::table(&["figure", "measured", "target (spec §9)"], rows);
    println!("parameters: {}", r["params"]);
}
