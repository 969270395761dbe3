//! `/api/tenants`: create, list and delete tenants (spec §4.5). Needs `tenants:manage`, which
//! only system principals hold.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use neurallog_core::TenantId;
use neurallog_core::admin::{
    CreateTenantRequest, TenantDeletedResponse, TenantResponse, TenantsResponse,
};
use neurallog_core::api::SUCCESS;
use neurallog_core::rbac::Permission;

use super::json_body;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::tenants::MAX_DISPLAY_NAME;

fn tenant_id(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::new(raw).map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()))
}

/// Creates a tenant with its own, empty storage space.
#[utoipa::path(post, path = "/api/tenants", tag = "tenants", request_body = CreateTenantRequest,
    responses((status = 201, body = TenantResponse), (status = 400, body = neurallog_core::api::ErrorBody),
        (status = 403, body = neurallog_core::api::ErrorBody), (status = 409, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(st): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantResponse>), ApiError> {
    principal.require(Permission::TenantsManage, None)?;
    let req: CreateTenantRequest = json_body(&body)?;
    let id = tenant_id(&req.id)?;
    if let Some(name) = &req.display_name
        && (name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_display_name",
            format!(
                "displayName must be at most {MAX_DISPLAY_NAME} characters without control characters"
            ),
        ));
    }
    if st.auth.tenants.pinned() {
        return Err(ApiError::conflict(
            "tenant_pinned",
            "this server is pinned to one tenant (TENANT_ID) and cannot hold others",
        ));
    }
    match st
        .auth
        .tenants
        .create(id, req.display_name, principal.id.clone())
        .await?
    {
        Some(rec) => Ok((
            StatusCode::CREATED,
            Json(TenantResponse {
                status: SUCCESS.into(),
                tenant: rec.info(),
            }),
        )),
        None => Err(ApiError::conflict(
            "tenant_exists",
            "the tenant already exists",
        )),
    }
}

/// Every tenant, the implicit default (or pinned) tenant first.
#[utoipa::path(get, path = "/api/tenants", tag = "tenants",
    responses((status = 200, body = TenantsResponse), (status = 403, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    principal: Principal,
) -> Result<Json<TenantsResponse>, ApiError> {
    principal.require(Permission::TenantsManage, None)?;
    Ok(Json(TenantsResponse {
        status: SUCCESS.into(),
        tenants: st.auth.tenants.list().await?,
    }))
}

/// Deletes a tenant: refuses its requests at once, revokes its keys, removes its logs, its
/// metadata and its audit trail (the deletion itself is audited in the global trail).
#[utoipa::path(delete, path = "/api/tenants/{id}", tag = "tenants", params(("id" = String, Path)),
    responses((status = 200, body = TenantDeletedResponse), (status = 404, body = neurallog_core::api::ErrorBody),
        (status = 409, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TenantDeletedResponse>, ApiError> {
    principal.require(Permission::TenantsManage, None)?;
    let Path(raw) = path.map_err(|_| {
        ApiError::bad_request(
            "invalid_tenant",
            neurallog_core::tenant::InvalidTenantId.to_string(),
        )
    })?;
    let id = tenant_id(&raw)?;
    if &id == st.auth.tenants.implicit() {
        return Err(ApiError::conflict(
            "tenant_protected",
            "the default (or pinned) tenant cannot be deleted",
        ));
    }
    if !st.auth.tenants.remove(&id).await? {
        return Err(ApiError::not_found("no such tenant"));
    }
    st.auth.keys.revoke_tenant(&id).await?;
    // Audit events of the tenant still queued are written before its trail is removed.
    st.audit.flush().await;
    let deleted = st.storage.delete_tenant(&id).await?;
    st.audit.forget(id.clone()).await;
    Ok(Json(TenantDeletedResponse {
        status: SUCCESS.into(),
        id: id.to_string(),
        deleted,
    }))
}
