//! HTTPS (spec §6.1) over a real socket with certificates made by rcgen: protocol and ALPN,
//! certificate reload without a restart, client certificates, expired and broken material,
//! and graceful shutdown over TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use neurallog_client::{Client, ClientError, TlsOptions};
use neurallog_server::config::TlsSettings;
use neurallog_server::secret::Secret;
use neurallog_server::{Server, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

const KEY: &str = "test-key-0123456789-0123456789-0123456789";

/// A certificate authority that issues server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Pair {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, tweak: impl FnOnce(&mut CertificateParams)) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
            .expect("params");
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("cert");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Pair {
        self.issue(|_| {})
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    // Write then rename, as a certificate manager does, so a poll never sees half a file.
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, body).expect("write");
    std::fs::rename(&tmp, &p).expect("rename");
    p.display().to_string()
}

fn config(dir: &Path, tls: TlsSettings) -> ServerConfig {
    let mut c = ServerConfig::for_dir(&dir.join("data"));
    c.api_key = Some(Secret::new(KEY));
    c.tls = Some(tls);
    c
}

fn settings(cert: &str, key: &str, client_ca: Option<&str>) -> TlsSettings {
    TlsSettings {
        cert: cert.to_owned(),
        key: Secret::new(key),
        client_ca: client_ca.map(str::to_owned),
    }
}

fn client(addr: SocketAddr, tls: TlsOptions) -> Client {
    Client::with_tls(&format!("https://{addr}"), Some(KEY.into()), &tls).expect("client")
}

fn trusting(ca: &Ca) -> TlsOptions {
    TlsOptions {
        ca_pem: Some(ca.pem.clone().into_bytes()),
        identity_pem: None,
    }
}

