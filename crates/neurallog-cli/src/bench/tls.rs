//! The self-signed certificate of a `bench --tls` run.
//!
//! A throwaway CA signs a certificate for 127.0.0.1; the server gets the certificate and key
//! as files in the run's directory and the load generator trusts the CA, so the figures
//! include full certificate verification, as a real client pays it.

use std::path::PathBuf;

use anyhow::Context;
use neurallog_client::TlsOptions;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

pub struct SelfSigned {
    _dir: tempfile::TempDir,
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl SelfSigned {
    /// Creates the CA and the server certificate, writing the server's files to a temporary
    /// directory that lives as long as this value.
    pub fn create() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
            .signed_by(&key, &issuer)?;
        let dir = tempfile::tempdir().context("cannot create a directory for the certificate")?;
        let pki = dir.path();
        let (cert_path, key_path) = (pki.join("tls.crt"), pki.join("tls.key"));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok(Self {
            _dir: dir,
            ca_pem: ca_cert.pem(),
            cert: cert_path,
            key: key_path,
        })
    }

    /// `TLS_CERT` and `TLS_KEY` for the server.
    pub fn server_env(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("TLS_CERT", self.cert.clone()),
            ("TLS_KEY", self.key.clone()),
        ]
    }

    /// Client options that trust the run's CA.
    pub fn client_options(&self) -> TlsOptions {
        TlsOptions {
            ca_pem: Some(self.ca_pem.clone().into_bytes()),
            identity_pem: None,
        }
    }
}
