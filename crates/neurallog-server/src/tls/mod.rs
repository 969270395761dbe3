//! HTTPS for `neurallog serve` (spec §6.1).
//!
//! - [`material`]: reads `TLS_CERT`, `TLS_KEY` and `TLS_CLIENT_CA` (paths or inline PEM) and
//!   builds the rustls configuration: TLS 1.2 and 1.3 only, ECDHE with AES-GCM or
//!   ChaCha20-Poly1305 only, ALPN `h2` and `http/1.1`, optional client certificates.
//! - [`reload`]: re-reads the material every few seconds and swaps in a new configuration
//!   when it changed and is valid; a bad new pair is logged and the old one kept.
//! - [`listener`]: the accept loop that runs the handshake and hands each connection to the
//!   router, with the same graceful shutdown as plain HTTP.

pub mod listener;
pub mod material;
pub mod reload;

pub use material::{TlsError, TlsSources};
