//! engine-compare: runs NeuralLog's block-store workload on fjall and on redb and reports
//! write throughput under per-commit fdatasync, newest-first and seek read latencies, reverse
//! scan throughput, disk usage, and reopen time after an unclean exit and after a clean close.
//!
//! Usage: `cargo run --release -- [--blocks N] [--reads R] [--rounds K] [--dir PATH]
//! [--engines a,b] [--seed S]`. `--blocks N` is the number of durable commits (each writes 4
//! blocks), default 2000.
//!
//! The write phase of every run happens in a child process (this same binary, started with the
//! hidden `--child-write` argument) that exits without closing the engine, as a killed server
//! would. The parent then reopens the store, which times crash recovery and lets it check that
//! every acknowledged commit survived.

mod engines;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engines::{Kind, Res};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;

/// Size of one stored block: NeuralLog's compressed blocks are ~30-60 KB.
const BLOCK_BYTES: usize = 48 * 1024;
/// Blocks written per commit, spread evenly over `LOGS`.
const BLOCKS_PER_COMMIT: usize = 4;
/// The logs written to; every commit touches all of them, as a group commit would.
const LOGS: [(&str, &str); 2] = [("acme", "api"), ("acme", "web")];
/// How many distinct random payloads to cycle through (generating 4*N fresh ones is wasted
/// time: neither engine compresses or deduplicates values in this configuration).
const PAYLOAD_POOL: usize = 64;
/// The newest-first query reads this many blocks, like a "tail" request.
const NEWEST_TAKE: usize = 2;
/// First timestamp (ms) used for ids; each commit advances it by one.
const BASE_MS: u64 = 1_750_000_000_000;

struct Config {
    commits: usize,
    rounds: usize,
    reads: usize,
    dir: Option<PathBuf>,
    engines: Vec<Kind>,
    seed: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: engine-compare [--blocks N] [--reads R] [--rounds K] [--dir PATH] [--engines fjall,fjall-kvsep,redb] [--seed S]\n\
         \x20 --blocks N   durable commits to write (4 blocks of 48 KiB each), default 2000\n\
         \x20 --reads R    newest-first queries and seeks to time, default 5000 each\n\
         \x20 --rounds K   runs per engine, engines alternating, medians reported; default 3\n\
         \x20 --dir PATH   where to put the stores (a fresh subfolder per engine, removed after);\n\
         \x20              default: a temporary folder\n\
         \x20 --engines    comma-separated list, default fjall,fjall-kvsep,redb\n\
         \x20 --seed S     random seed, default 42"
    );
    std::process::exit(2)
}

fn parse_args() -> Config {
    let mut cfg = Config {
        commits: 2000,
        rounds: 3,
        reads: 5000,
        dir: None,
        engines: vec![Kind::Fjall, Kind::FjallKvSep, Kind::Redb],
        seed: 42,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--blocks" | "--commits" => cfg.commits = val().parse().unwrap_or_else(|_| usage()),
            "--rounds" => cfg.rounds = val().parse().unwrap_or_else(|_| usage()),
            "--reads" => cfg.reads = val().parse().unwrap_or_else(|_| usage()),
            "--dir" => cfg.dir = Some(PathBuf::from(val())),
            "--seed" => cfg.seed = val().parse().unwrap_or_else(|_| usage()),
            "--engines" => {
                cfg.engines = val()
                    .split(',')
                    .map(|s| Kind::parse(s.trim()).unwrap_or_else(|| usage()))
                    .collect()
            }
            _ => usage(),
        }
    }
    if cfg.commits == 0 || cfg.rounds == 0 || cfg.engines.is_empty() {
        usage()
    }
    cfg
}

// ---------------------------------------------------------------------------------------------
// Keys

/// `<tenant>\0<log>\0`, the prefix all of one log's blocks share.
fn log_prefix(tenant: &str, log: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + log.len() + 2 + 16);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(log.as_bytes());
    k.push(0);
    k
}

/// A block key: the log prefix then the id as 16 big-endian bytes, so keys sort by id.
fn block_key(prefix: &[u8], id: u128) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 16);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `<tenant>\0<log>`, the key of a log's metadata record.
fn meta_key(tenant: &str, log: &str) -> Vec<u8> {
    let mut k = log_prefix(tenant, log);
    k.pop();
    k
}

/// Ids look like NeuralLog's: a millisecond timestamp in the high 64 bits, then a sequence
/// number and random bits, so ids increase with commit order.
fn make_id(commit: usize, seq: usize, rnd: u32) -> u128 {
    let ms = BASE_MS + commit as u64;
    (u128::from(ms) << 64) | ((seq as u128) << 32) | u128::from(rnd)
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().max(1) as u64);
}

