//! Domain types and rules of NeuralLog, free of IO.
//!
//! Every value that crosses a trust boundary is parsed here into a type that carries its rules,
//! so the storage and server crates never handle an unchecked tenant, log name or event.
//!
//! - [`tenant`]: [`TenantId`], the DNS-label tenant identifier.
//! - [`log_name`]: [`LogName`], the validated log name of spec §3.3.
//! - [`id`]: [`EntryId`], the time-ordered 128-bit entry id, and its monotonic generator.
//! - [`time`]: parsing and printing of timestamps (RFC 3339 or epoch milliseconds).
//! - [`ingest`]: turns a request body (object, array, NDJSON) into bounded [`ingest::NewEvent`]s.
//! - [`entry`]: the stored [`Entry`] and its wire shape (spec §3.2).
//! - [`query`]: read and search queries, cursors and the event matcher.
//! - [`rbac`]: roles, permissions, grants and the pure [`rbac::authorize`] decision.
//! - [`api`]: request and response bodies shared by the server, the client and the OpenAPI document.
//! - [`admin`]: the bodies of the administration API: tenants, API keys, the audit trail.

pub mod admin;
pub mod api;
pub mod entry;
pub mod id;
pub mod ingest;
pub mod log_name;
pub mod query;
pub mod rbac;
pub mod retention;
pub mod tenant;
pub mod time;

pub use entry::Entry;
pub use id::EntryId;
pub use log_name::LogName;
pub use tenant::TenantId;
