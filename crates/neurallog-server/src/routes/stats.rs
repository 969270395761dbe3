//! `GET /statistics` and `GET /logs/{log}/statistics`: counts, bytes, first/last timestamps.

use axum::Json;
use axum::extract::{Path, State, rejection::PathRejection};
use neurallog_core::api::{
    LogStatisticsResponse, LogStats, NamedLogStats, SUCCESS, StatisticsResponse,
};
use neurallog_core::rbac::Permission;
use neurallog_core::time::format_ms;
use neurallog_storage::LogSummary;

use super::{log_name, path_error};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

fn wire(s: &LogSummary) -> LogStats {
    LogStats {
        count: s.count,
        bytes: s.bytes,
        first_timestamp: s.min_ts.map(format_ms),
        last_timestamp: s.max_ts.map(format_ms),
    }
}

/// Totals of the tenant and of each log.
#[utoipa::path(get, path = "/statistics", tag = "statistics", responses((status = 200, body = StatisticsResponse)), security(("api_key" = [])))]
pub async fn statistics(
    State(st): State<AppState>,
    principal: Principal,
) -> Result<Json<StatisticsResponse>, ApiError> {
    principal.require(Permission::LogsRead, None)?;
    let mut logs = st.storage.tenant_summary(&principal.tenant).await?;
    logs.retain(|(name, _)| principal.allows(Permission::LogsRead, name));
    let mut total = LogSummary::default();
    for (_, s) in &logs {
        total.merge(s);
    }
    Ok(Json(StatisticsResponse {
        status: SUCCESS.into(),
        total: wire(&total),
        logs: logs
            .iter()
            .map(|(n, s)| NamedLogStats {
                name: n.to_string(),
                stats: wire(s),
            })
            .collect(),
    }))
}

/// Counts of one log (zero for an unknown log).
#[utoipa::path(get, path = "/logs/{log}/statistics", tag = "statistics", params(("log" = String, Path)),
    responses((status = 200, body = LogStatisticsResponse)), security(("api_key" = [])))]
pub async fn log_statistics(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<LogStatisticsResponse>, ApiError> {
    let Path(raw) = path.map_err(path_error)?;
    let log = log_name(&raw)?;
    principal.require(Permission::LogsRead, Some(&log))?;
    let s = st.storage.log_summary(&principal.tenant, &log).await?;
    Ok(Json(LogStatisticsResponse {
        status: SUCCESS.into(),
        name: log.to_string(),
        stats: wire(&s),
    }))
}
