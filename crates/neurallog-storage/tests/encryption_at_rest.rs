//! Encryption at rest, tested as attacks on the stored bytes: what someone holding the data
//! directory or the Redis data can read (nothing of the events), and what they can make the
//! server accept (nothing: tampered, moved, cut and unknown-key blocks fail as Corrupt).

mod support;

use std::path::Path;
use std::sync::Arc;

use neurallog_core::query::ReadQuery;
use neurallog_storage::crypt::{Encryption, Keyring, MasterKey};
use neurallog_storage::embedded::EmbeddedOptions;
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::testsuite::{event, log, tenant};
use neurallog_storage::{EmbeddedStorage, ErrorKind, Storage};
use serde_json::json;
use support::{RedisServer, redis_available};

const MARKER: &str = "zq-unique-marker-7f3a91c2-plaintext";

fn ring(seed: u8) -> Encryption {
    Encryption::On(Arc::new(Keyring::new(
        MasterKey::from_bytes(&[seed; 32]),
        None,
    )))
}

fn open(dir: &Path, encryption: Encryption) -> EmbeddedStorage {
    EmbeddedStorage::open_with(dir, EmbeddedOptions { encryption }).expect("open")
}

/// Writes marker events: a small block, then enough for several large blocks, and rewrites
/// one block (a delete).
///
/// NB: the fjall journal compresses (LZ4) values over 4 KiB, which would hide even a plain
/// block from the search below; the small block keeps the control (encryption off) honest.
async fn write_markers(s: &dyn Storage) {
    let (t, l) = (tenant("acme"), log("app"));
    let small = vec![event(json!({"msg": MARKER}), None)];
    s.append(&t, &log("small"), small).await.expect("append");
    let events: Vec<_> = (0..6000)
        .map(|i| event(json!({"msg": format!("{MARKER} #{i}"), "n": i}), None))
        .collect();
    let ids = s.append(&t, &l, events).await.expect("append");
    assert!(s.delete_entry(&t, &l, ids[10]).await.expect("delete"));
    s.flush().await.expect("flush");
}

/// Whether `bytes` reveal `needle`: in clear, or inside any zstd frame found in them (blocks
/// are compressed, so an unencrypted block shows its events only once decompressed — as
/// anyone holding the files could).
fn reveals(bytes: &[u8], needle: &[u8]) -> bool {
    let found = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    if found(bytes) {
        return true;
    }
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let mut from = 0;
    while let Some(pos) = bytes[from..].windows(4).position(|w| w == MAGIC) {
        let start = from + pos;
        let mut out = Vec::new();
        if let Ok(d) = zstd::stream::read::Decoder::new(&bytes[start..]) {
            // A partial frame still yields what it decoded before the error.
            let _ = std::io::Read::read_to_end(&mut d.single_frame(), &mut out);
        }
        if found(&out) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Every byte of every file under `dir` (journal, segments, blob files, metadata).
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && reveals(&bytes, needle)
            {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_files_hold_no_event_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path(), ring(1));
    write_markers(&s).await;
    // A marker put in clear on purpose (a log name) proves the walk reads what is stored.
    let visible = log("visible-log-name-4d2c");
    s.append(
        &tenant("acme"),
        &visible,
        vec![event(json!({"x": 1}), None)],
    )
    .await
    .expect("append");
    s.flush().await.expect("flush");
    assert!(files_contain(dir.path(), b"visible-log-name-4d2c"));
    assert!(!files_contain(dir.path(), MARKER.as_bytes()));
    let page = s
        .read(&tenant("acme"), &log("app"), &ReadQuery::default())
        .await
        .expect("read");
    assert!(page.entries[0].data.get().contains(MARKER));

    // Control: the same writes without encryption leave the marker readable in the files.
    let plain_dir = tempfile::tempdir().expect("tempdir");
    let p = open(plain_dir.path(), Encryption::Off);
    write_markers(&p).await;
    assert!(files_contain(plain_dir.path(), MARKER.as_bytes()));
}

/// Every key and value in Redis, as raw bytes, one item per element.
async fn redis_dump(server: &RedisServer) -> Vec<Vec<u8>> {
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .expect("keys");
    let mut all = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut c)
            .await
            .expect("type");
        let mut cmd = match kind.as_str() {
            "hash" => redis::cmd("HGETALL"),
            "zset" => redis::cmd("ZRANGE"),
            "list" => redis::cmd("LRANGE"),
            "set" => redis::cmd("SMEMBERS"),
            _ => redis::cmd("GET"),
        };
        cmd.arg(&key);
        if matches!(kind.as_str(), "zset" | "list") {
            cmd.arg(0).arg(-1);
        }
        let items: Vec<Vec<u8>> = cmd.query_async(&mut c).await.expect("value");
        all.push(key.into_bytes());
        all.extend(items);
    }
    all
}

