//! The NeuralLog HTTP server.
//!
//! - [`config`]: settings from flags, environment, a TOML file and defaults (spec §2).
//! - [`secret`]: a string that never prints.
//! - [`auth`]: who is calling — the bootstrap API key check and the [`auth::Principal`] extractor.
//! - [`error`]: [`error::ApiError`], the one error type that becomes every error response.
//! - [`routes`]: one module per resource; [`app`] assembles them into the router.
//! - [`openapi`]: the OpenAPI document generated from the route annotations.
//! - [`retention`]: retention settings and the background purge.
//! - [`run`]: binds, serves and shuts down gracefully.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod openapi;
pub mod retention;
pub mod routes;
pub mod secret;
mod serve;

pub use app::{AppState, app};
pub use config::ServerConfig;
pub use serve::{Server, open_storage, run, shutdown_signal};
