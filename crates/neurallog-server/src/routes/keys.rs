//! `/api/keys`: create, list, revoke and rotate API keys (spec §4.1, §4.5).
//!
//! Managing keys needs `keys:manage` on the tenant, or `tenants:manage` (a system principal,
//! which may manage the keys of any tenant: that is how a new tenant gets its first admin).
//! A key never grants more than its creator holds: its role's permissions must be a subset of
//! the creator's, and a creator narrowed to some logs can only hand out keys narrowed within
//! them. The same rule protects revocation and rotation, so an admin cannot revoke or clone a
//! system key.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use neurallog_core::TenantId;
use neurallog_core::admin::{
    CreateKeyRequest, CreatedKeyResponse, KeyInfo, KeyRevokedResponse, KeysResponse,
    RotateKeyRequest,
};
use neurallog_core::api::SUCCESS;
use neurallog_core::rbac::{LogPattern, Permission};
use neurallog_core::time::{format_ms, now_ms};

use super::{Params, json_body};
use crate::app::AppState;
use crate::auth::api_keys::parse_duration;
use crate::auth::{KeyRecord, Principal, grant_for};
use crate::error::ApiError;

/// Longest key name.
const MAX_NAME: usize = 100;
/// Most log patterns on one key.
const MAX_PATTERNS: usize = 64;
/// Longest lifetime and grace period.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
const MAX_GRACE: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_GRACE: Duration = Duration::from_secs(86_400);

/// Checks that the caller may manage keys of `tenant`.
fn require_manage(p: &Principal, tenant: &TenantId) -> Result<(), ApiError> {
    if p.is_system() {
        // NB: authorize() on the target tenant, which a system grant covers.
        let on_target = Principal {
            tenant: tenant.clone(),
            ..p.clone()
        };
        return on_target.require(Permission::TenantsManage, None);
    }
    if &p.tenant != tenant {
        return Err(ApiError::forbidden(
            "this credential does not reach this tenant",
        ));
    }
    p.require(Permission::KeysManage, None)
}

fn too_much() -> ApiError {
    ApiError::forbidden("a key cannot hold more than the credential that manages it")
}

/// Whether `creator` holds everything the key (on `tenant`, with `permissions` and `logs`)
/// would hold. System principals may manage any key: they create tenants' first admins.
fn within_creator(
    creator: &Principal,
    tenant: &TenantId,
    permissions: BTreeSet<Permission>,
    logs: Option<&[String]>,
) -> bool {
    if creator.is_system() {
        return true;
    }
    grant_for(permissions, tenant, logs).is_some_and(|g| creator.grant.includes(&g))
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1-{MAX_NAME} characters without control characters"),
        ));
    }
    Ok(())
}

fn validate_patterns(logs: Option<&[String]>) -> Result<(), ApiError> {
    let Some(ps) = logs else { return Ok(()) };
    if ps.is_empty() || ps.len() > MAX_PATTERNS {
        return Err(ApiError::bad_request(
            "invalid_pattern",
            format!("logs must hold 1-{MAX_PATTERNS} patterns (omit it for every log)"),
        ));
    }
    for p in ps {
        LogPattern::new(p).map_err(|e| {
            ApiError::bad_request(
                "invalid_pattern",
                format!("log pattern '{}': {e}", p.escape_debug()),
            )
        })?;
    }
    Ok(())
}

fn duration_param(
    value: Option<&str>,
    name: &str,
    max: Duration,
    code: &'static str,
) -> Result<Option<Duration>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    match parse_duration(v) {
        Some(d) if d <= max => Ok(Some(d)),
        _ => Err(ApiError::bad_request(
            code,
            format!(
                "{name} must be seconds or a number with s, m, h or d, at most {} days",
                max.as_secs() / 86_400
            ),
        )),
    }
}

fn created(rec: &KeyRecord, key: String) -> CreatedKeyResponse {
    CreatedKeyResponse {
        status: SUCCESS.into(),
        id: rec.id.clone(),
        key,
        tenant: rec.tenant.to_string(),
        role: rec.role.clone(),
        logs: rec.logs.clone(),
        expires_at: rec.expires_at.map(format_ms),
        replaces: None,
        replaced_key_expires_at: None,
    }
}

/// Creates a key; the key appears in this answer only.
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKeyResponse), (status = 400, body = neurallog_core::api::ErrorBody),
        (status = 401, body = neurallog_core::api::ErrorBody), (status = 403, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    // Refuse callers who manage no keys before reading what they sent.
    if !principal.is_system() {
        principal.require(Permission::KeysManage, None)?;
    }
    let req: CreateKeyRequest = json_body(&body)?;
    let tenant = match &req.tenant {
        None => principal.tenant.clone(),
        Some(_) if !principal.is_system() => {
            return Err(ApiError::forbidden(
                "only system principals create keys for another tenant",
            ));
        }
        Some(t) => TenantId::new(t.as_str())
            .map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()))?,
    };
    require_manage(&principal, &tenant)?;
    if !st.auth.tenants.exists(&tenant).await? {
        return Err(ApiError::not_found("no such tenant"));
    }
    validate_name(&req.name)?;
    let Some(permissions) = st.auth.roles.permissions(&req.role) else {
        return Err(ApiError::bad_request(
            "invalid_role",
            "role must be reader, writer, admin, auditor, system or a role of the config file",
        ));
    };
    validate_patterns(req.logs.as_deref())?;
    if !within_creator(&principal, &tenant, permissions, req.logs.as_deref()) {
        return Err(too_much());
    }
    let lifetime = duration_param(
        req.expires_in.as_deref(),
        "expires_in",
        MAX_LIFETIME,
        "invalid_expiry",
    )?;
    if lifetime.is_some_and(|d| d.is_zero()) {
        return Err(ApiError::bad_request(
            "invalid_expiry",
            "expires_in must be positive",
        ));
    }
    let expires_at = lifetime.map(|d| now_ms() + d.as_millis() as i64);
    let (key, rec) = st
        .auth
        .keys
        .create(
            req.name,
            tenant,
            req.role,
            req.logs,
            expires_at,
            principal.id.clone(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(created(&rec, key.expose().to_owned())),
    ))
}