async fn redis_reveals(server: &RedisServer, needle: &str) -> bool {
    redis_dump(server)
        .await
        .iter()
        .any(|v| reveals(v, needle.as_bytes()))
}

async fn redis_store(server: &RedisServer, encryption: Encryption) -> RedisStorage {
    let mut opts = RedisOptions::new(server.url());
    opts.encryption = encryption;
    RedisStorage::connect(opts).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_event_plaintext() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let s = redis_store(&server, ring(1)).await;
    write_markers(&s).await;
    assert!(
        redis_reveals(&server, "datakeys").await,
        "the dump reads Redis"
    );
    assert!(!redis_reveals(&server, MARKER).await);

    let plain = RedisServer::start(&[]);
    let p = redis_store(&plain, Encryption::Off).await;
    write_markers(&p).await;
    assert!(redis_reveals(&plain, MARKER).await);
}

async fn read_err(s: &dyn Storage, t: &str, l: &str) -> neurallog_storage::StorageError {
    s.read(&tenant(t), &log(l), &ReadQuery::default())
        .await
        .expect_err("the damaged block must not read")
}

async fn read_ok(s: &dyn Storage, t: &str, l: &str) -> usize {
    s.read(&tenant(t), &log(l), &ReadQuery::default())
        .await
        .expect("read")
        .entries
        .len()
}

async fn three_logs(s: &dyn Storage) {
    for (t, l) in [("acme", "a"), ("acme", "b"), ("other", "a")] {
        s.append(
            &tenant(t),
            &log(l),
            vec![event(json!({"who": t, "log": l, "secret": MARKER}), None)],
        )
        .await
        .expect("append");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_tampered_moved_cut_and_unknown_key_blocks_are_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path(), ring(1));
    three_logs(&s).await;
    let block = |t: &str, l: &str| {
        s.raw_blocks(&tenant(t), &log(l))
            .expect("raw")
            .pop()
            .expect("a block")
    };
    let (a_key, a_val) = block("acme", "a");
    let (b_key, b_val) = block("acme", "b");
    let (o_key, o_val) = block("other", "a");

    // A flipped byte in the ciphertext.
    let mut flipped = a_val.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 1;
    s.raw_put_block(&a_key, &flipped).expect("put");
    let e = read_err(&s, "acme", "a").await;
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(!e.message.contains(MARKER));
    assert_eq!(read_ok(&s, "acme", "b").await, 1, "other blocks still read");

    // Cut short.
    s.raw_put_block(&a_key, &a_val[..a_val.len() - 5])
        .expect("put");
    assert_eq!(read_err(&s, "acme", "a").await.kind, ErrorKind::Corrupt);

    // A key id nobody has.
    let mut unknown = a_val.clone();
    unknown[26..34].copy_from_slice(&[0xee; 8]);
    s.raw_put_block(&a_key, &unknown).expect("put");
    let e = read_err(&s, "acme", "a").await;
    assert!(e.message.contains("unknown data key"), "{e}");

    // Another log's block, and another tenant's, under this log's key.
    s.raw_put_block(&a_key, &b_val).expect("put");
    assert_eq!(read_err(&s, "acme", "a").await.kind, ErrorKind::Corrupt);
    s.raw_put_block(&a_key, &o_val).expect("put");
    assert_eq!(read_err(&s, "acme", "a").await.kind, ErrorKind::Corrupt);
    // And this tenant's block planted in the other tenant's log.
    s.raw_put_block(&o_key, &a_val).expect("put");
    assert_eq!(read_err(&s, "other", "a").await.kind, ErrorKind::Corrupt);

    // Restored, it reads again: the failures came from the bytes, not from a broken store.
    s.raw_put_block(&a_key, &a_val).expect("put");
    s.raw_put_block(&o_key, &o_val).expect("put");
    assert_eq!(read_ok(&s, "acme", "a").await, 1);
    assert_eq!(read_ok(&s, "other", "a").await, 1);
    let _ = b_key;
}

/// Runs a Lua script on the server (binary-safe copies and edits of stored values).
fn lua(server: &RedisServer, script: &str, keys: &[&str], args: &[&str]) -> String {
    let n = keys.len().to_string();
    let mut all = vec!["EVAL", script, n.as_str()];
    all.extend_from_slice(keys);
    all.extend_from_slice(args);
    server.cli(None, &all)
}

