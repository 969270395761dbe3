//! Test helpers for the Redis backend: a real `redis-server` on a free port in a temp dir,
//! killed when dropped, and a store that keeps its server alive.
//!
//! Without `redis-server` on PATH the tests print a loud notice and skip, unless `CI` is set,
//! where they fail: CI must run them.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use neurallog_core::{
    Entry, EntryId, LogName, TenantId,
    ingest::NewEvent,
    query::{ReadQuery, SearchQuery},
};
use neurallog_storage::redis::{RedisOptions, RedisStorage};
use neurallog_storage::{LogSummary, Page, Result, Storage};

/// Whether `redis-server` can run here; prints why not, or panics under `CI`.
pub fn redis_available() -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("redis-server").is_file()))
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("redis-server is not on PATH and CI is set: the Redis tests must run in CI");
    }
    // NB: written to the stderr handle, not with eprintln!, which the test harness captures
    // and hides for passing tests; once per test binary.
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = std::io::stderr().write_all(
            b"\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
              !!! SKIPPED: redis-server is not on PATH, the Redis tests did not run !!!\n\
              !!! install it (apt-get install redis-server) to run them             !!!\n\
              !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n",
        );
    });
    false
}

/// A free TCP port on 127.0.0.1 (free when asked; redis binds it a moment later).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// Whether the server speaks TLS on `port` (then readiness is a TCP accept only).
    tls: bool,
    /// Other directories the server reads from (certificates), removed with it.
    _extra: Vec<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts a server without persistence (`--save '' --appendonly no`) plus `extra` args.
    pub fn start(extra: &[&str]) -> Self {
        let mut args: Vec<String> = ["--save", "", "--appendonly", "no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_with(args, false)
    }

    /// Starts a server with exactly these args (after port, bind and dir); `tls` means the
    /// port given to `--tls-port` is `port`.
    pub fn start_with(args: Vec<String>, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Self {
            child: None,
            port: free_port(),
            dir,
            args,
            tls,
            _extra: Vec::new(),
        };
        s.spawn();
        s
    }

    /// The server's working directory (for TLS files, AOF).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &port]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--dir"])
            .arg(self.dir.path())
            .args(["--daemonize", "no", "--logfile"])
            .arg(self.dir.path().join("redis.log"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("redis-server exited ({status}); log:\n{}", self.log());
            }
            if self.answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start; log:\n{}", self.log());
    }

    /// Whether the port accepts connections (and, without TLS, answers PING, even `-NOAUTH`).
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
    }

    /// The server's log file (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL (no shutdown save, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (AOF, if any, is loaded).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal by name (`STOP`, `CONT`) with kill(1).
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let ok = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill -{sig} {pid}");
        }
    }

    /// Runs `redis-cli` against this server with `args` and returns its stdout.
    pub fn cli(&self, auth: Option<&str>, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(pw) = auth {
            cmd.env("REDISCLI_AUTH", pw);
        }
        let out = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A stopped process must be continued to die cleanly on some kernels' test setups.
        if self.child.is_some() {
            self.signal("CONT");
        }
        self.kill();
    }
}

/// Path of a file in the server's directory.
pub fn in_dir(server: &RedisServer, name: &str) -> PathBuf {
    server.dir().join(name)
}

/// A Redis store that owns the server it talks to, so the server lives as long as the store.
#[derive(Debug)]
pub struct ServedStore {
    pub store: RedisStorage,
    server: Arc<ServerHandle>,
}

/// Keeps a [`RedisServer`] alive (not `Debug` itself).
pub struct ServerHandle(pub std::sync::Mutex<RedisServer>);

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerHandle")
    }
}

/// How the store reaches its Redis.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No password.
    Plain,
    /// `requirepass`, password given as an option.
    Password,
    /// An ACL user confined to the deployment's key prefix, without `@dangerous` commands.
    Acl,
    /// `rediss://` with a CA generated for the test.
    Tls,
}

impl ServedStore {
    /// A fresh server and a store on it with `prefix`.
    pub async fn fresh(prefix: Option<&str>) -> Self {
        let server = RedisServer::start(&[]);
        let mut opts = RedisOptions::new(server.url());
        opts.key_prefix = prefix.map(str::to_owned);
        Self::connect(server, opts).await
    }

