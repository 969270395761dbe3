//! The conformance suite against the embedded backend, each case on a fresh directory, with
//! encryption at rest on (as the server runs it) and off.

use std::sync::Arc;

use neurallog_storage::crypt::{Encryption, Keyring, MasterKey};
use neurallog_storage::embedded::EmbeddedOptions;
use neurallog_storage::{EmbeddedStorage, Storage};

async fn fresh(encrypted: bool) -> Arc<dyn Storage> {
    // NB: the directory is leaked for the life of the test process so that the store can
    // outlive this function; it is removed when the OS cleans the temp dir.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let encryption = if encrypted {
        Encryption::On(Arc::new(Keyring::new(MasterKey::generate().0, None)))
    } else {
        Encryption::Off
    };
    Arc::new(EmbeddedStorage::open_with(&dir, EmbeddedOptions { encryption }).expect("open"))
}

mod encrypted {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(true));
}

mod unencrypted {
    use super::*;
    neurallog_storage::conformance_tests!(fresh(false));
}

mod erasure_on_disk {
    //! Erased events must be gone from the store's files, not only hidden: after `erase` and
    //! `compact`, no table or blob file under the data directory holds any part of a block
    //! that held them.
    //!
    //! NB: the write-ahead journal (`*.jnl`) is the exception: the engine rotates and deletes
    //! it only after 64 MB of further writes (it has no call to rotate it on demand), so a
    //! copy of a recently written block can stay there until then (docs/security.md).

    use std::path::Path;

    use neurallog_core::query::{FieldFilter, Matcher};
    use neurallog_storage::testsuite::{event, log, tenant};
    use neurallog_storage::{EmbeddedStorage, Storage};

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_none_or(|e| e != "jnl") {
                out.push(p);
            }
        }
    }

    /// The files under `dir` that contain `needle`.
    fn on_disk(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
        let mut all = Vec::new();
        files(dir, &mut all);
        all.into_iter()
            .filter(|p| {
                std::fs::read(p)
                    .map(|b| b.windows(needle.len()).any(|w| w == needle))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// A 48-byte window of `old` found in none of `now`: present in a file only if the old
    /// block (not its rewrite, which shares most of its bytes) still is.
    fn distinguishing(old: &[u8], now: &[Vec<u8>]) -> Vec<u8> {
        old.windows(48)
            .find(|w| !now.iter().any(|n| n.windows(48).any(|x| x == *w)))
            .expect("the rewrite differs from the old block")
            .to_vec()
    }

    async fn check(event_bytes: usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStorage::open_unencrypted(dir.path()).expect("open");
        let (t, l) = (tenant("acme"), log("app"));
        // Random text does not compress away, so the blocks are as large as asked: above the
        // blob threshold they live in blob files, below it inline in tables.
        let noise = |n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
                .collect()
        };
        let evs = (0..8)
            .map(|i| {
                let email = if i == 3 {
                    "victim@example.com"
                } else {
                    "other@example.com"
                };
                event(
                    serde_json::json!({"user": {"email": email}, "pad": noise(event_bytes)}),
                    None,
                )
            })
            .collect();
        store.append(&t, &l, evs).await.expect("append");
        store.compact().await.expect("compact"); // the block reaches tables / blob files
        let before = store.raw_block_values(&t, &l).expect("raw");
        assert_eq!(before.len(), 1);
        assert!(
            !on_disk(dir.path(), &before[0]).is_empty(),
            "the block must be found while it exists (or the test proves nothing)"
        );
        let m = Matcher::new(
            "",
            vec![FieldFilter::new("user.email", "\"victim@example.com\"").expect("filter")],
        );
        assert_eq!(store.erase(&t, &l, &m).await.expect("erase"), 1);
        store.compact().await.expect("compact");
        let now = store.raw_block_values(&t, &l).expect("raw");
        let mark = distinguishing(&before[0], &now);
        let found = on_disk(dir.path(), &mark);
        assert!(found.is_empty(), "erased block still on disk in {found:?}");
        let left = store
            .read(&t, &l, &neurallog_core::query::ReadQuery::default())
            .await
            .expect("read");
        assert_eq!(left.entries.len(), 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn erased_blob_blocks_leave_no_trace() {
        check(2000).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn erased_inline_blocks_leave_no_trace() {
        check(10).await;
    }
}
