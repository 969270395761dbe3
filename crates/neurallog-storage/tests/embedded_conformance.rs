//! The conformance suite against the embedded backend, each case on a fresh directory.

use std::sync::Arc;

use neurallog_storage::{EmbeddedStorage, Storage};

async fn fresh() -> Arc<dyn Storage> {
    // NB: the directory is leaked for the life of the test process so that the store can
    // outlive this function; it is removed when the OS cleans the temp dir.
    let dir = tempfile::tempdir().expect("tempdir").keep();
    Arc::new(EmbeddedStorage::open(&dir).expect("open"))
}

neurallog_storage::conformance_tests!(fresh());