/// A percentile of a nanosecond histogram, in microseconds.
fn pct_us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Bytes under `path`: (apparent size, allocated on disk).
fn disk_usage(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else {
            apparent += md.len();
            allocated += md.blocks() * 512;
        }
    }
    (apparent, allocated)
}

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// The workload

/// The metrics of one run, by name; `ROWS` says how each is shown.
type Metrics = std::collections::BTreeMap<&'static str, f64>;

/// Data shared by the writer (child) and the reader (parent) phases.
struct Layout {
    prefixes: Vec<Vec<u8>>,
    metas: Vec<Vec<u8>>,
    /// `(lowest, highest)` possible block key of each log.
    bounds: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Layout {
    fn new() -> Self {
        let prefixes: Vec<Vec<u8>> = LOGS.iter().map(|(t, l)| log_prefix(t, l)).collect();
        Self {
            metas: LOGS.iter().map(|(t, l)| meta_key(t, l)).collect(),
            bounds: prefixes
                .iter()
                .map(|p| (block_key(p, 0), block_key(p, u128::MAX)))
                .collect(),
            prefixes,
        }
    }
}

/// Blocks each log holds after `commits` commits.
fn blocks_per_log(commits: usize) -> u64 {
    (commits * BLOCKS_PER_COMMIT / LOGS.len()) as u64
}

/// Phase 1, run in the child process: `commits` durable commits, each writing
/// `BLOCKS_PER_COMMIT` blocks spread over the logs plus each log's metadata record.
fn write_phase(kind: Kind, dir: &Path, commits: usize, seed: u64) -> Res<Metrics> {
    let mut rng = StdRng::seed_from_u64(seed);
    // Random bytes stand in for zstd output: both are incompressible.
    let pool: Vec<Vec<u8>> = (0..PAYLOAD_POOL)
        .map(|_| {
            let mut b = vec![0u8; BLOCK_BYTES];
            rng.fill_bytes(&mut b);
            b
        })
        .collect();
    let layout = Layout::new();
    let per_log = BLOCKS_PER_COMMIT / LOGS.len();

    let mut engine = kind.open(dir)?;
    let mut hist = histogram();
    let mut elapsed = Duration::ZERO;
    let mut payload = 0u64;
    for c in 0..commits {
        // Build the commit outside the timed region: only the engine's work is measured.
        let mut blocks = Vec::with_capacity(BLOCKS_PER_COMMIT);
        let mut metas = Vec::with_capacity(LOGS.len());
        for (li, prefix) in layout.prefixes.iter().enumerate() {
            let mut last_id = 0;
            for s in 0..per_log {
                let id = make_id(c, s, rng.random());
                let value = &pool[(c * BLOCKS_PER_COMMIT + li * per_log + s) % PAYLOAD_POOL];
                let key = block_key(prefix, id);
                payload += (key.len() + value.len()) as u64;
                blocks.push((key, value.as_slice()));
                last_id = id;
            }
            // The log's metadata (newest id, block count), kept as NeuralLog's writer does,
            // in the other keyspace/table of the same atomic commit.
            let mut m = last_id.to_be_bytes().to_vec();
            m.extend_from_slice(&(((c + 1) * per_log) as u64).to_be_bytes());
            metas.push((layout.metas[li].clone(), m));
        }
        let t = Instant::now();
        engine.commit(&blocks, &metas)?;
        let d = t.elapsed();
        elapsed += d;
        record(&mut hist, d);
    }
    // Deliberately no close: the caller exits the process with the engine still open.
    std::mem::forget(engine);

    let secs = elapsed.as_secs_f64();
    let mut m = Metrics::new();
    m.insert("write_secs", secs);
    m.insert("payload_bytes", payload as f64);
    m.insert("commits_per_sec", commits as f64 / secs);
    m.insert("write_mib_per_sec", payload as f64 / MIB / secs);
    m.insert("commit_p50_us", pct_us(&hist, 0.50));
    m.insert("commit_p99_us", pct_us(&hist, 0.99));
    Ok(m)
}

/// Runs the write phase in a child process that exits without closing the engine.
fn spawn_writer(kind: Kind, dir: &Path, commits: usize, seed: u64) -> Res<Metrics> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--child-write")
        .arg(kind.name())
        .arg(dir)
        .arg(commits.to_string())
        .arg(seed.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("{} writer failed: {}", kind.name(), out.status).into());
    }
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let mut m = Metrics::new();
    for key in [
        "write_secs",
        "payload_bytes",
        "commits_per_sec",
        "write_mib_per_sec",
        "commit_p50_us",
        "commit_p99_us",
    ] {
        let x = v
            .get(key)
            .and_then(|x| x.as_f64())
            .ok_or("writer output lacks a metric")?;
        m.insert(key, x);
    }
    Ok(m)
}

