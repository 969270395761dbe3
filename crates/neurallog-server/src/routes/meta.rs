//! Unauthenticated service routes: identity, liveness, readiness, the API description.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use neurallog_core::api::{HealthBody, SUCCESS, ServiceInfo};

use crate::app::AppState;
use crate::error::ApiError;

/// Service name and version.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = ServiceInfo)))]
pub async fn root() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        status: SUCCESS.into(),
        name: "neurallog".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, body = HealthBody)))]
pub async fn health() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
    })
}

/// Readiness: 200 when storage answers, else 503.
#[utoipa::path(get, path = "/ready", tag = "service", responses((status = 200, body = HealthBody), (status = 503, body = neurallog_core::api::ErrorBody)))]
pub async fn ready(State(st): State<AppState>) -> Response {
    match st.storage.ping().await {
        Ok(()) => Json(HealthBody {
            status: "ready".into(),
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "storage is unavailable",
            )
            .into_response()
        }
    }
}

/// The OpenAPI 3 description of every route.
#[utoipa::path(get, path = "/openapi.json", tag = "service", responses((status = 200, description = "OpenAPI document")))]
pub async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
        .into_response()
}
