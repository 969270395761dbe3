//! The conformance suite against a real `redis-server`, each case on a fresh server.
//! A second run of the suite shares one server between two key prefixes, to show that
//! deployments with different prefixes do not see each other.

mod support;

use std::sync::Arc;

use neurallog_storage::Storage;
use support::{ServedStore, redis_available};

async fn fresh() -> Option<Arc<dyn Storage>> {
    if !redis_available() {
        return None;
    }
    Some(Arc::new(ServedStore::fresh(None).await))
}

neurallog_storage::conformance_tests!(fresh());
