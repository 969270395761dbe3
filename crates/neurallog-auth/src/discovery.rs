//! OIDC discovery: `<issuer>/.well-known/openid-configuration` gives the JWKS location and,
//! when advertised, the introspection endpoint.
//!
//! The document's `issuer` must be the configured issuer (OpenID Connect Discovery §4.3), so a
//! document served from the wrong place cannot redirect key lookups to another provider.

use serde::Deserialize;
use url::Url;

use crate::http;

/// The parts of the provider metadata that token verification uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier; equals the configured one after [`discover`].
    pub issuer: String,
    /// Where the signing keys are published.
    pub jwks_uri: Option<Url>,
    /// RFC 7662 endpoint (RFC 8414 metadata), if the provider offers one.
    pub introspection_endpoint: Option<Url>,
}

/// The discovery document's URL for `issuer`.
pub fn discovery_url(issuer: &str) -> Result<Url, String> {
    let base = issuer.trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration"))
        .map_err(|e| format!("not a URL: {e}"))
}

/// Whether the discovered issuer is the configured one: exact, except that one trailing slash
/// on either side is tolerated (operators type both forms; providers differ).
pub fn issuer_matches(configured: &str, discovered: &str) -> bool {
    configured.trim_end_matches('/') == discovered.trim_end_matches('/')
}

/// Fetches and checks the provider metadata.
pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<ProviderMetadata, String> {
    let url = discovery_url(issuer)?;
    let meta: ProviderMetadata = http::json(client.get(url)).await?;
    if !issuer_matches(issuer, &meta.issuer) {
        return Err(format!(
            "the provider names its issuer {:?}, not the configured one",
            meta.issuer
        ));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_path_and_issuer_match() {
        assert_eq!(
            discovery_url("https://idp.example/realms/a/")
                .unwrap()
                .as_str(),
            "https://idp.example/realms/a/.well-known/openid-configuration"
        );
        assert!(issuer_matches(
            "https://idp.example/",
            "https://idp.example"
        ));
        assert!(!issuer_matches(
            "https://idp.example",
            "https://evil.example"
        ));
        assert!(!issuer_matches(
            "https://idp.example/a",
            "https://idp.example/b"
        ));
    }
}
