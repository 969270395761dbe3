//! The middleware around every route: gives the call a request id (the client's
//! `X-Request-Id` when it is a sane token, else a random one; echoed on the answer), lets the
//! credential check fill in who is calling, and after the handler answers turns the call into
//! an audit event.
//!
//! Recorded: every call that authenticated, and every call refused with 401 or 403. Not
//! recorded: the unauthenticated service routes (`/`, `/health`, `/ready`, `/openapi.json`)
//! and unknown routes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use neurallog_core::TenantId;
use neurallog_core::time::now_ms;
use rand::RngCore;

use super::AuditEvent;
use crate::app::AppState;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_RESOURCE: usize = 256;

/// Who is calling, as the credential check found it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The tenant the call acts on.
    pub tenant: TenantId,
    /// `key:<id>`, `bootstrap`, `system`, …
    pub principal: String,
    /// `api_key`, `bootstrap_key`, `system_key`, …
    pub auth_method: &'static str,
    /// A cross-tenant (system) principal: its events go to the global sequence.
    pub global: bool,
}

/// Where the credential check leaves the [`Caller`] for this middleware.
#[derive(Clone, Debug, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Caller>>>);

impl AuditSlot {
    pub fn set(&self, caller: Caller) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(caller);
        }
    }

    fn take(&self) -> Option<Caller> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// The request id of the call, for handlers that want it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    super::chain::hex(&b)
}

/// Routes that need no credential and are not audited.
fn is_service_route(path: &str) -> bool {
    matches!(path, "/" | "/health" | "/ready" | "/openapi.json")
}

/// The action name of a route: `<resource>.<verb>`.
pub fn action(method: &Method, route: &str) -> String {
    let m = method.as_str();
    let known = match (m, route) {
        ("GET", "/logs") => "logs.list",
        ("POST" | "PATCH", "/logs/{log}") => "logs.append",
        ("GET", "/logs/{log}") => "logs.read",
        ("DELETE", "/logs/{log}") => "logs.delete",
        ("GET", "/logs/{log}/statistics") => "logs.statistics",
        ("GET", "/logs/{log}/{id}") => "entries.get",
        ("DELETE", "/logs/{log}/{id}") => "entries.delete",
        ("GET", "/search") => "logs.search",
        ("GET", "/statistics") => "statistics",
        ("POST", "/api/keys") => "keys.create",
        ("GET", "/api/keys") => "keys.list",
        ("DELETE", "/api/keys/{id}") => "keys.revoke",
        ("POST", "/api/keys/{id}/rotate") => "keys.rotate",
        ("POST", "/api/tenants") => "tenants.create",
        ("GET", "/api/tenants") => "tenants.list",
        ("DELETE", "/api/tenants/{id}") => "tenants.delete",
        ("GET", "/api/audit") => "audit.list",
        ("GET", "/api/audit/verify") => "audit.verify",
        ("GET", "/api/retention") => "retention.get",
        ("PUT", "/api/retention") => "retention.set",
        ("POST", "/api/erasure") => "logs.erase",
        _ => "",
    };
    if known.is_empty() {
        // Routes added later still get a readable, stable name.
        format!("{} {}", m.to_ascii_lowercase(), route)
    } else {
        known.to_owned()
    }
}

/// The middleware.
pub async fn audit(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(X_REQUEST_ID, v);
    }
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut resource: String = req.uri().path().chars().take(MAX_RESOURCE).collect();
    if resource.len() < req.uri().path().len() {
        resource.push('…');
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());

    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
    let Some(route) = route.filter(|r| !is_service_route(r)) else {
        return resp;
    };
    let status = resp.status();
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    let caller = slot.take();
    if caller.is_none() && !refused {
        return resp;
    }
    let outcome = if refused {
        "denied"
    } else if status.is_success() {
        "success"
    } else {
        "failure"
    };
    let scope = caller
        .as_ref()
        .filter(|c| !c.global)
        .map(|c| c.tenant.clone());
    let event = AuditEvent {
        ts: now_ms(),
        tenant: caller.as_ref().map(|c| c.tenant.to_string()),
        principal: caller.as_ref().map(|c| c.principal.clone()),
        auth_method: caller.as_ref().map(|c| c.auth_method.to_owned()),
        action: action(&method, &route),
        resource,
        outcome: outcome.to_owned(),
        status: status.as_u16(),
        client,
        request_id,
        count: 1,
    };
    st.audit.record(scope, event).await;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_tokens_or_replaced() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(sane_request_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        for bad in ["", "a b", "a\"b", &"x".repeat(129)] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert_eq!(sane_request_id(&v), None, "{bad:?}");
        }
        assert_eq!(new_request_id().len(), 32);
    }

    #[test]
    fn actions_are_named() {
        assert_eq!(action(&Method::POST, "/logs/{log}"), "logs.append");
        assert_eq!(action(&Method::PUT, "/api/x"), "put /api/x");
    }
}
