//! `GET/PUT /api/retention`: the tenant's retention periods (spec §6.3); `retention:manage`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use neurallog_core::api::SUCCESS;
use neurallog_core::rbac::Permission;
use neurallog_core::retention::{RetentionResponse, RetentionSettings, RetentionUpdate};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::retention;

/// Largest accepted settings body (1000 rules fit many times over).
const MAX_BODY: usize = 256 * 1024;

fn answer(st: &AppState, s: RetentionSettings) -> Json<RetentionResponse> {
    Json(RetentionResponse {
        status: SUCCESS.into(),
        default_days: s.default_days,
        logs: s.logs,
        server_default_days: st.retention.server_default_days,
    })
}

/// The tenant's retention periods, in days.
#[utoipa::path(get, path = "/api/retention", tag = "retention",
    responses((status = 200, body = RetentionResponse), (status = 401, body = neurallog_core::api::ErrorBody), (status = 403, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(st): State<AppState>,
    principal: Principal,
) -> Result<Json<RetentionResponse>, ApiError> {
    principal.require(Permission::RetentionManage, None)?;
    let s = retention::load(st.storage.as_ref(), &principal.tenant).await?;
    Ok(answer(&st, s))
}

/// Replaces the tenant's retention periods: `default_days` (1-36500 or null) and per-log
/// `logs` (at most 1000; a log mapped to null has no rule of its own). Expired events are
/// removed by the background purge, whole blocks at a time.
#[utoipa::path(put, path = "/api/retention", tag = "retention",
    request_body = RetentionUpdate,
    responses((status = 200, body = RetentionResponse), (status = 400, body = neurallog_core::api::ErrorBody), (status = 401, body = neurallog_core::api::ErrorBody), (status = 403, body = neurallog_core::api::ErrorBody), (status = 413, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn put(
    State(st): State<AppState>,
    principal: Principal,
    body: axum::body::Body,
) -> Result<Json<RetentionResponse>, ApiError> {
    principal.require(Permission::RetentionManage, None)?;
    let bytes = read_json_body(body, MAX_BODY).await?;
    let update: RetentionUpdate = parse_object(&bytes, "retention settings")?;
    let settings = update
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_retention", m))?;
    retention::save(st.storage.as_ref(), &principal.tenant, &settings).await?;
    tracing::info!(tenant = %principal.tenant, default_days = ?settings.default_days,
        rules = settings.logs.len(), "retention settings changed");
    Ok(answer(&st, settings))
}

/// Parses a body that must be one JSON object. (serde would also take a struct from an
/// array of its fields, so `[]` would read as "no settings" and clear them.)
pub fn parse_object<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_json", format!("{what}: {m}"));
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if !v.is_object() {
        return Err(bad("expected a JSON object".into()));
    }
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// Reads a JSON body of at most `max` bytes (413 beyond).
pub async fn read_json_body(body: axum::body::Body, max: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::payload_too_large(format!("request body is larger than {max} bytes"))
    })
}
