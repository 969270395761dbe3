//! Prometheus metrics of the server (spec §7), served on their own listener (`METRICS_PORT`)
//! so that scraping needs no API credential and the API port exposes nothing extra.
//!
//! One explicit [`Metrics`] registry lives in the application state (never a global). Labels
//! take only values the server chooses — the matched route template, the method, the status,
//! error kinds and failure reasons — never a tenant-supplied string, so a client cannot blow
//! up the series count.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Response, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::get;
use neurallog_storage::ErrorKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::StorageFailure;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/logs/{log}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels of a request duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

/// A reason label (auth failures).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// A storage error kind label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub ingested_events: Counter,
    pub ingested_bytes: Counter,
    pub auth_failures: Family<ReasonLabels, Counter>,
    pub rate_limited: Counter,
    pub storage_errors: Family<KindLabels, Counter>,
    pub in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("neurallog");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))) as fn() -> Histogram,
        );
        let ingested_events = Counter::default();
        let ingested_bytes = Counter::default();
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        let rate_limited = Counter::default();
        let storage_errors = Family::<KindLabels, Counter>::default();
        let in_flight = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method",
            duration.clone(),
        );
        registry.register(
            "ingested_events",
            "Events accepted and stored",
            ingested_events.clone(),
        );
        registry.register(
            "ingested_bytes",
            "Bytes of event JSON accepted and stored",
            ingested_bytes.clone(),
        );
        registry.register(
            "auth_failures",
            "Refused authentications and authorisations by reason",
            auth_failures.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "storage_errors",
            "Requests failed by storage, by error kind",
            storage_errors.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being served",
            in_flight.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            ingested_events,
            ingested_bytes,
            auth_failures,
            rate_limited,
            storage_errors,
            in_flight,
        }
    }
}

impl Metrics {
    /// The registry, for parts of the server that register metrics of their own at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Counts a refused authentication or authorisation.
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // NB: writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Corrupt => "corrupt",
        ErrorKind::Internal => "internal",
    }
}

/// Middleware recording every request of the API router.
pub async fn track(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response<Body> {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    metrics.in_flight.inc();
    let resp = next.run(req).await;
    metrics.in_flight.dec();
    metrics
        .duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    match resp.status() {
        StatusCode::UNAUTHORIZED => metrics.auth_failure("unauthenticated"),
        StatusCode::FORBIDDEN => metrics.auth_failure("forbidden"),
        _ => {}
    }
    if let Some(StorageFailure(kind)) = resp.extensions().get::<StorageFailure>() {
        metrics
            .storage_errors
            .get_or_create(&KindLabels {
                kind: kind_label(*kind).to_owned(),
            })
            .inc();
    }
    resp
}

/// The router of the metrics listener: `/metrics` only.
pub fn app(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
