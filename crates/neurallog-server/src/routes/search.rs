//! `GET /search`: text, typed field filters and time range over one or all logs.

use axum::Json;
use axum::extract::{RawQuery, State};
use neurallog_core::api::{SUCCESS, SearchHit, SearchResponse};
use neurallog_core::query::{FieldFilter, LogScope, Matcher, SearchQuery};
use neurallog_core::rbac::Permission;

use super::{Params, log_name};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// Most field filters in one search.
const MAX_FILTERS: usize = 32;
/// Longest text query.
const MAX_QUERY_LEN: usize = 1024;

/// Searches newest first. Accepts the original parameter names too (`start_time`,
/// `end_time`, `field_<path>`).
#[utoipa::path(get, path = "/search", tag = "search",
    params(("query" = Option<String>, Query, description = "case-insensitive text"),
        ("log_name" = Option<String>, Query, description = "one log; default all"),
        ("since" = Option<String>, Query), ("until" = Option<String>, Query),
        ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query),
        ("field.<path>" = Option<String>, Query, description = "typed filter: field.data.status=500 matches the number 500")),
    responses((status = 200, body = SearchResponse), (status = 400, body = neurallog_core::api::ErrorBody)), security(("api_key" = [])))]
pub async fn search(
    State(st): State<AppState>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Json<SearchResponse>, ApiError> {
    let p = Params::parse(q.as_deref());
    let text = p.get("query").unwrap_or("");
    if text.len() > MAX_QUERY_LEN {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("query is longer than {MAX_QUERY_LEN} bytes"),
        ));
    }
    let scope = match p.get_any(&["log_name", "log"]) {
        Some(name) if !name.is_empty() => LogScope::One(log_name(name)?),
        _ => LogScope::All,
    };
    match &scope {
        LogScope::One(log) => principal.require(Permission::LogsRead, Some(log))?,
        _ => principal.require(Permission::LogsRead, None)?,
    }
    let mut filters = Vec::new();
    for (k, v) in p.iter() {
        let Some(path) = k
            .strip_prefix("field.")
            .or_else(|| k.strip_prefix("field_"))
        else {
            continue;
        };
        if filters.len() == MAX_FILTERS {
            return Err(ApiError::bad_request(
                "invalid_filter",
                format!("at most {MAX_FILTERS} field filters"),
            ));
        }
        filters.push(
            FieldFilter::new(path, v).map_err(|m| ApiError::bad_request("invalid_filter", m))?,
        );
    }
    let query = SearchQuery {
        scope,
        matcher: Matcher::new(text, filters),
        range: p.time_range()?,
        limit: p.limit()?,
        before: p.cursor()?,
    };
    let page = st.storage.search(&principal.tenant, &query).await?;
    let results: Vec<SearchHit> = page
        .entries
        .into_iter()
        // A key narrowed to some logs searches all of them and sees only its own; the page may
        // then hold fewer than `limit` hits, and `next_cursor` still continues it.
        .filter(|entry| principal.allows(Permission::LogsRead, &entry.name))
        .map(|entry| SearchHit {
            log_name: entry.name.to_string(),
            entry,
        })
        .collect();
    Ok(Json(SearchResponse {
        status: SUCCESS.into(),
        total: results.len(),
        results,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
