//! Request and response bodies of the HTTP API (spec §3), shared by the server, the typed
//! client and the generated OpenAPI document.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Entry, EntryId};

/// Every error body: `{"status":"error","error":"<code>","message":"<sentence>"}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: String,
    /// Machine-readable code, e.g. `invalid_log_name`.
    pub error: String,
    /// Human-readable sentence.
    pub message: String,
}

/// `GET /`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceInfo {
    pub status: String,
    pub name: String,
    pub version: String,
}

/// `GET /health` and `GET /ready`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthBody {
    pub status: String,
}

/// `POST /logs/{log}`: 201.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AppendResponse {
    pub status: String,
    /// Ids of the stored entries, in the order sent.
    #[schema(value_type = Vec<String>)]
    pub ids: Vec<EntryId>,
    pub count: usize,
    /// The id when exactly one event was sent (as the original server answered).
    #[serde(rename = "logId", skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<String>)]
    pub log_id: Option<EntryId>,
}

/// `GET /logs`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LogsResponse {
    pub status: String,
    pub logs: Vec<String>,
}

/// `GET /logs/{log}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadResponse {
    pub status: String,
    pub name: String,
    pub entries: Vec<Entry>,
    /// Pass as `cursor` to read the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /logs/{log}/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryResponse {
    pub status: String,
    pub entry: Entry,
}

/// `DELETE /logs/{log}` and `DELETE /logs/{log}/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteResponse {
    pub status: String,
    pub deleted: u64,
}

/// One search hit.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    #[serde(rename = "logName")]
    pub log_name: String,
    pub entry: Entry,
}

/// `GET /search`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    pub status: String,
    /// Number of results in this page.
    pub total: usize,
    pub results: Vec<SearchHit>,
    pub next_cursor: Option<String>,
}

/// Counts of one log, or of a whole tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LogStats {
    /// Entries stored.
    pub count: u64,
    /// Bytes of event JSON stored (before compression).
    pub bytes: u64,
    /// Earliest and latest entry timestamps (RFC 3339), absent for an empty log.
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
}

/// Statistics of one named log.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct NamedLogStats {
    pub name: String,
    #[serde(flatten)]
    pub stats: LogStats,
}

/// `GET /statistics`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatisticsResponse {
    pub status: String,
    /// Sum over all logs.
    pub total: LogStats,
    pub logs: Vec<NamedLogStats>,
}

/// `GET /logs/{log}/statistics`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LogStatisticsResponse {
    pub status: String,
    pub name: String,
    #[serde(flatten)]
    pub stats: LogStats,
}

/// The `status` value of every successful body.
pub const SUCCESS: &str = "success";
