//! The router: every route, the shared state, and the layers that keep every response JSON.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use neurallog_core::ingest::Limits;
use neurallog_storage::Storage;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::audit::AuditSink;
use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::routes;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub auth: Arc<Authenticator>,
    pub audit: AuditSink,
    pub limits: Arc<Limits>,
    /// The tenants' data keys; `None` only when encryption was disabled for a benchmark.
    pub keyring: Option<Arc<neurallog_storage::crypt::Keyring>>,
    /// Retention defaults and purge counters.
    pub retention: Arc<crate::retention::Retention>,
    pub metrics: Arc<Metrics>,
}

/// Builds the router (tests call it without a socket).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(routes::meta::root))
        .route("/health", get(routes::meta::health))
        .route("/ready", get(routes::meta::ready))
        .route("/openapi.json", get(routes::meta::openapi))
        .route("/logs", get(routes::logs::list))
        .route(
            "/logs/{log}",
            get(routes::logs::read)
                .post(routes::logs::append)
                .patch(routes::logs::append)
                .delete(routes::logs::delete_log),
        )
        .route("/logs/{log}/statistics", get(routes::stats::log_statistics))
        .route(
            "/logs/{log}/{id}",
            get(routes::logs::get_entry).delete(routes::logs::delete_entry),
        )
        .route("/search", get(routes::search::search))
        .route("/api/encryption", get(routes::encryption::status))
        .route(
            "/api/encryption/rotate",
            axum::routing::post(routes::encryption::rotate),
        )
        .route(
            "/api/encryption/reencrypt",
            axum::routing::post(routes::encryption::reencrypt),
        )
        .route("/statistics", get(routes::stats::statistics))
        .route(
            "/api/retention",
            get(routes::retention::get).put(routes::retention::put),
        )
        .route("/api/erasure", post(routes::erasure::erase))
        .route(
            "/api/keys",
            post(routes::keys::create).get(routes::keys::list),
        )
        .route("/api/keys/{id}", delete(routes::keys::revoke))
        .route("/api/keys/{id}/rotate", post(routes::keys::rotate))
        .route(
            "/api/tenants",
            post(routes::tenants::create).get(routes::tenants::list),
        )
        .route("/api/tenants/{id}", delete(routes::tenants::delete))
        .route("/api/audit", get(routes::audit::list))
        .route("/api/audit/verify", get(routes::audit::verify))
        .fallback(|| async { ApiError::not_found("no such route") })
        // Every call passes the audit layer: request id, then (after the handler) the event.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::layer::audit,
        ))
        .layer(middleware::map_response(json_method_not_allowed))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal().into_response()
        }))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}

/// axum answers a wrong method with an empty 405 (and the `Allow` header); give it the JSON
/// error body every other error has, keeping `Allow`.
async fn json_method_not_allowed(resp: Response<Body>) -> Response<Body> {
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED
        || resp.headers().contains_key(header::CONTENT_TYPE)
    {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let mut out = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
    .into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}