/// The child side of `spawn_writer`: prints the metrics as JSON and exits at once, skipping
/// every destructor (so no engine gets to flush or close), like a killed process.
fn child_write(args: &[String]) -> ! {
    let run = || -> Res<Metrics> {
        let kind = Kind::parse(&args[0]).ok_or("unknown engine")?;
        write_phase(
            kind,
            Path::new(&args[1]),
            args[2].parse()?,
            args[3].parse()?,
        )
    };
    match run() {
        Ok(m) => {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&m).expect("metrics serialize")
            );
            let _ = out.flush();
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("writer: {e}");
            std::process::exit(1)
        }
    }
}

/// One full run of the workload on a fresh store in `dir`.
fn run_engine(kind: Kind, dir: &Path, cfg: &Config, seed: u64) -> Res<Metrics> {
    let started = Instant::now();
    let layout = Layout::new();
    let expected = blocks_per_log(cfg.commits);

    // 1. Durable batched writes, in a process that then dies without closing the store.
    let mut m = spawn_writer(kind, dir, cfg.commits, seed)?;
    let payload = m["payload_bytes"];
    let (_, alloc) = disk_usage(dir);
    m.insert("disk_after_write_mib", alloc as f64 / MIB);

    // 5a. Reopen after the unclean exit: crash recovery (journal replay, allocator repair...).
    let t = Instant::now();
    let engine = kind.open(dir)?;
    m.insert("crash_reopen_ms", t.elapsed().as_secs_f64() * 1e3);

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);

    // 2. Newest-first: the newest NEWEST_TAKE blocks of a random log, by reverse range scan.
    let mut h = histogram();
    for _ in 0..cfg.reads {
        let (lo, hi) = &layout.bounds[rng.random_range(0..LOGS.len())];
        let t = Instant::now();
        let got = engine.scan_rev(lo, hi, NEWEST_TAKE)?;
        record(&mut h, t.elapsed());
        if got.blocks != NEWEST_TAKE as u64 {
            return Err(format!("{}: newest-first read came back short", kind.name()).into());
        }
    }
    m.insert("newest2_p50_us", pct_us(&h, 0.50));
    m.insert("newest2_p99_us", pct_us(&h, 0.99));

    // 3. Seek: the first block with id >= a random id inside the log's id span.
    let mut h = histogram();
    let newest_ms_id = make_id(cfg.commits - 1, 0, 0);
    for _ in 0..cfg.reads {
        let li = rng.random_range(0..LOGS.len());
        let id = make_id(rng.random_range(0..cfg.commits), 0, 0) | u128::from(rng.random::<u64>());
        let from = block_key(&layout.prefixes[li], id);
        let t = Instant::now();
        let got = engine.first_at_or_after(&from, &layout.bounds[li].1)?;
        record(&mut h, t.elapsed());
        // Only an id past the newest block of the last commit may find nothing.
        if got.blocks != 1 && id < newest_ms_id {
            return Err(format!("{}: seek found nothing", kind.name()).into());
        }
    }
    m.insert("seek_p50_us", pct_us(&h, 0.50));
    m.insert("seek_p99_us", pct_us(&h, 0.99));

    // 4. Full reverse scan of the first log.
    let (lo, hi) = &layout.bounds[0];
    let t = Instant::now();
    let got = engine.scan_rev(lo, hi, usize::MAX)?;
    let secs = t.elapsed().as_secs_f64();
    m.insert("reverse_scan_mib_per_sec", got.bytes as f64 / MIB / secs);

    // Every acknowledged commit must have survived the unclean exit.
    let other = engine.scan_rev(&layout.bounds[1].0, &layout.bounds[1].1, usize::MAX)?;
    if got.blocks != expected || other.blocks != expected {
        return Err(format!(
            "{}: lost acknowledged blocks ({} and {} of {expected})",
            kind.name(),
            got.blocks,
            other.blocks
        )
        .into());
    }

    // 5b. Clean close and reopen, then the files as they rest.
    let t = Instant::now();
    drop(engine);
    m.insert("close_ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let engine = kind.open(dir)?;
    m.insert("clean_reopen_ms", t.elapsed().as_secs_f64() * 1e3);
    drop(engine);
    let (_, alloc) = disk_usage(dir);
    m.insert("disk_final_mib", alloc as f64 / MIB);
    m.insert("space_amp", alloc as f64 / payload);
    m.insert("total_secs", started.elapsed().as_secs_f64());
    Ok(m)
}

