//! `GET /api/encryption` and `POST /api/encryption/rotate`: the tenant's encryption at rest
//! status and its data key rotation (docs/security.md, "Encryption at rest and key
//! management"). Both need `keys:manage` on the tenant.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use neurallog_core::rbac::Permission;
use neurallog_core::time::format_ms;
use neurallog_storage::crypt::ALGORITHM;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "encryption_disabled",
        "encryption at rest is disabled on this server",
    )
}

/// The tenant's data keys (ids and creation times, never key material) and the current one.
pub async fn status(
    State(st): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Permission::KeysManage, None)?;
    let Some(ring) = &st.keyring else {
        return Ok(Json(json!({
            "status": "disabled",
            "key_id": null,
            "keys": [],
            "algorithm": null,
        })));
    };
    let keys = ring.tenant_keys(&*st.storage, &principal.tenant).await?;
    let list: Vec<Value> = keys
        .keys()
        .map(|k| json!({"id": k.id().to_string(), "created_at": format_ms(k.created_at())}))
        .collect();
    Ok(Json(json!({
        "status": "enabled",
        "key_id": keys.current().to_string(),
        "keys": list,
        "algorithm": ALGORITHM,
        "master_key_id": ring.master_id(),
    })))
}

/// Makes a new data key current for the tenant's new blocks; older blocks keep reading with
/// the key that sealed them.
pub async fn rotate(
    State(st): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Permission::KeysManage, None)?;
    let ring = st.keyring.as_ref().ok_or_else(disabled)?;
    let id = ring.rotate(&*st.storage, &principal.tenant).await?;
    tracing::info!(tenant = %principal.tenant, key_id = %id, "data key rotated over the API");
    Ok(Json(json!({"status": "success", "key_id": id.to_string()})))
}
