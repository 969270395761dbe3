//! A real `redis-server` for tests (feature `testsuite`): started on a free port in a temp
//! dir, killed when dropped. Used by this crate's Redis tests and by the server's.
//!
//! Without `redis-server` on PATH, [`redis_available`] prints a loud notice and tests skip,
//! unless `CI` is set, where it panics: CI must run them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    extra: Vec<tempfile::TempDir>,
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
            extra: Vec::new(),
        };
        s.spawn();
        s
    }

    /// Keeps `dir` (e.g. certificates the server reads) until the server is dropped.
    pub fn keep_dir(&mut self, dir: tempfile::TempDir) {
        self.extra.push(dir);
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
