//! `neurallog backup` / `neurallog restore` through the real binary: round trips between the
//! embedded store and a real Redis in both directions, and refusal of damaged, truncated and
//! wrongly keyed archives with nothing restored.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use neurallog_core::query::ReadQuery;
use neurallog_core::{Entry, TenantId};
use neurallog_storage::crypt::{Encryption, Keyring, MasterKey};
use neurallog_storage::embedded::EmbeddedOptions;
use neurallog_storage::redis::testing::{RedisServer, redis_available};
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::testsuite::{event, log, tenant};
use neurallog_storage::{EmbeddedStorage, Scope, Storage};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn run(args: &[&str], env: &[(&str, String)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_neurallog"));
    cmd.args(args).env_clear().env("LOG_LEVEL", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run neurallog");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The master key of every store in these tests (the binary and the test's own handles must
/// agree, as a server and its backup job do).
const MASTER: &str = "5e1f0a9c3b7d2e4f6a8c0b1d3e5f7a9c2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f";

fn encryption() -> Encryption {
    let master = MasterKey::parse(MASTER).expect("master key");
    Encryption::On(Arc::new(Keyring::new(master, None)))
}

fn embedded_env(dir: &Path, key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("NEURALLOG_MASTER_KEY", MASTER.to_owned()),
        ("NEURALLOG_DATA_DIR", dir.display().to_string()),
        ("NEURALLOG_BACKUP_KEY", key.to_owned()),
    ]
}

fn redis_env(redis: &RedisServer, key: &str) -> Vec<(&'static str, String)> {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    vec![
        ("NEURALLOG_MASTER_KEY", MASTER.to_owned()),
        ("REDIS_URL", redis.url()),
        ("NEURALLOG_DATA_DIR", dir.display().to_string()),
        ("NEURALLOG_BACKUP_KEY", key.to_owned()),
    ]
}

fn default_tenant() -> TenantId {
    TenantId::default_tenant()
}

/// Two tenants (the server's own and one from the registry), three logs, a settings record
/// that travels and a key record that must not.
async fn seed(s: &dyn Storage) {
    let (d, acme) = (default_tenant(), tenant("acme"));
    s.meta_put(Scope::Global, "tenants", "acme", b"{}".to_vec())
        .await
        .expect("registry");
    for round in 0..3 {
        let evs = (0..1000)
            .map(|i| {
                event(
                    serde_json::json!({"i": i, "r": round, "text": "héllo \"quoted\" \u{1F600}"}),
                    Some(978_307_200_000 + i),
                )
            })
            .collect();
        s.append(&d, &log("app"), evs).await.expect("append");
    }
    s.append(
        &d,
        &log("web"),
        vec![event(serde_json::json!({"path": "/"}), None)],
    )
    .await
    .expect("append");
    s.append(
        &acme,
        &log("app"),
        (0..10)
            .map(|i| event(serde_json::json!({"acme": i}), None))
            .collect(),
    )
    .await
    .expect("append");
    s.meta_put(
        Scope::Tenant(&acme),
        "settings",
        "retention",
        br#"{"default_days":30}"#.to_vec(),
    )
    .await
    .expect("meta");
    s.meta_put(Scope::Tenant(&d), "keys", "k1", b"secret-record".to_vec())
        .await
        .expect("meta");
    s.meta_put(
        Scope::Tenant(&acme),
        "settings",
        "wrapped-key",
        b"wrapped".to_vec(),
    )
    .await
    .expect("meta");
}

type Snapshot = Vec<(String, String, Vec<(String, i64, String)>)>;

async fn snapshot(s: &dyn Storage) -> Snapshot {
    let mut out = Vec::new();
    for t in [default_tenant(), tenant("acme")] {
        for l in s.list_logs(&t).await.expect("list") {
            let mut all: Vec<Entry> = Vec::new();
            let mut q = ReadQuery {
                limit: 1000,
                ..ReadQuery::default()
            };
            loop {
                let page = s.read(&t, &l, &q).await.expect("read");
                all.extend(page.entries);
                match page.next_cursor {
                    Some(c) => q.before = Some(c),
                    None => break,
                }
            }
            let rows = all
                .iter()
                .map(|e| (e.id.to_string(), e.timestamp, e.data.get().to_owned()))
                .collect();
            out.push((t.to_string(), l.to_string(), rows));
        }
    }
    out
}

fn open_embedded(dir: &Path) -> Arc<dyn Storage> {
    let options = EmbeddedOptions {
        encryption: encryption(),
    };
    Arc::new(EmbeddedStorage::open_with(dir, options).expect("open"))
}

async fn open_redis(redis: &RedisServer) -> Arc<dyn Storage> {
    Arc::new(
        RedisStorage::connect({
            let mut o = RedisOptions::new(redis.url());
            o.encryption = encryption();
            o
        })
        .await
        .expect("redis"),
    )
}

/// Seeds an embedded store, closes it, and returns its snapshot.
async fn seeded_embedded(dir: &Path) -> Snapshot {
    let s = open_embedded(dir);
    seed(s.as_ref()).await;
    let snap = snapshot(s.as_ref()).await;
    s.flush().await.expect("flush");
    drop(s);
    // The writer thread releases the store as it winds down.
    std::thread::sleep(std::time::Duration::from_millis(300));
    snap
}

async fn assert_restored(s: &dyn Storage, expected: &Snapshot) {
    assert_eq!(&snapshot(s).await, expected);
    assert_eq!(
        s.meta_get(Scope::Tenant(&tenant("acme")), "settings", "retention")
            .await
            .expect("meta"),
        Some(br#"{"default_days":30}"#.to_vec())
    );
    assert_eq!(
        s.meta_get(Scope::Tenant(&default_tenant()), "keys", "k1")
            .await
            .expect("meta"),
        None,
        "key records are not carried"
    );
    assert_eq!(
        s.meta_get(Scope::Tenant(&tenant("acme")), "settings", "wrapped-key")
            .await
            .expect("meta"),
        None,
        "only the retention settings travel"
    );
    assert_eq!(
        s.meta_get(Scope::Global, "tenants", "acme")
            .await
            .expect("meta"),
        Some(b"{}".to_vec()),
        "the tenant's registry record travels"
    );
}

fn archive_in(dir: &Path) -> PathBuf {
    dir.join("all.nlbk")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_to_redis_and_back() {
    if !redis_available() {
        return;
    }
    let src = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let expected = seeded_embedded(src.path()).await;
    assert_eq!(expected.len(), 3);
    let file = archive_in(out.path());
    let (ok, stdout, stderr) = run(
        &["backup", "--out", file.to_str().expect("path")],
        &embedded_env(src.path(), KEY),
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("2 tenant(s), 3 log(s), 3011 entries"),
        "{stdout}"
    );
    let raw = std::fs::read(&file).expect("archive");
    assert!(
        !raw.windows(6).any(|w| w == b"quoted"),
        "event text is encrypted"
    );

    // Into Redis.
    let redis = RedisServer::start(&[]);
    let (ok, stdout, stderr) = run(
        &["restore", file.to_str().expect("path")],
        &redis_env(&redis, KEY),
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("3011 entries (0 already present"),
        "{stdout}"
    );
    let r = open_redis(&redis).await;
    assert_restored(r.as_ref(), &expected).await;
    // A second restore skips everything and changes nothing.
    let (ok, stdout, stderr) = run(
        &["restore", file.to_str().expect("path")],
        &redis_env(&redis, KEY),
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("0 entries (3011 already present"),
        "{stdout}"
    );
    assert_restored(r.as_ref(), &expected).await;
    // New appends on the restored log sort after the restored ids.
    let new = r
        .append(
            &default_tenant(),
            &log("app"),
            vec![event(serde_json::json!({"n": 1}), None)],
        )
        .await
        .expect("append");
    assert!(new[0].to_string() > expected[0].2[0].0);

    // And back: Redis -> a fresh embedded store, one tenant only.
    let file2 = out.path().join("acme.nlbk");
    let (ok, _, stderr) = run(
        &[
            "backup",
            "--tenant",
            "acme",
            "--out",
            file2.to_str().expect("path"),
        ],
        &redis_env(&redis, KEY),
    );
    assert!(ok, "{stderr}");
    let dst = tempfile::tempdir().expect("tempdir");
    let (ok, stdout, stderr) = run(
        &["restore", file2.to_str().expect("path")],
        &embedded_env(dst.path(), KEY),
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 tenant(s) [acme], 1 log(s), 10 entries"),
        "{stdout}"
    );
    let e = open_embedded(dst.path());
    let acme_only: Snapshot = expected
        .iter()
        .filter(|(t, _, _)| t == "acme")
        .cloned()
        .collect();
    assert_eq!(snapshot(e.as_ref()).await, acme_only);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_embedded() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(&[]);
    let r = open_redis(&redis).await;
    seed(r.as_ref()).await;
    let expected = snapshot(r.as_ref()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let file = archive_in(out.path());
    let (ok, _, stderr) = run(
        &["backup", "--out", file.to_str().expect("path")],
        &redis_env(&redis, KEY),
    );
    assert!(ok, "{stderr}");
    let dst = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = run(
        &["restore", file.to_str().expect("path")],
        &embedded_env(dst.path(), KEY),
    );
    assert!(ok, "{stderr}");
    let e = open_embedded(dst.path());
    assert_restored(e.as_ref(), &expected).await;
}

fn one_line_error(stderr: &str, expect: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(expect),
        "{}",
        lines[0]
    );
}

/// Corrupted, truncated and wrongly keyed archives are refused and nothing is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_archives_restore_nothing() {
    let src = tempfile::tempdir().expect("tempdir");
    seeded_embedded(src.path()).await;
    let out = tempfile::tempdir().expect("tempdir");
    let file = archive_in(out.path());
    let (ok, _, stderr) = run(
        &["backup", "--out", file.to_str().expect("path")],
        &embedded_env(src.path(), KEY),
    );
    assert!(ok, "{stderr}");
    let good = std::fs::read(&file).expect("archive");

    let mut flipped = good.clone();
    let mid = flipped.len() * 2 / 3;
    flipped[mid] ^= 0x01;
    let truncated = good[..good.len() - 40].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("corrupted", flipped, KEY, "damaged or was altered"),
        ("truncated", truncated, KEY, "truncated"),
        ("wrong-key", good.clone(), OTHER_KEY, "wrong backup key"),
        (
            "not-an-archive",
            b"hello".to_vec(),
            KEY,
            "not a NeuralLog backup archive",
        ),
    ];
    for (name, bytes, key, expect) in cases {
        let bad = out.path().join(format!("{name}.nlbk"));
        std::fs::write(&bad, bytes).expect("write");
        let dst = tempfile::tempdir().expect("tempdir");
        let (ok, stdout, stderr) = run(
            &["restore", bad.to_str().expect("path")],
            &embedded_env(dst.path(), key),
        );
        assert!(!ok, "{name}: must fail: {stdout}");
        one_line_error(&stderr, expect);
        // Nothing half-restored: the target is empty (it was not even opened).
        let e = open_embedded(dst.path());
        for t in [default_tenant(), tenant("acme")] {
            assert!(
                e.list_logs(&t).await.expect("list").is_empty(),
                "{name}: data restored"
            );
        }
        assert_eq!(
            e.meta_get(Scope::Tenant(&tenant("acme")), "settings", "retention")
                .await
                .expect("meta"),
            None,
            "{name}: settings restored"
        );
    }
    // The intact archive restores, proving the cases above failed for their damage only.
    let dst = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = run(
        &["restore", file.to_str().expect("path")],
        &embedded_env(dst.path(), KEY),
    );
    assert!(ok, "{stderr}");
}

#[test]
fn no_backup_key_no_backup() {
    let src = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("x.nlbk");
    let env = vec![
        ("NEURALLOG_DATA_DIR", src.path().display().to_string()),
        (
            "NEURALLOG_MASTER_KEY",
            "bWFzdGVyLWtleS1tYXN0ZXIta2V5LW1hc3Rlci1rZXk=".to_owned(),
        ),
    ];
    let (ok, _, stderr) = run(&["backup", "--out", file.to_str().expect("path")], &env);
    assert!(!ok);
    one_line_error(&stderr, "NEURALLOG_BACKUP_KEY");
    assert!(!file.exists());
    let (ok, _, stderr) = run(&["restore", file.to_str().expect("path")], &env);
    assert!(!ok);
    one_line_error(&stderr, "NEURALLOG_BACKUP_KEY");
    let mut bad = env.clone();
    bad.push(("NEURALLOG_BACKUP_KEY", "too-short".to_owned()));
    let (ok, _, stderr) = run(&["backup", "--out", file.to_str().expect("path")], &bad);
    assert!(!ok);
    one_line_error(&stderr, "backup key");
}

/// The operator's command line (`backup --tenant T --out DIR --keep N`) writes timestamped
/// files and keeps the newest N.
#[test]
fn directory_backups_keep_the_newest() {
    let src = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    drop(EmbeddedStorage::open_unencrypted(src.path()).expect("create an empty store"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let env = embedded_env(src.path(), KEY);
    for _ in 0..3 {
        let (ok, _, stderr) = run(
            &[
                "backup",
                "--tenant",
                "acme",
                "--out",
                dir.path().to_str().expect("path"),
                "--keep",
                "2",
            ],
            &env,
        );
        assert!(ok, "{stderr}");
        std::thread::sleep(std::time::Duration::from_millis(5)); // distinct file names
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("neurallog-backup-acme-") && n.ends_with(".nlbk"))
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = run(
        &["backup", "--out", "x.nlbk"],
        &embedded_env(&empty.path().join("typo"), KEY),
    );
    assert!(!ok);
    one_line_error(&stderr, "no NeuralLog store");
    let (ok, _, stderr) = run(&["backup", "--out", "x.nlbk", "--keep", "1"], &env);
    assert!(!ok);
    one_line_error(&stderr, "need a directory");
}
