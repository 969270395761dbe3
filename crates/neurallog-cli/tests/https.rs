//! The `neurallog` binary over HTTPS: serve with TLS and client certificates, the client
//! commands with `--ca-cert` and `--client-cert`, graceful shutdown, and what start-up
//! refuses (plain HTTP in production, broken or expired material) without printing secrets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_neurallog");
const KEY: &str = "https-test-key-0123456789abcdefghijklmnop";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A server CA with a server certificate, and a client CA with a client certificate;
    /// also a client certificate from a third CA.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let ca = |name: &str| {
            let key = KeyPair::generate().expect("key");
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = p.self_signed(&key).expect("ca");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            Issuer::new(p, key)
        };
        let issue =
            |issuer: &Issuer<'_, KeyPair>, name: &str, tweak: &dyn Fn(&mut CertificateParams)| {
                let key = KeyPair::generate().expect("key");
                let mut p = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
                tweak(&mut p);
                let cert = p.signed_by(&key, issuer).expect("cert");
                std::fs::write(dir.path().join(format!("{name}.crt")), cert.pem()).expect("write");
                std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                    .expect("write");
            };
        let server_ca = ca("server-ca");
        let client_ca = ca("client-ca");
        let other_ca = ca("other-ca");
        issue(&server_ca, "server", &|_| {});
        issue(&server_ca, "expired", &|p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        });
        issue(&client_ca, "client", &|_| {});
        issue(&other_ca, "intruder", &|_| {});
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn serve(data: &Path, envs: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env("NEURALLOG_DATA_DIR", data)
        .env("API_KEY", KEY)
        .env("LOG_LEVEL", "warn")
        .env_remove("NEURALLOG_ENV")
        .env_remove("NODE_ENV");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn client(args: &[&str], url: &str, pki: &Pki, cert: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--ca-cert")
        .arg(pki.path("server-ca.pem"))
        .env("NEURALLOG_URL", url)
        .env("NEURALLOG_API_KEY", KEY)
        .env_remove("NEURALLOG_CA_CERT")
        .env_remove("NEURALLOG_CLIENT_CERT")
        .env_remove("NEURALLOG_CLIENT_KEY");
    if let Some(name) = cert {
        cmd.arg("--client-cert")
            .arg(pki.path(&format!("{name}.crt")))
            .arg("--client-key")
            .arg(pki.path(&format!("{name}.key")));
    }
    cmd.stdin(Stdio::null()).output().expect("run client")
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn https_with_client_certificates_end_to_end() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("data");
    let port = free_port();
    let child = serve(
        data.path(),
        &[
            ("TLS_CERT", &pki.path("server.crt")),
            ("TLS_KEY_FILE", &pki.path("server.key")),
            ("TLS_CLIENT_CA", &pki.path("client-ca.pem")),
        ],
    )
    .env("PORT", port.to_string())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    let mut server = Running(child);
    let url = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client(&["logs", "list"], &url, &pki, Some("client"))
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the HTTPS server did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut append = Command::new(BIN);
    append
        .args(["logs", "append", "web", "-o", "json"])
        .env("NEURALLOG_URL", &url)
        .env("NEURALLOG_API_KEY", KEY)
        // The environment variables work as well as the flags.
        .env("NEURALLOG_CA_CERT", pki.path("server-ca.pem"))
        .env("NEURALLOG_CLIENT_CERT", pki.path("client.crt"))
        .env("NEURALLOG_CLIENT_KEY", pki.path("client.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = append.spawn().expect("append");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"msg\":\"one\"}\n{\"msg\":\"two\"}\n")
            .expect("stdin");
    }
    let out = child.wait_with_output().expect("append output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = client(
        &["logs", "get", "web", "-o", "json"],
        &url,
        &pki,
        Some("client"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));

    // Refused at the handshake: no client certificate, or one from another CA.
    for cert in [None, Some("intruder")] {
        let out = client(&["logs", "list"], &url, &pki, cert);
        assert!(!out.status.success(), "{cert:?} was let in");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    // A client that does not trust the server's CA refuses it.
    let out = Command::new(BIN)
        .args(["logs", "list"])
        .env("NEURALLOG_URL", &url)
        .env("NEURALLOG_API_KEY", KEY)
        .env_remove("NEURALLOG_CA_CERT")
        .output()
        .expect("run");
    assert!(!out.status.success());

    // SIGTERM over TLS: drain, flush, exit 0.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

fn start_failure(cmd: &mut Command) -> String {
    let out = cmd
        .env("PORT", free_port().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_up_refuses_unsafe_or_broken_tls() {
    let pki = Pki::new();
    let data = tempfile::tempdir().expect("data");
    let strong = "p".repeat(40);

    let err = start_failure(
        serve(data.path(), &[])
            .env("NODE_ENV", "production")
            .env("API_KEY", &strong),
    );
    assert!(
        err.contains("TLS is off") && err.contains("NEURALLOG_TLS_PROXY"),
        "{err}"
    );

    let err = start_failure(&mut serve(
        data.path(),
        &[
            ("TLS_CERT", &pki.path("expired.crt")),
            ("TLS_KEY", &pki.path("expired.key")),
        ],
    ));
    assert!(
        err.contains("TLS_CERT: the certificate expired on"),
        "{err}"
    );

    let err = start_failure(&mut serve(
        data.path(),
        &[
            ("TLS_CERT", &pki.path("server.crt")),
            ("TLS_KEY", &pki.path("client.key")),
        ],
    ));
    assert!(
        err.contains("TLS_KEY does not match the certificate in TLS_CERT"),
        "{err}"
    );
    let key = std::fs::read_to_string(pki.path("server.key")).expect("key");
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let err = start_failure(
        serve(data.path(), &[("TLS_CERT", &pki.path("missing.crt"))]).env("TLS_KEY", &body),
    );
    assert!(
        err.contains("TLS_CERT") && err.contains("missing.crt"),
        "{err}"
    );
    assert!(!err.contains(&body[8..40]), "key material printed: {err}");
}

#[test]
fn config_show_redacts_every_secret() {
    let pki = Pki::new();
    let key = std::fs::read_to_string(pki.path("server.key")).expect("key");
    let secrets = [
        ("API_KEY", "cfg-show-api-key-0123456789-0123456789"),
        ("REDIS_URL", "rediss://app:cfg-show-url-password@redis:6379"),
        ("REDIS_PASSWORD", "cfg-show-redis-password"),
        ("TLS_KEY", key.as_str()),
    ];
    let out = Command::new(BIN)
        .args(["config", "show"])
        .envs(secrets)
        .env("TLS_CERT", pki.path("server.crt"))
        .env("TLS_CLIENT_CA", pki.path("client-ca.pem"))
        .env_remove("NODE_ENV")
        .env_remove("NEURALLOG_ENV")
        .output()
        .expect("config show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, value) in secrets {
        let probe = value.lines().nth(1).unwrap_or(value);
        assert!(!text.contains(probe), "{name} printed: {text}");
    }
    assert!(text.contains("TLS_KEY = [redacted]"), "{text}");
    assert!(text.contains("API_KEY = [redacted]"), "{text}");
    assert!(text.contains("server.crt"), "{text}");
}
