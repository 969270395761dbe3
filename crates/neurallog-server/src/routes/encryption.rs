//! `GET /api/encryption`, `POST /api/encryption/rotate` and `POST /api/encryption/reencrypt`:
//! the tenant's encryption at rest status, its data key rotation and the re-encryption job that
//! moves older blocks to the current key (docs/security.md, "Encryption at rest and key
//! management"). All need `keys:manage` on the tenant.

use axum::Json;
use axum::extract::{RawQuery, State};
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

/// Blocks one re-encryption call seals again at most (bounded work per request; call again
/// while `more` is true).
const REENCRYPT_BUDGET: usize = 1000;

/// Seals the tenant's blocks of older data keys again with the current key, up to
/// `max_blocks` (default and maximum 1000) per call, log by log. Contents and ids do not
/// change and appends go on meanwhile; once nothing is left, older keys protect no block.
pub async fn reencrypt(
    State(st): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    principal.require(Permission::KeysManage, None)?;
    let ring = st.keyring.as_ref().ok_or_else(disabled)?;
    let mut budget = REENCRYPT_BUDGET;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "max_blocks" => {
                budget = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=REENCRYPT_BUDGET).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_parameter",
                            "max_blocks must be an integer from 1 to 1000",
                        )
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!(
                        "unknown parameter '{}'",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    let key_id = ring
        .tenant_keys(&*st.storage, &principal.tenant)
        .await?
        .current();
    let mut done = 0u64;
    let mut more = false;
    for log in st.storage.list_logs(&principal.tenant).await? {
        let left = budget - done as usize;
        if left == 0 {
            more = true;
            break;
        }
        let out = st.storage.reencrypt(&principal.tenant, &log, left).await?;
        done += out.blocks;
        more |= out.more;
    }
    tracing::info!(tenant = %principal.tenant, blocks = done, more, "re-encryption pass");
    Ok(Json(json!({
        "status": "success",
        "key_id": key_id.to_string(),
        "reencrypted": done,
        "more": more,
    })))
}