    /// A fresh server set up for `mode`, and a store on it.
    pub async fn fresh_in(mode: Mode) -> Self {
        match mode {
            Mode::Plain => Self::fresh(None).await,
            Mode::Password => {
                let server = RedisServer::start(&["--requirepass", "suite-pw-4471"]);
                let mut opts = RedisOptions::new(server.url());
                opts.password = Some("suite-pw-4471".into());
                Self::connect(server, opts).await
            }
            Mode::Acl => {
                let server = RedisServer::start(&[]);
                let out = server.cli(
                    None,
                    &[
                        "ACL",
                        "SETUSER",
                        "suite",
                        "on",
                        ">suite-pw-1",
                        "~neurallog:*",
                        "+@all",
                        "-@dangerous",
                    ],
                );
                assert_eq!(out.trim(), "OK", "{out}");
                // The default user can no longer do anything: only the ACL user works.
                let out = server.cli(None, &["ACL", "SETUSER", "default", "off"]);
                assert_eq!(out.trim(), "OK", "{out}");
                let url = format!("redis://suite:suite-pw-1@127.0.0.1:{}", server.port);
                Self::connect(server, RedisOptions::new(url)).await
            }
            Mode::Tls => {
                let (server, ca) = tls_server();
                let mut opts = RedisOptions::new(format!("rediss://127.0.0.1:{}", server.port));
                opts.ca_cert_pem = Some(ca.into_bytes());
                Self::connect(server, opts).await
            }
        }
    }

    async fn connect(server: RedisServer, opts: RedisOptions) -> Self {
        let store = RedisStorage::connect(opts).await.expect("connect");
        Self {
            store,
            server: Arc::new(ServerHandle(std::sync::Mutex::new(server))),
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it: (ca pem, cert pem, key pem).
pub fn pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

pub fn tls_server() -> (RedisServer, String) {
    let (ca, cert, key) = pki();
    let dir = tempfile::tempdir().expect("pki dir");
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write pem");
        p.display().to_string()
    };
    let args = vec![
        "--save".to_owned(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--tls-cert-file".into(),
        write("server.pem", &cert),
        "--tls-key-file".into(),
        write("server.key", &key),
        "--tls-ca-cert-file".into(),
        write("ca.pem", &ca),
        "--tls-auth-clients".into(),
        "no".into(),
    ];
    let mut server = RedisServer::start_with(args, true);
    server._extra.push(dir);
    (server, ca)
}

#[async_trait]
impl Storage for ServedStore {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }
    async fn append(&self, t: &TenantId, l: &LogName, e: Vec<NewEvent>) -> Result<Vec<EntryId>> {
        self.store.append(t, l, e).await
    }
    async fn list_logs(&self, t: &TenantId) -> Result<Vec<LogName>> {
        self.store.list_logs(t).await
    }
    async fn read(&self, t: &TenantId, l: &LogName, q: &ReadQuery) -> Result<Page> {
        self.store.read(t, l, q).await
    }
    async fn get(&self, t: &TenantId, l: &LogName, id: EntryId) -> Result<Option<Entry>> {
        self.store.get(t, l, id).await
    }
    async fn delete_entry(&self, t: &TenantId, l: &LogName, id: EntryId) -> Result<bool> {
        self.store.delete_entry(t, l, id).await
    }
    async fn delete_log(&self, t: &TenantId, l: &LogName) -> Result<u64> {
        self.store.delete_log(t, l).await
    }
    async fn search(&self, t: &TenantId, q: &SearchQuery) -> Result<Page> {
        self.store.search(t, q).await
    }
    async fn log_summary(&self, t: &TenantId, l: &LogName) -> Result<LogSummary> {
        self.store.log_summary(t, l).await
    }
    async fn tenant_summary(&self, t: &TenantId) -> Result<Vec<(LogName, LogSummary)>> {
        self.store.tenant_summary(t).await
    }
    async fn delete_tenant(&self, t: &TenantId) -> Result<u64> {
        self.store.delete_tenant(t).await
    }
    async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }
    async fn flush(&self) -> Result<()> {
        self.store.flush().await
    }
    async fn disk_usage(&self) -> Result<Option<u64>> {
        self.store.disk_usage().await
    }
}