/// Connects with rustls and returns the leaf certificate the server presented and the
/// negotiated ALPN protocol.
async fn handshake(
    addr: SocketAddr,
    ca: &Ca,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<(Vec<u8>, Option<Vec<u8>>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("ca pem"))
        .expect("root");
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((leaf, conn.alpn_protocol().map(<[u8]>::to_vec)))
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[tokio::test]
async fn serves_https_with_alpn_and_both_tls_versions() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("test ca");
    let pair = ca.server();
    // Inline PEM, as the Kubernetes operator passes it.
    let server = Server::start(config(dir.path(), settings(&pair.cert, &pair.key, None)))
        .await
        .expect("start");
    let addr = server.addr();

    let (leaf, alpn) = handshake(addr, &ca, &[b"h2", b"http/1.1"], BOTH)
        .await
        .expect("handshake");
    assert_eq!(leaf, der(&pair.cert));
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (_, alpn) = handshake(addr, &ca, &[b"http/1.1"], BOTH)
        .await
        .expect("h1");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        handshake(addr, &ca, &[b"http/1.1"], &[version])
            .await
            .expect("each of TLS 1.2 and 1.3 is accepted");
    }

    let c = client(addr, trusting(&ca));
    c.append(
        "web",
        br#"{"msg":"over tls"}"#.to_vec(),
        neurallog_client::Framing::Json,
    )
    .await
    .expect("append over https");
    assert_eq!(c.list_logs().await.expect("list").logs.len(), 1);
    // A client that does not trust the CA refuses the server.
    let stranger = Client::new(&format!("https://{addr}"), Some(KEY.into())).expect("client");
    assert!(matches!(
        stranger.list_logs().await,
        Err(ClientError::Transport(_))
    ));
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = Client::new(&format!("http://{addr}"), Some(KEY.into())).expect("client");
    assert!(plain.list_logs().await.is_err());
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn certificate_is_reloaded_when_the_files_change() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("test ca");
    let first = ca.server();
    let cert = write(dir.path(), "tls.crt", &first.cert);
    let key = write(dir.path(), "tls.key", &first.key);
    let server = Server::start(config(dir.path(), settings(&cert, &key, None)))
        .await
        .expect("start");
    let addr = server.addr();
    let leaf = || async {
        handshake(addr, &ca, &[b"h2"], BOTH)
            .await
            .expect("handshake")
            .0
    };
    assert_eq!(leaf().await, der(&first.cert));

    let second = ca.server();
    write(dir.path(), "tls.key", &second.key);
    write(dir.path(), "tls.crt", &second.cert);
    let mut served = Vec::new();
    for _ in 0..300 {
        served = leaf().await;
        if served == der(&second.cert) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, der(&second.cert), "the new certificate is served");

    // A broken replacement (garbage key, then a key of another certificate) is refused and
    // the last good pair stays in service.
    write(
        dir.path(),
        "tls.key",
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(leaf().await, der(&second.cert));
    let third = ca.server();
    write(dir.path(), "tls.key", &third.key);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(leaf().await, der(&second.cert));
    let c = client(addr, trusting(&ca));
    assert!(c.list_logs().await.is_ok(), "still serving");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn client_certificates_are_required_with_tls_client_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let other_ca = Ca::new("attacker ca");
    let pair = ca.server();
    let server = Server::start(config(
        dir.path(),
        settings(&pair.cert, &pair.key, Some(&client_ca.pem)),
    ))
    .await
    .expect("start");
    let addr = server.addr();
    let with_identity = |id: Option<&Pair>| {
        client(
            addr,
            TlsOptions {
                ca_pem: Some(ca.pem.clone().into_bytes()),
                identity_pem: id.map(|p| (p.cert.clone().into_bytes(), p.key.clone().into_bytes())),
            },
        )
    };

    let none = with_identity(None).list_logs().await;
    assert!(
        matches!(none, Err(ClientError::Transport(_))),
        "no certificate: {none:?}"
    );
    let forged = other_ca.server();
    let other = with_identity(Some(&forged)).list_logs().await;
    assert!(
        matches!(other, Err(ClientError::Transport(_))),
        "other CA: {other:?}"
    );
    // A certificate the right CA issued but that expired is refused too.
    let expired = client_ca.issue(|p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let old = with_identity(Some(&expired)).list_logs().await;
    assert!(
        matches!(old, Err(ClientError::Transport(_))),
        "expired: {old:?}"
    );

    let good = client_ca.server();
    with_identity(Some(&good))
        .list_logs()
        .await
        .expect("a certificate from TLS_CLIENT_CA is accepted");
    server.shutdown().await.expect("shutdown");
}

async fn start_error(dir: &Path, tls: TlsSettings) -> String {
    match Server::start(config(dir, tls)).await {
        Ok(_) => panic!("started with bad TLS material"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn bad_material_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("test ca");
    let pair = ca.server();
    let other = ca.server();

    let e = start_error(
        dir.path(),
        settings("/nonexistent/tls.crt", &pair.key, None),
    )
    .await;
    assert!(
        e.contains("TLS_CERT") && e.contains("/nonexistent/tls.crt"),
        "{e}"
    );
    let e = start_error(
        dir.path(),
        settings(&pair.cert, "/nonexistent/tls.key", None),
    )
    .await;
    assert!(e.starts_with("TLS_KEY: cannot read"), "{e}");
    let e = start_error(dir.path(), settings(&pair.cert, &other.key, None)).await;
    assert_eq!(e, "TLS_KEY does not match the certificate in TLS_CERT");
    let e = start_error(
        dir.path(),
        settings(
            "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
            &pair.key,
            None,
        ),
    )
    .await;
    assert!(e.starts_with("TLS_CERT"), "{e}");
    let e = start_error(dir.path(), settings(&pair.cert, &pair.cert, None)).await;
    assert!(e.starts_with("TLS_KEY: no usable private key"), "{e}");
    let e = start_error(
        dir.path(),
        settings(
            &pair.cert,
            &pair.key,
            Some("-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"),
        ),
    )
    .await;
    assert!(e.starts_with("TLS_CLIENT_CA"), "{e}");

    // A mangled key never appears in the error, inline or as a "path".
    let body: String = pair
        .key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mangled = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        &body[..body.len() / 2]
    );
    for key in [mangled.as_str(), body.as_str()] {
        let e = start_error(dir.path(), settings(&pair.cert, key, None)).await;
        assert!(e.contains("TLS_KEY"), "{e}");
        assert!(!e.contains(&body[10..40]), "key material in the error: {e}");
    }
}

#[tokio::test]
async fn expired_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("test ca");
    let expired = ca.issue(|p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let e = start_error(dir.path(), settings(&expired.cert, &expired.key, None)).await;
    assert!(
        e.starts_with("TLS_CERT: the certificate expired on") && e.contains("2021"),
        "{e}"
    );
    let future = ca.issue(|p| {
        p.not_before = rcgen::date_time_ymd(2200, 1, 1);
        p.not_after = rcgen::date_time_ymd(2201, 1, 1);
    });
    let e = start_error(dir.path(), settings(&future.cert, &future.key, None)).await;
    assert!(e.contains("not valid before"), "{e}");
}

#[tokio::test]
async fn client_refuses_a_server_with_an_expired_certificate() {
    // The server refuses to start with an expired certificate, so this plays a server that
    // does not check: a bare rustls listener.
    let ca = Ca::new("test ca");
    let expired = ca.issue(|p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let certs = vec![CertificateDer::from_pem_slice(expired.cert.as_bytes()).expect("cert")];
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(expired.key.as_bytes()).expect("key");
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let serve = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let e = client(addr, trusting(&ca)).list_logs().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.to_lowercase().contains("expired"), "{msg}");
    serve.abort();
}

#[tokio::test]
async fn graceful_shutdown_over_tls_keeps_every_event() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("test ca");
    let pair = ca.server();
    let server = Server::start(config(dir.path(), settings(&pair.cert, &pair.key, None)))
        .await
        .expect("start");
    let c = client(server.addr(), trusting(&ca));
    let body: Vec<u8> = (0..500)
        .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
        .collect();
    let appended = c
        .append("kept", body, neurallog_client::Framing::Ndjson)
        .await
        .expect("append");
    assert_eq!(appended.count, 500);
    server.shutdown().await.expect("graceful shutdown over TLS");

    // Reopen the same directory over plain HTTP: everything is there.
    let mut plain = ServerConfig::for_dir(&dir.path().join("data"));
    plain.api_key = Some(Secret::new(KEY));
    let server = Server::start(plain).await.expect("restart");
    let c = Client::new(&format!("http://{}", server.addr()), Some(KEY.into())).expect("client");
    let page = c
        .read("kept", &[("limit".into(), "1000".into())])
        .await
        .expect("read");
    assert_eq!(page.entries.len(), 500);
    server.shutdown().await.expect("shutdown");
}

/// Whether `openssl s_client` completes a handshake with these extra arguments.
fn openssl_handshake(addr: SocketAddr, args: &[&str]) -> Option<bool> {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // A completed handshake prints the negotiated cipher.
    Some(out.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)"))
}

#[tokio::test]
async fn old_protocols_and_weak_suites_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("test ca");
    let pair = ca.server();
    let server = Server::start(config(dir.path(), settings(&pair.cert, &pair.key, None)))
        .await
        .expect("start");
    let addr = server.addr();
    let run = move |args: &'static [&'static str]| {
        tokio::task::spawn_blocking(move || openssl_handshake(addr, args))
    };
    let Some(modern) = run(&["-tls1_2"]).await.expect("task") else {
        eprintln!("openssl is not installed: skipping the downgrade attempts");
        return;
    };
    assert!(modern, "the probe itself works");
    for attempt in [
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"][..],
        &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"][..],
        // TLS 1.2 without forward secrecy or with CBC.
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"][..],
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA",
        ][..],
    ] {
        assert_eq!(
            run(attempt).await.expect("task"),
            Some(false),
            "handshake accepted with {attempt:?}"
        );
    }
    server.shutdown().await.expect("shutdown");
}
