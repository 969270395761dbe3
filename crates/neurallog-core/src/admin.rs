//! Request and response bodies of the administration API (spec §4.5): tenants, API keys and
//! the audit trail. Shared by the server, the typed client and the OpenAPI document.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/tenants`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// A DNS label: 1-63 lowercase letters, digits or `-`.
    pub id: String,
    #[serde(
        rename = "displayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
}

/// One tenant as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TenantInfo {
    pub id: String,
    #[serde(
        rename = "displayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    /// RFC 3339; absent for the implicit default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `POST /api/tenants`: 201.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantResponse {
    pub status: String,
    pub tenant: TenantInfo,
}

/// `GET /api/tenants`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantsResponse {
    pub status: String,
    pub tenants: Vec<TenantInfo>,
}

/// `DELETE /api/tenants/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantDeletedResponse {
    pub status: String,
    pub id: String,
    /// Log entries removed with the tenant.
    pub deleted: u64,
}

/// `POST /api/keys`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label for people: 1-100 printable characters.
    pub name: String,
    /// A built-in role (`reader`, `writer`, `admin`, `auditor`, `system`) or a custom one.
    pub role: String,
    /// Log-name patterns (`app-*`) that narrow the role's `logs:*` permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<String>>,
    /// Lifetime: seconds (`3600`) or a number with a unit `s`, `m`, `h`, `d` (`30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// The tenant of the key (system principals only; default: the caller's tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// `POST /api/keys/{id}/rotate` (the body is optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// How long the old key keeps working: seconds or `30s`/`10m`/`24h`/`1d`; default 24 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
}

/// `POST /api/keys` and `POST /api/keys/{id}/rotate`: 201. `key` appears here only.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKeyResponse {
    pub status: String,
    pub id: String,
    /// The key itself, shown once.
    pub key: String,
    pub tenant: String,
    pub role: String,
    #[serde(default)]
    pub logs: Option<Vec<String>>,
    /// RFC 3339, or null for a key that does not expire.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// On rotation: the id of the key this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// On rotation: when the replaced key stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_key_expires_at: Option<String>,
}

/// One key as `GET /api/keys` shows it: never the secret or its hash.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub role: String,
    #[serde(default)]
    pub logs: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    /// Updated at most once a minute.
    #[serde(default)]
    pub last_used: Option<String>,
}

/// `GET /api/keys`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KeysResponse {
    pub status: String,
    pub keys: Vec<KeyInfo>,
}

/// `DELETE /api/keys/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyRevokedResponse {
    pub status: String,
    pub id: String,
    pub revoked: bool,
}

/// One audit event (spec §7).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AuditEventInfo {
    /// Position in the tenant's audit sequence; pass it as `cursor` to continue after it.
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    pub tenant: Option<String>,
    /// `key:<id>`, `bootstrap`, `system`, a token subject; null when unauthenticated.
    pub principal: Option<String>,
    /// `api_key`, `bootstrap_key`, `system_key`, `jwt`, `oidc`; null when unauthenticated.
    pub auth_method: Option<String>,
    /// e.g. `logs.append`, `keys.create`, `tenants.delete`.
    pub action: String,
    /// The request path.
    pub resource: String,
    /// `success`, `denied` (401/403) or `failure`.
    pub outcome: String,
    /// HTTP status of the answer.
    pub status: u16,
    pub client: Option<String>,
    pub request_id: String,
    /// How many calls this event stands for (ingest aggregation); 1 for every other event.
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// `GET /api/audit`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    pub status: String,
    pub events: Vec<AuditEventInfo>,
    /// Pass as `cursor` for the next page; absent at the end of the trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Where the audit chain first fails verification.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AuditBreak {
    /// Sequence number of the first record that does not verify (absent for a truncated chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub chain: String,
    /// `hash_mismatch`, `broken_link`, `unreadable`, `truncated`.
    pub reason: String,
}

/// `GET /api/audit/verify`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerifyResponse {
    pub status: String,
    pub verified: bool,
    /// Records checked.
    pub events: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<AuditBreak>,
}