fn info(rec: KeyRecord, last_used: Option<i64>) -> KeyInfo {
    KeyInfo {
        id: rec.id,
        name: rec.name,
        tenant: rec.tenant.to_string(),
        role: rec.role,
        logs: rec.logs,
        expires_at: rec.expires_at.map(format_ms),
        created_at: format_ms(rec.created_at),
        created_by: rec.created_by,
        last_used: last_used.map(format_ms),
    }
}

/// Keys of the tenant (a system principal may name one with `tenant`), never their secrets.
#[utoipa::path(get, path = "/api/keys", tag = "keys",
    params(("tenant" = Option<String>, Query, description = "system principals: whose keys")),
    responses((status = 200, body = KeysResponse), (status = 403, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Json<KeysResponse>, ApiError> {
    let p = Params::parse(q.as_deref());
    let tenant = match p.get("tenant") {
        Some(t) if principal.is_system() => {
            TenantId::new(t).map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()))?
        }
        Some(_) => {
            return Err(ApiError::forbidden(
                "only system principals list the keys of another tenant",
            ));
        }
        None => principal.tenant.clone(),
    };
    require_manage(&principal, &tenant)?;
    let keys = st.auth.keys.list(Some(&tenant)).await?;
    Ok(Json(KeysResponse {
        status: SUCCESS.into(),
        keys: keys.into_iter().map(|(r, u)| info(r, u)).collect(),
    }))
}

/// The record of `id` when the caller may manage it; 404 for an unknown key or one of
/// another tenant, 403 for a key that holds more than the caller.
async fn manageable(st: &AppState, principal: &Principal, id: &str) -> Result<KeyRecord, ApiError> {
    let missing = || ApiError::not_found("no such key");
    let Some(rec) = st.auth.keys.get(id).await? else {
        // Still refuse callers without the permission with 403, not 404.
        require_manage(principal, &principal.tenant)?;
        return Err(missing());
    };
    if !principal.is_system() && rec.tenant != principal.tenant {
        require_manage(principal, &principal.tenant)?;
        return Err(missing());
    }
    require_manage(principal, &rec.tenant)?;
    let permissions = st.auth.roles.permissions(&rec.role).unwrap_or_default();
    if !within_creator(principal, &rec.tenant, permissions, rec.logs.as_deref()) {
        return Err(too_much());
    }
    Ok(rec)
}

/// Revokes a key: it stops working on every replica within a second.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyRevokedResponse), (status = 404, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyRevokedResponse>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such key"))?;
    let rec = manageable(&st, &principal, &id).await?;
    let revoked = st.auth.keys.revoke(&rec.id).await?;
    Ok(Json(KeyRevokedResponse {
        status: SUCCESS.into(),
        id: rec.id,
        revoked,
    }))
}

/// Issues a new key with the same tenant, role, patterns and expiry; the old key keeps
/// working for `grace` (default 24 h), then stops.
#[utoipa::path(post, path = "/api/keys/{id}/rotate", tag = "keys", params(("id" = String, Path)),
    request_body(content = RotateKeyRequest, description = "optional"),
    responses((status = 201, body = CreatedKeyResponse), (status = 404, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn rotate(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such key"))?;
    let mut old = manageable(&st, &principal, &id).await?;
    let req: RotateKeyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKeyRequest::default()
    } else {
        json_body(&body)?
    };
    let p = Params::parse(q.as_deref());
    let grace = duration_param(
        req.grace.as_deref().or(p.get("grace")),
        "grace",
        MAX_GRACE,
        "invalid_grace",
    )?
    .unwrap_or(DEFAULT_GRACE);
    let now = now_ms();
    if old.expired(now) {
        return Err(ApiError::not_found("no such key"));
    }
    let (key, new) = st
        .auth
        .keys
        .create(
            old.name.clone(),
            old.tenant.clone(),
            old.role.clone(),
            old.logs.clone(),
            old.expires_at,
            principal.id.clone(),
        )
        .await?;
    let until = now + grace.as_millis() as i64;
    old.expires_at = Some(old.expires_at.map_or(until, |e| e.min(until)));
    st.auth.keys.put(&old).await?;
    let mut resp = created(&new, key.expose().to_owned());
    resp.replaces = Some(old.id.clone());
    resp.replaced_key_expires_at = old.expires_at.map(format_ms);
    Ok((StatusCode::CREATED, Json(resp)))
}