const FIRST_BLOCK: &str = "return redis.call('HKEYS', KEYS[1])[1]";
/// Replaces the first block of KEYS[2] by the first block of KEYS[1].
const PLANT: &str = "local v = redis.call('HGET', KEYS[1], redis.call('HKEYS', KEYS[1])[1]) \
     redis.call('HSET', KEYS[2], redis.call('HKEYS', KEYS[2])[1], v) return 1";
/// Flips one bit of the byte ARGV[1] bytes before the end of the first block of KEYS[1].
const FLIP: &str = "local f = redis.call('HKEYS', KEYS[1])[1] local v = redis.call('HGET', KEYS[1], f) \
     local n = #v - tonumber(ARGV[1]) local b = bit.bxor(string.byte(v, n), 1) \
     redis.call('HSET', KEYS[1], f, v:sub(1, n - 1) .. string.char(b) .. v:sub(n + 1)) return 1";
/// Cuts the first block of KEYS[1] short by ARGV[1] bytes.
const CUT: &str = "local f = redis.call('HKEYS', KEYS[1])[1] local v = redis.call('HGET', KEYS[1], f) \
     redis.call('HSET', KEYS[1], f, v:sub(1, #v - tonumber(ARGV[1]))) return 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tampered_moved_and_cut_blocks_are_corrupt() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let s = redis_store(&server, ring(1)).await;
    three_logs(&s).await;
    let (aa, ab, oa) = (
        "neurallog:{acme}:blocks:a",
        "neurallog:{acme}:blocks:b",
        "neurallog:{other}:blocks:a",
    );
    assert!(!lua(&server, FIRST_BLOCK, &[aa], &[]).trim().is_empty());

    // Each read runs on a fresh replica, so that no decoded block is cached from before.
    let fresh = || redis_store(&server, ring(1));

    lua(&server, FLIP, &[aa], &["20"]);
    let e = read_err(&fresh().await, "acme", "a").await;
    assert_eq!(e.kind, ErrorKind::Corrupt, "{e}");
    assert!(!e.message.contains(MARKER));
    assert_eq!(
        read_ok(&fresh().await, "acme", "b").await,
        1,
        "other blocks still read"
    );
    lua(&server, FLIP, &[aa], &["20"]); // flipped back
    assert_eq!(read_ok(&fresh().await, "acme", "a").await, 1);

    lua(&server, PLANT, &[oa, aa], &[]);
    assert_eq!(
        read_err(&fresh().await, "acme", "a").await.kind,
        ErrorKind::Corrupt
    );
    lua(&server, PLANT, &[ab, oa], &[]);
    assert_eq!(
        read_err(&fresh().await, "other", "a").await.kind,
        ErrorKind::Corrupt
    );
    lua(&server, CUT, &[ab], &["3"]);
    assert_eq!(
        read_err(&fresh().await, "acme", "b").await.kind,
        ErrorKind::Corrupt
    );
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_keys_and_master_key_rotation_rewraps() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let a = redis_store(&server, ring(1)).await;
    three_logs(&a).await;
    // A second replica with the same master key reads what the first wrote.
    let b = redis_store(&server, ring(1)).await;
    assert_eq!(read_ok(&b, "other", "a").await, 1);
    // The first replica rotates the tenant's key and writes with it: the second, whose
    // cached keys predate the rotation, still reads the new block at once.
    let Encryption::On(ring_a) = ring(1) else {
        unreachable!()
    };
    let a2 = redis_store(&server, Encryption::On(ring_a.clone())).await;
    ring_a.rotate(&a2, &tenant("other")).await.expect("rotate");
    a2.append(
        &tenant("other"),
        &log("a"),
        vec![event(json!({"n": 2}), None)],
    )
    .await
    .expect("append");
    assert_eq!(read_ok(&b, "other", "a").await, 2);

    // A replica with another master key is refused at the start-up check.
    let wrong = Arc::new(Keyring::new(MasterKey::from_bytes(&[2; 32]), None));
    let e = wrong
        .check_and_rewrap(&redis_store(&server, Encryption::Off).await)
        .await
        .expect_err("wrong master key");
    assert!(
        e.message
            .starts_with("the master key does not match the stored data keys"),
        "{e}"
    );

    // Rotation: new key with the old one as previous re-wraps every data key...
    let rotating = Arc::new(Keyring::new(
        MasterKey::from_bytes(&[2; 32]),
        Some(MasterKey::from_bytes(&[1; 32])),
    ));
    let plain = redis_store(&server, Encryption::Off).await;
    let report = rotating.check_and_rewrap(&plain).await.expect("rewrap");
    assert_eq!((report.tenants, report.keys, report.rewrapped), (2, 3, 3));
    // ... after which the new key alone reads everything, and the old one no longer does.
    let new_only = Arc::new(Keyring::new(MasterKey::from_bytes(&[2; 32]), None));
    assert_eq!(
        new_only
            .check_and_rewrap(&plain)
            .await
            .expect("check")
            .rewrapped,
        0
    );
    let c = redis_store(&server, Encryption::On(new_only)).await;
    assert_eq!(read_ok(&c, "acme", "a").await, 1);
    let old_only = Arc::new(Keyring::new(MasterKey::from_bytes(&[1; 32]), None));
    assert!(old_only.check_and_rewrap(&plain).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_key_rotation_keeps_old_blocks_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Arc::new(Keyring::new(MasterKey::from_bytes(&[1; 32]), None));
    let s = open(dir.path(), Encryption::On(keyring.clone()));
    let (t, l) = (tenant("acme"), log("app"));
    s.append(&t, &l, vec![event(json!({"n": 1}), None)])
        .await
        .expect("append");
    let first = keyring.tenant_keys(&s, &t).await.expect("keys").current();
    let second = keyring.rotate(&s, &t).await.expect("rotate");
    assert_ne!(first, second);
    s.append(&t, &l, vec![event(json!({"n": 2}), None)])
        .await
        .expect("append");
    let blocks = s.raw_blocks(&t, &l).expect("raw");
    let ids: Vec<[u8; 8]> = blocks
        .iter()
        .map(|(_, v)| v[26..34].try_into().expect("key id"))
        .collect();
    assert_eq!(ids, vec![first.to_bytes(), second.to_bytes()]);
    assert_eq!(read_ok(&s, "acme", "app").await, 2);
    // The other tenant was not rotated.
    assert!(
        keyring
            .tenant_keys(&s, &tenant("other"))
            .await
            .expect("keys")
            .keys()
            .count()
            == 1
    );
}

