//! `/api/audit`: read and verify the audit trail of the caller's tenant (`audit:read`), or the
//! global trail (`scope=global`: system actions and unauthenticated refusals; needs
//! `tenants:manage`).
//!
//! Both first wait for the audit writer, so a caller sees the events of its own earlier
//! calls. Pages run oldest first; `cursor` is the sequence number to continue from.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use neurallog_core::admin::{AuditEventInfo, AuditResponse, AuditVerifyResponse};
use neurallog_core::api::SUCCESS;
use neurallog_core::rbac::Permission;
use neurallog_core::time::format_ms;
use neurallog_storage::Scope;

use super::Params;
use crate::app::AppState;
use crate::audit::HEADS_SPACE;
use crate::audit::chain::{StoredRecord, Verifier};
use crate::auth::Principal;
use crate::error::ApiError;

/// Records read per storage call.
const CHUNK: usize = 1000;
/// Records examined per page at most; a page with fewer matches carries a cursor to go on.
const SCAN_BUDGET: u64 = 100_000;
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Whether the global trail is asked for, after checking the caller may read it.
fn global(p: &Params, principal: &Principal) -> Result<bool, ApiError> {
    match p.get("scope") {
        None | Some("tenant") => {
            principal.require(Permission::AuditRead, None)?;
            Ok(false)
        }
        Some("global") => {
            principal.require(Permission::TenantsManage, None)?;
            Ok(true)
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_scope",
            "scope must be tenant or global",
        )),
    }
}

fn text_filter<'a>(p: &'a Params, name: &str) -> Result<Option<&'a str>, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(None),
        Some(v) if v.len() <= 256 => Ok(Some(v)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_filter",
            format!("{name} is longer than 256 bytes"),
        )),
    }
}

/// Audit events, oldest first, filtered.
#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(("since" = Option<String>, Query), ("until" = Option<String>, Query),
        ("principal" = Option<String>, Query), ("action" = Option<String>, Query),
        ("outcome" = Option<String>, Query, description = "success, denied or failure"),
        ("limit" = Option<usize>, Query, description = "1-1000, default 100"),
        ("cursor" = Option<String>, Query), ("scope" = Option<String>, Query, description = "tenant (default) or global")),
    responses((status = 200, body = AuditResponse), (status = 403, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditResponse>, ApiError> {
    let p = Params::parse(q.as_deref());
    let is_global = global(&p, &principal)?;
    let range = p.time_range()?;
    let who = text_filter(&p, "principal")?;
    let action = text_filter(&p, "action")?;
    let outcome = text_filter(&p, "outcome")?;
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let mut from = match p.get("cursor") {
        None | Some("") => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor must be a next_cursor value from a previous page",
            )
        })?,
    };
    st.audit.flush().await;
    let scope = if is_global {
        Scope::Global
    } else {
        Scope::Tenant(&principal.tenant)
    };
    let mut events = Vec::new();
    let mut scanned = 0u64;
    let next_cursor = loop {
        let chunk = st.storage.audit_read(scope, from, CHUNK).await?;
        if chunk.is_empty() {
            break None;
        }
        let mut stop = None;
        for (seq, bytes) in chunk {
            from = seq + 1;
            scanned += 1;
            let Ok(rec) = serde_json::from_slice::<StoredRecord>(&bytes) else {
                continue;
            };
            let e = rec.event;
            let keep = range.since.is_none_or(|s| e.ts >= s)
                && range.until.is_none_or(|u| e.ts <= u)
                && who.is_none_or(|w| e.principal.as_deref() == Some(w))
                && action.is_none_or(|a| e.action == a)
                && outcome.is_none_or(|o| e.outcome == o);
            if keep {
                events.push(AuditEventInfo {
                    seq,
                    time: format_ms(e.ts),
                    tenant: e.tenant,
                    principal: e.principal,
                    auth_method: e.auth_method,
                    action: e.action,
                    resource: e.resource,
                    outcome: e.outcome,
                    status: e.status,
                    client: e.client,
                    request_id: e.request_id,
                    count: e.count,
                });
            }
            if events.len() == limit || scanned >= SCAN_BUDGET {
                stop = Some(from);
                break;
            }
        }
        if let Some(next) = stop {
            // Only promise a next page when there is something after it.
            let more = st.storage.audit_len(scope).await? > next;
            break more.then(|| next.to_string());
        }
    };
    Ok(Json(AuditResponse {
        status: SUCCESS.into(),
        events,
        next_cursor,
    }))
}

/// Recomputes the hash chains of the trail; reports the first record that fails.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    params(("scope" = Option<String>, Query, description = "tenant (default) or global")),
    responses((status = 200, body = AuditVerifyResponse), (status = 403, body = neurallog_core::api::ErrorBody)),
    security(("api_key" = [])))]
pub async fn verify(
    State(st): State<AppState>,
    principal: Principal,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditVerifyResponse>, ApiError> {
    let p = Params::parse(q.as_deref());
    let is_global = global(&p, &principal)?;
    st.audit.flush().await;
    let scope = if is_global {
        Scope::Global
    } else {
        Scope::Tenant(&principal.tenant)
    };
    // Heads first: a head is stored after its records, so every head read now names a
    // record that the reading below will see, even while other calls keep appending.
    let heads: BTreeMap<String, String> = st
        .storage
        .meta_list(scope, HEADS_SPACE)
        .await?
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let mut v = Verifier::default();
    let mut from = 0;
    loop {
        let chunk = st.storage.audit_read(scope, from, CHUNK).await?;
        let Some((last, _)) = chunk.last() else { break };
        from = last + 1;
        for (seq, bytes) in &chunk {
            v.push(*seq, bytes);
        }
    }
    let v = v.finish(&heads);
    Ok(Json(AuditVerifyResponse {
        status: SUCCESS.into(),
        verified: v.first_bad.is_none(),
        events: v.events,
        first_bad: v.first_bad,
    }))
}
