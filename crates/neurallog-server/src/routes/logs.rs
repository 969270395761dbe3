//! `/logs…`: append, list, read newest first, get and delete entries and logs.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State, rejection::PathRejection};
use axum::http::{HeaderMap, StatusCode, header};
use neurallog_core::EntryId;
use neurallog_core::api::{
    AppendResponse, DeleteResponse, EntryResponse, LogsResponse, ReadResponse, SUCCESS,
};
use neurallog_core::ingest::{BodyFormat, Limits, parse_body};
use neurallog_core::query::ReadQuery;
use neurallog_core::rbac::Permission;

use super::{Params, log_name, path_error};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Append one event (object), a batch (array) or NDJSON to a log. All or nothing.
#[utoipa::path(post, path = "/logs/{log}", tag = "logs",
    params(("log" = String, Path, description = "log name: 1-128 of A-Z a-z 0-9 . _ -")),
    request_body(content = Object, description = "a JSON object, a JSON array of events, or NDJSON (Content-Type: application/x-ndjson); Content-Encoding: gzip accepted"),
    responses((status = 201, body = AppendResponse), (status = 400, body = neurallog_core::api::ErrorBody), (status = 401, body = neurallog_core::api::ErrorBody), (status = 413, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn append(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<AppendResponse>), ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let log = log_name(&raw)?;
    principal.require(Permission::LogsWrite, Some(&log))?;
    let body = read_body(body, &headers, &st.limits).await?;
    let format = body_format(&headers);
    let events = parse_body(&body, format, &st.limits)?;
    let bytes: usize = events.iter().map(|e| e.data.len()).sum();
    let ids = st.storage.append(&principal.tenant, &log, events).await?;
    st.metrics.ingested_events.inc_by(ids.len() as u64);
    st.metrics.ingested_bytes.inc_by(bytes as u64);
    let log_id = (ids.len() == 1).then(|| ids[0]);
    let count = ids.len();
    Ok((
        StatusCode::CREATED,
        Json(AppendResponse {
            status: SUCCESS.into(),
            ids,
            count,
            log_id,
        }),
    ))
}

fn body_format(headers: &HeaderMap) -> BodyFormat {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => BodyFormat::Ndjson,
        // NB: anything else is read as JSON, so `curl -d` (form content type) just works.
        _ => BodyFormat::Json,
    }
}

/// Reads the body up to the limit, decompressing gzip, and refuses it whole when too large.
async fn read_body(body: Body, headers: &HeaderMap, limits: &Limits) -> Result<Bytes, ApiError> {
    let max = limits.max_body_bytes;
    let too_large =
        || ApiError::payload_too_large(format!("request body is larger than {max} bytes"));
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(bytes),
        "gzip" | "x-gzip" => {
            // Decompress at most one byte past the limit: a gzip bomb stops there.
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_encoding",
                        format!("gzip body could not be decompressed: {e}"),
                    )
                })?;
            if out.len() > max {
                return Err(too_large());
            }
            Ok(Bytes::from(out))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding '{other}' is not supported (use gzip or none)"),
        )),
    }
}

/// Names of the logs the caller can read.
#[utoipa::path(get, path = "/logs", tag = "logs", responses((status = 200, body = LogsResponse), (status = 401, body = neurallog_core::api::ErrorBody)), security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    principal: Principal,
) -> Result<Json<LogsResponse>, ApiError> {
    principal.require(Permission::LogsRead, None)?;
    let logs = st.storage.list_logs(&principal.tenant).await?;
    Ok(Json(LogsResponse {
        status: SUCCESS.into(),
        logs: logs
            .into_iter()
            .filter(|l| principal.allows(Permission::LogsRead, l))
            .map(|l| l.to_string())
            .collect(),
    }))
}

/// Entries of a log, newest first. An unknown log answers 200 with no entries.
#[utoipa::path(get, path = "/logs/{log}", tag = "logs",
    params(("log" = String, Path), ("limit" = Option<usize>, Query, description = "1-10000, default 100"),
        ("since" = Option<String>, Query, description = "RFC 3339 or epoch ms"), ("until" = Option<String>, Query),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = ReadResponse), (status = 400, body = neurallog_core::api::ErrorBody)), security(("api_key" = [])))]
pub async fn read(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Json<ReadResponse>, ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let log = log_name(&raw)?;
    principal.require(Permission::LogsRead, Some(&log))?;
    let p = Params::parse(q.as_deref());
    let query = ReadQuery {
        range: p.time_range()?,
        limit: p.limit()?,
        before: p.cursor()?,
    };
    let page = st.storage.read(&principal.tenant, &log, &query).await?;
    Ok(Json(ReadResponse {
        status: SUCCESS.into(),
        name: log.to_string(),
        entries: page.entries,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

fn entry_id(raw: &str) -> Result<EntryId, ApiError> {
    EntryId::parse(raw).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))
}

/// One entry; 404 when absent.
#[utoipa::path(get, path = "/logs/{log}/{id}", tag = "logs", params(("log" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = EntryResponse), (status = 404, body = neurallog_core::api::ErrorBody)), security(("api_key" = [])))]
pub async fn get_entry(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<EntryResponse>, ApiError> {
    let Path((raw_log, raw_id)) = path.map_err(path_error)?;
    let (log, id) = (log_name(&raw_log)?, entry_id(&raw_id)?);
    principal.require(Permission::LogsRead, Some(&log))?;
    match st.storage.get(&principal.tenant, &log, id).await? {
        Some(entry) => Ok(Json(EntryResponse {
            status: SUCCESS.into(),
            entry,
        })),
        None => Err(ApiError::not_found("no such entry")),
    }
}

/// Removes a whole log.
#[utoipa::path(delete, path = "/logs/{log}", tag = "logs", params(("log" = String, Path)),
    responses((status = 200, body = DeleteResponse)), security(("api_key" = [])))]
pub async fn delete_log(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let log = log_name(&raw)?;
    principal.require(Permission::LogsDelete, Some(&log))?;
    let deleted = st.storage.delete_log(&principal.tenant, &log).await?;
    Ok(Json(DeleteResponse {
        status: SUCCESS.into(),
        deleted,
    }))
}

/// Removes one entry; 404 when absent.
#[utoipa::path(delete, path = "/logs/{log}/{id}", tag = "logs", params(("log" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = DeleteResponse), (status = 404, body = neurallog_core::api::ErrorBody)), security(("api_key" = [])))]
pub async fn delete_entry(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let Path((raw_log, raw_id)) = path.map_err(path_error)?;
    let (log, id) = (log_name(&raw_log)?, entry_id(&raw_id)?);
    principal.require(Permission::LogsDelete, Some(&log))?;
    if st.storage.delete_entry(&principal.tenant, &log, id).await? {
        Ok(Json(DeleteResponse {
            status: SUCCESS.into(),
            deleted: 1,
        }))
    } else {
        Err(ApiError::not_found("no such entry"))
    }
}
