//! Turning the configured certificate, key and client CA into a rustls server configuration.
//!
//! Errors name the setting at fault and never contain key material: the key's value is never
//! echoed, not even as a file name, because a mistyped inline key would otherwise be printed.

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use x509_parser::time::ASN1Time;

use crate::rotation::LiveSecrets;
use crate::secret::Secret;

/// Why the TLS material cannot be used; the message names the setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TlsError(pub String);

/// Where the certificate, key and client CA come from: each a path or inline PEM.
#[derive(Clone, Debug)]
pub struct TlsSources {
    pub cert: String,
    pub key: Secret,
    pub client_ca: Option<String>,
    /// Vault-backed values that may rotate (they take precedence over the fields above).
    pub live: LiveSecrets,
}

/// The bytes of one read of the sources, compared between polls to notice a change.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// A certificate expiring sooner than this is reported at every load.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

fn is_inline_pem(text: &str) -> bool {
    text.trim_start().starts_with("-----BEGIN")
}

impl TlsSources {
    /// Reads the current material from files, inline values and rotated Vault values.
    pub fn read(&self) -> Result<Material, TlsError> {
        let text = |name: &str, configured: &str| {
            self.live
                .current(name)
                .map_or_else(|| configured.to_owned(), |s| s.expose().to_owned())
        };
        let cert = read_public("TLS_CERT", &text("TLS_CERT", &self.cert))?;
        let key_text = text("TLS_KEY", self.key.expose());
        let key = if is_inline_pem(&key_text) {
            key_text.into_bytes()
        } else {
            std::fs::read(key_text.trim()).map_err(|e| {
                TlsError(format!(
                    "TLS_KEY: cannot read the key file: {} (the value is not shown)",
                    e.kind()
                ))
            })?
        };
        let client_ca = match &self.client_ca {
            Some(ca) => Some(read_public("TLS_CLIENT_CA", &text("TLS_CLIENT_CA", ca))?),
            None => None,
        };
        Ok(Material {
            cert,
            key,
            client_ca,
        })
    }
}

fn read_public(setting: &str, text: &str) -> Result<Vec<u8>, TlsError> {
    if is_inline_pem(text) {
        return Ok(text.as_bytes().to_vec());
    }
    std::fs::read(text.trim())
        .map_err(|e| TlsError(format!("{setting}: cannot read '{}': {e}", text.trim())))
}

/// The rustls provider restricted to the suites we accept: every TLS 1.3 suite (all AEAD)
/// and the TLS 1.2 ECDHE suites with AES-GCM or ChaCha20-Poly1305.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite as cs, default_provider};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    })
}

/// What a successful build learned about the leaf certificate.
#[derive(Clone, Debug)]
pub struct LeafInfo {
    /// When it expires, as the certificate states it.
    pub not_after: String,
    /// Time left until then.
    pub remaining: Duration,
}

/// Builds the server configuration from one read of the material.
pub fn build(m: &Material) -> Result<(Arc<ServerConfig>, LeafInfo), TlsError> {
    let certs = CertificateDer::pem_slice_iter(&m.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("TLS_CERT: not a PEM certificate chain: {e}")))?;
    let leaf = certs.first().ok_or_else(|| {
        TlsError("TLS_CERT: no certificate found (expected PEM 'BEGIN CERTIFICATE')".into())
    })?;
    let info = check_validity(leaf)?;
    // NB: the parser's error for the key is not shown, as it may quote part of the input.
    let key = PrivateKeyDer::from_pem_slice(&m.key).map_err(|_| {
        TlsError(
            "TLS_KEY: no usable private key found (expected PEM PKCS#8, PKCS#1 or SEC1)".into(),
        )
    })?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS: {e}")))?;
    let builder = match &m.client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    TlsError(format!("TLS_CLIENT_CA: not a PEM certificate bundle: {e}"))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("TLS_CLIENT_CA: unusable certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(TlsError(
                    "TLS_CLIENT_CA: no certificate found (expected PEM 'BEGIN CERTIFICATE')".into(),
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError(format!("TLS_CLIENT_CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError("TLS_KEY does not match the certificate in TLS_CERT".into())
        }
        other => TlsError(format!("TLS_KEY: unusable private key: {other}")),
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), info))
}

/// Refuses a leaf certificate that is expired or not yet valid: clients would refuse it, so
/// serving it only turns a clear start-up error into puzzling handshake failures.
fn check_validity(leaf: &CertificateDer<'_>) -> Result<LeafInfo, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| TlsError(format!("TLS_CERT: unreadable certificate: {e}")))?;
    let validity = cert.validity();
    let now = ASN1Time::now();
    if now > validity.not_after {
        return Err(TlsError(format!(
            "TLS_CERT: the certificate expired on {}",
            validity.not_after
        )));
    }
    if now < validity.not_before {
        return Err(TlsError(format!(
            "TLS_CERT: the certificate is not valid before {}",
            validity.not_before
        )));
    }
    let remaining = validity
        .time_to_expiration()
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default();
    Ok(LeafInfo {
        not_after: validity.not_after.to_string(),
        remaining,
    })
}

/// Logs a warning when the certificate expires within [`EXPIRY_WARNING`].
pub fn warn_if_expiring(info: &LeafInfo) {
    if info.remaining < EXPIRY_WARNING {
        tracing::warn!(
            not_after = %info.not_after,
            "the TLS certificate expires in less than 7 days: renew it (it is reloaded without a restart)"
        );
    }
}
