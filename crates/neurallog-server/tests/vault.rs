//! Secrets read from HashiCorp Vault's KV v2 API (a stand-in server speaking its responses):
//! start-up resolution, rotation, and every failure a clear error without the token.

mod support;

use std::time::Duration;

use neurallog_server::ServerConfig;
use neurallog_server::config::Flags;
use support::vault::{FakeVault, TOKEN};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn resolve(pairs: &[(&str, &str)]) -> Result<ServerConfig, String> {
    ServerConfig::resolve_with_secrets(&Flags::default(), &vars(pairs))
        .await
        .map_err(|e| e.0)
}

const API: &str = "vault-api-key-0123456789-0123456789-abcdef";

#[tokio::test]
async fn references_are_replaced_and_never_printed() {
    let vault = FakeVault::start().await;
    vault.put("secret/neurallog", "api_key", API);
    vault.put("secret/neurallog/redis", "password", "vault-redis-pw-xyz");
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write");
    let c = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN_FILE", token_file.to_str().expect("utf-8")),
        ("API_KEY", "vault:secret/neurallog#api_key"),
        ("REDIS_PASSWORD", "vault:secret/neurallog/redis#password"),
    ])
    .await
    .expect("resolve");
    assert_eq!(c.api_key.as_ref().expect("key").expose(), API);
    assert_eq!(
        c.redis_password.as_ref().expect("pw").expose(),
        "vault-redis-pw-xyz"
    );
    let dump = format!("{c:?} {:?}", c.redacted());
    for secret in [API, "vault-redis-pw-xyz", TOKEN] {
        assert!(!dump.contains(secret), "{secret} printed: {dump}");
    }
    let shown = c.redacted();
    assert!(shown["VAULT_ADDR"].starts_with(&vault.addr));
    assert_eq!(shown["VAULT_SECRETS"], "API_KEY, REDIS_PASSWORD");
}

#[tokio::test]
async fn failures_are_clear_and_never_show_the_token() {
    let vault = FakeVault::start().await;
    vault.put("secret/neurallog", "api_key", API);
    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", "hvs.wrong-token-777"),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(
        e.contains("403") && e.contains("VAULT_TOKEN") && e.contains("API_KEY"),
        "{e}"
    );
    assert!(!e.contains("wrong-token-777"), "{e}");

    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/neurallog#nope"),
    ])
    .await
    .unwrap_err();
    assert!(
        e.contains("has no field 'nope'") && e.contains("API_KEY"),
        "{e}"
    );

    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/elsewhere#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(e.contains("no secret at secret/elsewhere"), "{e}");

    // Vault down: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = format!("http://127.0.0.1:{port}");
    let e = resolve(&[
        ("VAULT_ADDR", &down),
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(
        e.contains("cannot reach Vault") && !e.contains(TOKEN),
        "{e}"
    );

    let e = resolve(&[
        ("VAULT_TOKEN", TOKEN),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(e.contains("VAULT_ADDR"), "{e}");
    let e = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .unwrap_err();
    assert!(e.contains("VAULT_TOKEN"), "{e}");
    // Malformed and path-escaping references.
    for bad in [
        "vault:secret#x",
        "vault:secret/a",
        "vault:secret/../sys#x",
        "vault:/a#b",
    ] {
        let e = resolve(&[
            ("VAULT_ADDR", &vault.addr),
            ("VAULT_TOKEN", TOKEN),
            ("API_KEY", bad),
        ])
        .await
        .unwrap_err();
        assert!(e.starts_with("invalid API_KEY"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn rotated_values_are_published() {
    let vault = FakeVault::start().await;
    vault.put("secret/neurallog", "api_key", API);
    let c = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("VAULT_REFRESH_SECONDS", "1"),
        ("API_KEY", "vault:secret/neurallog#api_key"),
    ])
    .await
    .expect("resolve");
    let mut rx = c.live.subscribe("API_KEY").expect("vault-backed");
    assert!(c.live.subscribe("REDIS_PASSWORD").is_none());
    let task = c.live.spawn_refresh().expect("refresh task");
    vault.put(
        "secret/neurallog",
        "api_key",
        "rotated-key-9876543210-9876543210-x",
    );
    tokio::time::timeout(Duration::from_secs(60), rx.changed())
        .await
        .expect("rotation seen")
        .expect("channel open");
    assert_eq!(rx.borrow().expose(), "rotated-key-9876543210-9876543210-x");
    task.abort();
}

/// A server certificate for 127.0.0.1 from `issuer`: (cert pem, key pem).
fn server_pair(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, issuer)
        .expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// The leaf certificate the server presents, PEM-decoded to DER.
async fn served_leaf(addr: std::net::SocketAddr, ca_pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca"))
        .expect("root");
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

#[tokio::test]
async fn tls_certificate_rotated_in_vault_is_served_without_a_restart() {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let (cert, key) = server_pair(&issuer);

    let vault = FakeVault::start().await;
    vault.put("secret/tls", "cert", &cert);
    vault.put("secret/tls", "key", &key);
    let dir = tempfile::tempdir().expect("dir");
    let mut c = resolve(&[
        ("VAULT_ADDR", &vault.addr),
        ("VAULT_TOKEN", TOKEN),
        ("VAULT_REFRESH_SECONDS", "1"),
        ("API_KEY", API),
        ("TLS_CERT", "vault:secret/tls#cert"),
        ("TLS_KEY", "vault:secret/tls#key"),
    ])
    .await
    .expect("resolve");
    c.data_dir = dir.path().to_path_buf();
    c.port = 0;
    let server = neurallog_server::Server::start(c).await.expect("start");
    assert_eq!(served_leaf(server.addr(), &ca_pem).await, der(&cert));

    let (cert2, key2) = server_pair(&issuer);
    vault.put("secret/tls", "key", &key2);
    vault.put("secret/tls", "cert", &cert2);
    let mut served = Vec::new();
    for _ in 0..300 {
        served = served_leaf(server.addr(), &ca_pem).await;
        if served == der(&cert2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, der(&cert2), "the rotated certificate is served");
    server.shutdown().await.expect("shutdown");
}
