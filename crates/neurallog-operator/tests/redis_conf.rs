//! The rendered `redis.conf` run by a real `redis-server`.
//!
//! Reading the config is not proof: this starts Redis with the ConfigMap's file and the
//! StatefulSet's arguments (with `$(REDIS_PASSWORD)` expanded as the kubelet would), only
//! moving the port and data directory to a temporary place, and checks over the wire that a
//! client without the password is refused, a wrong password is refused, the disabled commands
//! do not exist, and the append-only file is on. Needs `redis-server` (and for TLS `redis-cli`
//! and `openssl`) on the PATH; `.ci/operator-checks.sh` installs them and sets
//! `NEURALLOG_OPERATOR_REQUIRE_TOOLS`, under which a missing binary fails instead of skipping.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use neurallog_operator::config::OperatorConfig;
use neurallog_operator::crd::{Tenant, TenantSpec};
use neurallog_operator::render::{self, Object, RenderInputs};

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send(stream: &mut TcpStream, args: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(cmd.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    if let Some(len) = line.strip_prefix('$') {
        let len: i64 = len.trim().parse().expect("bulk length");
        if len >= 0 {
            let mut body = vec![0u8; usize::try_from(len).expect("len") + 2];
            std::io::Read::read_exact(&mut reader, &mut body).expect("bulk");
            return String::from_utf8_lossy(&body).trim_end().to_owned();
        }
    }
    line.trim_end().to_owned()
}

fn tenant() -> Tenant {
    let spec: TenantSpec = serde_json::from_value(serde_json::json!({
        "displayName": "Redis test",
        "redis": {"config": {"maxmemory": "64mb"}}
    }))
    .expect("spec");
    Tenant::new("redis-test", spec)
}

#[test]
fn redis_refuses_clients_without_the_password_and_has_no_dangerous_commands() {
    if !have("redis-server") {
        return;
    }

    let objs = render::render(
        &tenant(),
        &OperatorConfig::default(),
        &RenderInputs::default(),
    )
    .expect("render");
    let conf = objs
        .iter()
        .find_map(|o| match o {
            Object::ConfigMap(cm) => cm.data.as_ref().and_then(|d| d.get("redis.conf")).cloned(),
            _ => None,
        })
        .expect("redis.conf");
    let args = objs
        .iter()
        .find_map(|o| match o {
            Object::StatefulSet(s) => s.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                .args
                .clone(),
            _ => None,
        })
        .expect("redis args");

    let dir = std::env::temp_dir().join(format!("neurallog-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let conf_path = dir.join("redis.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let password = "correct-horse-battery-staple";
    // The StatefulSet's arguments, with the config path moved and $(REDIS_PASSWORD) expanded.
    let mut argv: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            "/etc/redis/redis.conf" => conf_path.display().to_string(),
            "$(REDIS_PASSWORD)" => password.to_owned(),
            "/data" => dir.display().to_string(),
            other => other.to_owned(),
        })
        .collect();
    argv.extend([
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
    ]);
    let _redis = Redis(
        Command::new("redis-server")
            .args(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("redis did not start: {e}"),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    assert!(
        send(&mut conn, &["PING"]).starts_with("-NOAUTH"),
        "unauthenticated PING refused"
    );
    assert!(send(&mut conn, &["SET", "k", "v"]).starts_with("-NOAUTH"));
    assert!(send(&mut conn, &["AUTH", "wrong"]).starts_with("-WRONGPASS"));
    assert_eq!(send(&mut conn, &["AUTH", password]), "+OK");
    assert_eq!(send(&mut conn, &["PING"]), "+PONG");
    for cmd in [
        vec!["FLUSHALL"],
        vec!["FLUSHDB"],
        vec!["CONFIG", "GET", "requirepass"],
        vec!["DEBUG", "SLEEP", "0"],
        vec!["KEYS", "*"],
        vec!["REPLICAOF", "NO", "ONE"],
    ] {
        let reply = send(&mut conn, &cmd);
        assert!(
            reply.starts_with("-ERR unknown command"),
            "{cmd:?} answered {reply}"
        );
    }
    let info = send(&mut conn, &["INFO", "persistence"]);
    assert!(info.contains("aof_enabled:1"), "{info}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether a missing tool fails the test instead of skipping it. `.ci/operator-checks.sh`
/// installs the tools and sets this; a plain `cargo test` on a machine without Redis skips.
fn required() -> bool {
    std::env::var_os("NEURALLOG_OPERATOR_REQUIRE_TOOLS").is_some()
}

fn have(bin: &str) -> bool {
    // NB: openssl has a `version` subcommand instead of a `--version` flag.
    let flag = if bin == "openssl" {
        "version"
    } else {
        "--version"
    };
    let ok = Command::new(bin)
        .arg(flag)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !required(),
            "{bin} is required (NEURALLOG_OPERATOR_REQUIRE_TOOLS)"
        );
        eprintln!("skipped: {bin} not installed");
    }
    ok
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn redis_tls_serves_only_tls_and_still_requires_the_password() {
    if !have("redis-server") || !have("redis-cli") || !have("openssl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("neurallog-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    // A throwaway CA and a certificate for 127.0.0.1, as cert-manager would put in the Secret.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=redis",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.crt",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
    );

    let mut t = tenant();
    t.spec.redis.tls =
        serde_json::from_value(serde_json::json!({"secretName": "redis-tls"})).expect("tls");
    let objs =
        render::render(&t, &OperatorConfig::default(), &RenderInputs::default()).expect("render");
    let conf = objs
        .iter()
        .find_map(|o| match o {
            Object::ConfigMap(cm) => cm.data.as_ref().and_then(|d| d.get("redis.conf")).cloned(),
            _ => None,
        })
        .expect("redis.conf")
        .replace("/etc/redis-tls", &dir.display().to_string());
    let conf_path = dir.join("redis.conf");
    std::fs::write(&conf_path, conf).expect("conf");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let password = "tls-password";
    let _redis = Redis(
        Command::new("redis-server")
            .arg(&conf_path)
            .args([
                "--dir",
                &dir.display().to_string(),
                "--requirepass",
                password,
            ])
            .args(["--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts"),
    );
    let cli = |tls: bool, auth: bool| {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        if tls {
            c.args([
                "--tls",
                "--cacert",
                &dir.join("ca.crt").display().to_string(),
            ]);
        }
        if auth {
            c.env("REDISCLI_AUTH", password);
        }
        c.arg("ping");
        let out = c.output().expect("redis-cli");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cli(true, true).contains("PONG") {
        assert!(Instant::now() < deadline, "redis with TLS did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !cli(false, true).contains("PONG"),
        "plain-text clients are refused"
    );
    assert!(
        cli(true, false).contains("NOAUTH"),
        "TLS does not replace the password"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