/// The re-encryption job after a data key rotation: every block ends up under the current
/// key, contents and ids unchanged, and a second run has nothing left to do.
async fn reencryption_moves_old_blocks_to_the_current_key(s: &dyn Storage, keyring: &Keyring) {
    let (t, l) = (tenant("acme"), log("app"));
    for n in 0..3 {
        s.append(&t, &l, vec![event(json!({"n": n}), None)])
            .await
            .expect("append");
    }
    let before = s.read(&t, &l, &ReadQuery::default()).await.expect("read");
    let old = keyring.tenant_keys(s, &t).await.expect("keys").current();
    let new = keyring.rotate(s, &t).await.expect("rotate");
    s.append(&t, &l, vec![event(json!({"n": "new"}), None)])
        .await
        .expect("append");
    // A budget of two blocks: two of the three old ones, and more to come.
    let first = s.reencrypt(&t, &l, 2).await.expect("reencrypt");
    assert_eq!((first.blocks, first.more), (2, true));
    let second = s.reencrypt(&t, &l, 10).await.expect("reencrypt");
    assert_eq!((second.blocks, second.more), (1, false));
    let third = s.reencrypt(&t, &l, 10).await.expect("reencrypt");
    assert_eq!((third.blocks, third.more), (0, false), "nothing left");
    let after = s.read(&t, &l, &ReadQuery::default()).await.expect("read");
    assert_eq!(after.entries.len(), 4);
    assert_eq!(
        &after.entries[1..],
        &before.entries[..],
        "same entries, same ids"
    );
    assert_ne!(old, new);
    // Another tenant's blocks are not touched.
    assert_eq!(
        s.reencrypt(&tenant("other"), &l, 10)
            .await
            .expect("reencrypt")
            .blocks,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reencryption_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Arc::new(Keyring::new(MasterKey::from_bytes(&[1; 32]), None));
    let s = open(dir.path(), Encryption::On(keyring.clone()));
    reencryption_moves_old_blocks_to_the_current_key(&s, &keyring).await;
    // Every stored block now names the current key in its header.
    let current = keyring
        .tenant_keys(&s, &tenant("acme"))
        .await
        .expect("keys")
        .current();
    for (_, v) in s.raw_blocks(&tenant("acme"), &log("app")).expect("raw") {
        assert_eq!(v[26..34], current.to_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reencryption_job() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start(&[]);
    let keyring = Arc::new(Keyring::new(MasterKey::from_bytes(&[1; 32]), None));
    let s = redis_store(&server, Encryption::On(keyring.clone())).await;
    reencryption_moves_old_blocks_to_the_current_key(&s, &keyring).await;
}
