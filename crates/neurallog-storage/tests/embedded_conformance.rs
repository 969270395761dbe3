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
