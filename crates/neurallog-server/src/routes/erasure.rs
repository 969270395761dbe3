//! `POST /api/erasure`: remove every event whose field equals a value (GDPR erasure, spec
//! §6.3); `logs:delete` on every log touched.
//!
//! Each affected block is rewritten without the matching events; then the store compacts, so
//! that the erased events are gone from its files too, not only hidden (docs/security.md).
//! The erased value is personal data: it is never logged, only the field path and counts.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use neurallog_core::api::SUCCESS;
use neurallog_core::rbac::Permission;
use neurallog_core::retention::{ErasureRequest, ErasureResponse};

use super::retention::{parse_object, read_json_body};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

const MAX_BODY: usize = 128 * 1024;

/// Removes every event whose `field` (dotted path) equals `value` (string, number or
/// boolean), in the listed `logs` or all of the tenant's logs.
#[utoipa::path(post, path = "/api/erasure", tag = "retention",
    request_body = ErasureRequest,
    responses((status = 200, body = ErasureResponse), (status = 400, body = neurallog_core::api::ErrorBody), (status = 401, body = neurallog_core::api::ErrorBody), (status = 403, body = neurallog_core::api::ErrorBody), (status = 413, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn erase(
    State(st): State<AppState>,
    principal: Principal,
    body: axum::body::Body,
) -> Result<Json<ErasureResponse>, ApiError> {
    principal.require(Permission::LogsDelete, None)?;
    let bytes = read_json_body(body, MAX_BODY).await?;
    let req: ErasureRequest = parse_object(&bytes, "erasure request")?;
    let erasure = req
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_erasure", m))?;
    // Named logs must all be allowed (403 otherwise); "every log" means every log the
    // credential may delete from (a key narrowed to some logs erases in those).
    let logs = match erasure.logs {
        Some(l) => {
            for log in &l {
                principal.require(Permission::LogsDelete, Some(log))?;
            }
            l
        }
        None => st
            .storage
            .list_logs(&principal.tenant)
            .await?
            .into_iter()
            .filter(|l| principal.allows(Permission::LogsDelete, l))
            .collect(),
    };
    // The work runs in its own task: a client that hangs up does not leave it half done.
    let storage = st.storage.clone();
    let tenant = principal.tenant.clone();
    let matcher = erasure.matcher;
    let work = tokio::spawn(async move {
        let mut per_log = BTreeMap::new();
        let mut total = 0;
        for log in logs {
            let n = storage.erase(&tenant, &log, &matcher).await?;
            if n > 0 {
                per_log.insert(log.to_string(), n);
                total += n;
            }
        }
        if total > 0 {
            storage.compact().await?;
        }
        Ok::<_, neurallog_storage::StorageError>((total, per_log))
    });
    let (erased, per_log) = work.await.map_err(|_| ApiError::internal())??;
    tracing::info!(tenant = %principal.tenant, field = %req.field, erased,
        logs = per_log.len(), "erasure done");
    Ok(Json(ErasureResponse {
        status: SUCCESS.into(),
        erased,
        logs: per_log,
    }))
}
