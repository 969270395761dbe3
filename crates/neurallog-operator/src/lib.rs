//! The NeuralLog Kubernetes operator (spec §8).
//!
//! One cluster-scoped `Tenant` becomes one isolated namespace with its own Redis, server,
//! network policies, RBAC and secrets — the multi-tenant isolation of the security guide.
//!
//! The crate splits pure logic from Kubernetes calls, so that everything that decides what the
//! cluster should look like is a plain function with plain tests:
//! - [`crd`]: the `Tenant` types; the CRD schema is generated from them
//! - [`config`]: operator-wide settings
//! - [`secrets`]: generated secret values and their redacting wrapper
//! - [`render`]: Tenant → every desired object (pure)
//! - [`status`]: observed objects → Tenant status and conditions (pure)
//! - [`pss`]: the Pod Security Standards `restricted` profile as a checker (pure)
//!
//! and the IO around them:
//! - [`reconcile`]: the controller loop: secrets, server-side apply, status, finalizer,
//!   rotation, events
//! - [`leader`]: Lease-based leader election
//! - [`telemetry`]: metrics registry and the `/metrics`, `/healthz`, `/readyz` endpoints
//! - [`run`]: `neurallog-operator run`, wiring all of the above

pub mod config;
pub mod crd;
pub mod leader;
pub mod pss;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod secrets;
pub mod status;
pub mod telemetry;

/// An in-memory API server behind a mock client, for the reconciler and election tests.
#[cfg(test)]
mod fake_api;