/// The median of each metric over several runs.
fn medians(runs: &[Metrics]) -> Metrics {
    let mut out = Metrics::new();
    for &key in runs[0].keys() {
        let mut v: Vec<f64> = runs.iter().map(|r| r[key]).collect();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let med = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        out.insert(key, med);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Output

/// Table rows: label, then the metric(s) shown, and the number of decimals.
const ROWS: &[(&str, &[&str], usize)] = &[
    (
        "durable commits/s (4 × 48 KiB, fdatasync each)",
        &["commits_per_sec"],
        0,
    ),
    ("write throughput MiB/s", &["write_mib_per_sec"], 1),
    (
        "commit latency p50 / p99 µs",
        &["commit_p50_us", "commit_p99_us"],
        0,
    ),
    (
        "newest-2 reverse scan p50 / p99 µs",
        &["newest2_p50_us", "newest2_p99_us"],
        1,
    ),
    (
        "seek first key ≥ id p50 / p99 µs",
        &["seek_p50_us", "seek_p99_us"],
        1,
    ),
    (
        "full reverse scan of one log MiB/s",
        &["reverse_scan_mib_per_sec"],
        0,
    ),
    ("disk right after writes MiB", &["disk_after_write_mib"], 1),
    ("disk after clean close MiB", &["disk_final_mib"], 1),
    ("space amplification (disk / payload)", &["space_amp"], 2),
    ("reopen after unclean exit ms", &["crash_reopen_ms"], 1),
    ("clean close ms", &["close_ms"], 1),
    ("reopen after clean close ms", &["clean_reopen_ms"], 1),
    ("one run, total s", &["total_secs"], 1),
];

fn markdown(results: &[(Kind, Metrics)]) -> String {
    let mut out = String::from("| metric |");
    for (k, _) in results {
        out.push_str(&format!(" {} |", k.name()));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(results.len()));
    out.push('\n');
    for (label, keys, decimals) in ROWS {
        out.push_str(&format!("| {label} |"));
        for (_, m) in results {
            let cells: Vec<String> = keys
                .iter()
                .map(|k| format!("{:.*}", decimals, m[k]))
                .collect();
            out.push_str(&format!(" {} |", cells.join(" / ")));
        }
        out.push('\n');
    }
    out
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child-write") && args.len() == 6 {
        child_write(&args[2..]);
    }
    let cfg = parse_args();
    // Keep the temporary folder alive until the end; with --dir, use it as given.
    let tmp;
    let base = match &cfg.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("engine-compare-")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    eprintln!(
        "workload: {} commits x {} blocks of {} KiB over {} logs; {} reads each; {} rounds; dir {}",
        cfg.commits,
        BLOCKS_PER_COMMIT,
        BLOCK_BYTES / 1024,
        LOGS.len(),
        cfg.reads,
        cfg.rounds,
        base.display()
    );

    // Rounds alternate the engine order so that slow spells of the shared disk do not all
    // land on one engine.
    let mut runs: Vec<Vec<Metrics>> = vec![Vec::new(); cfg.engines.len()];
    for round in 0..cfg.rounds {
        let n = cfg.engines.len();
        for i in 0..n {
            let e = (i + round) % n;
            let kind = cfg.engines[e];
            let dir = base.join(kind.name());
            // Each run starts from an empty folder and leaves nothing behind.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let seed = cfg.seed.wrapping_add(round as u64);
            let m = run_engine(kind, &dir, &cfg, seed)?;
            eprintln!(
                "round {}: {:<12} {:>6.0} commits/s  {:>5.1} s",
                round + 1,
                kind.name(),
                m["commits_per_sec"],
                m["total_secs"]
            );
            std::fs::remove_dir_all(&dir)?;
            runs[e].push(m);
        }
    }

    let results: Vec<(Kind, Metrics)> = cfg
        .engines
        .iter()
        .zip(&runs)
        .map(|(&k, r)| (k, medians(r)))
        .collect();
    println!("Medians of {} rounds.\n", cfg.rounds);
    println!("{}", markdown(&results));
    let doc = json!({
        "workload": {
            "commits": cfg.commits,
            "blocks_per_commit": BLOCKS_PER_COMMIT,
            "block_bytes": BLOCK_BYTES,
            "logs": LOGS.len(),
            "reads": cfg.reads,
            "newest_take": NEWEST_TAKE,
            "cache_bytes": engines::CACHE_BYTES,
            "rounds": cfg.rounds,
            "seed": cfg.seed,
        },
        "median": results.iter().map(|(k, m)| (k.name().to_string(), json!(m))).collect::<serde_json::Map<_, _>>(),
        "runs": cfg.engines.iter().zip(&runs).map(|(k, r)| (k.name().to_string(), json!(r))).collect::<serde_json::Map<_, _>>(),
    });
    println!("```json\n{}\n```", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
