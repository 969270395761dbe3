//! Bearer-token credentials of NeuralLog: a token in, a verified identity (or a classified
//! refusal) out. No HTTP framework: the server calls [`TokenVerifier::verify`] from its own
//! authentication and maps the result to a principal, a 401 or a 503.
//!
//! - [`settings`]: [`TokenSettings`], read from `JWT_*`, `OIDC_*` and `OAUTH2_*` and checked.
//! - [`verifier`]: [`TokenVerifier`], which routes a token to JWT verification or introspection.
//! - `jwt`: signature and claim checks of JSON Web Tokens against configured keys.
//! - `keys`: the verification keys (HMAC secret, PEM key, JWKS keys) and their families.
//! - `jwks`: the JWKS cache with its rate-limited refresh on unknown key ids.
//! - `discovery`: OIDC discovery (`/.well-known/openid-configuration`).
//! - `introspection`: RFC 7662 introspection of opaque tokens, cached by token hash.
//! - [`identity`]: [`TokenIdentity`], [`TokenRejection`] and the claims-to-identity mapping.
//! - `cache`: the caches of verified tokens, keyed by [`TokenHash`] (SHA-256), never the token.
//! - `http`: the HTTP client used towards the identity provider (timeouts, size limits).
//! - [`secret`]: [`SecretBytes`], a secret that never prints.
//! - `testing` (feature `testsuite`): a real identity provider on 127.0.0.1 for tests.

mod cache;
mod discovery;
mod http;
pub mod identity;
mod introspection;
mod jwks;
mod jwt;
mod keys;
pub mod secret;
pub mod settings;
#[cfg(feature = "testsuite")]
pub mod testing;
pub mod verifier;

pub use cache::TokenHash;
pub use identity::{ClaimNames, TokenIdentity, TokenMethod, TokenRejection};
pub use jsonwebtoken::Algorithm;
pub use secret::SecretBytes;
pub use settings::{SettingsError, TokenSettings};
pub use verifier::TokenVerifier;
