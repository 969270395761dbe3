//! The NeuralLog HTTP server.
//!
//! - [`config`]: settings from flags, environment, a TOML file and defaults (spec §2).
//! - [`secret`]: a string that never prints.
//! - [`abuse`]: per-credential rate limits and per-address brute-force blocking (§7).
//! - [`auth`]: who is calling — credentials (fixed keys, API keys, tokens) to the
//!   [`auth::Principal`] extractor, whose `require` is the RBAC decision of every route.
//! - [`tenants`]: the tenant registry.
//! - [`audit`]: the hash-chained audit trail, its writer task and its middleware.
//! - [`error`]: [`error::ApiError`], the one error type that becomes every error response.
//! - [`routes`]: one module per resource; [`app`] assembles them into the router.
//! - [`metrics`]: the Prometheus registry, the request-tracking layer and the `/metrics` router.
//! - [`openapi`]: the OpenAPI document generated from the route annotations.
//! - [`tls`]: HTTPS with certificate reload and optional client certificates.
//! - [`rotation`]: secrets that change while the server runs; [`vault`] reads them from
//!   HashiCorp Vault (cargo feature `vault`).
//! - [`retention`]: retention settings and the background purge.
//! - [`run`]: binds, serves and shuts down gracefully.

pub mod abuse;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod retention;
pub mod rotation;
pub mod routes;
pub mod secret;
mod serve;
pub mod tenants;
pub mod tls;
#[cfg(feature = "vault")]
pub mod vault;

pub use app::{AppState, app};
pub use config::ServerConfig;
pub use serve::{Server, open_storage, run, shutdown_signal};
