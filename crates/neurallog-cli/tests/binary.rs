//! The `neurallog` binary as a user runs it: start-up, crash safety, graceful shutdown and
//! the client commands.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_neurallog");
const KEY: &str = "binary-test-key-0123456789abcdefghijklmnop";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(dir: &std::path::Path, key: Option<&str>) -> Self {
        Self::start_with(dir, key, &[])
    }

    fn start_with(dir: &std::path::Path, key: Option<&str>, envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("PORT", port.to_string())
            .env("NEURALLOG_DATA_DIR", dir)
            .env("LOG_LEVEL", "warn");
        cmd.env_remove("API_KEY")
            .env_remove("NEURALLOG_ENV")
            .env_remove("NODE_ENV");
        if let Some(k) = key {
            cmd.env("API_KEY", k);
        }
        cmd.env_remove("NEURALLOG_SYSTEM_KEY")
            .envs(envs.iter().copied());
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if reqwest::blocking_get(&format!("{url}/health")) == Ok(true) {
                break;
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(30));
        }
        Self { child, url }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking HTTP helper on top of the async client (keeps the tests synchronous).
mod reqwest {
    pub fn blocking_get(url: &str) -> Result<bool, ()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| ())?;
        rt.block_on(async {
            ::reqwest::get(url)
                .await
                .map(|r| r.status().is_success())
                .map_err(|_| ())
        })
    }
}

fn cli(args: &[&str], url: &str, key: &str, stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NEURALLOG_URL", url)
        .env("NEURALLOG_API_KEY", key);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cli");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    child.wait_with_output().expect("cli output")
}

fn json_out(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json output")
}

fn read_all_ids(url: &str, key: &str, log: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let c = neurallog_client::Client::new(url, Some(key.to_owned())).expect("client");
        let mut ids = Vec::new();
        let mut params = vec![("limit".to_owned(), "10000".to_owned())];
        loop {
            let page = c.read(log, &params).await.expect("read");
            ids.extend(page.entries.iter().map(|e| e.id.to_string()));
            match page.next_cursor {
                Some(cur) => {
                    params = vec![
                        ("limit".to_owned(), "10000".to_owned()),
                        ("cursor".to_owned(), cur),
                    ]
                }
                None => return ids,
            }
        }
    })
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Serve::start(dir.path(), Some(KEY));
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let url = server.url.clone();
    // Four clients append until the server dies under them, recording every acknowledged id.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, acked) = (url.clone(), acked.clone());
            rt.spawn(async move {
                let c = neurallog_client::Client::new(&url, Some(KEY.to_owned())).expect("client");
                for i in 0.. {
                    let body: String = (0..50)
                        .map(|j| format!("{{\"writer\":{w},\"batch\":{i},\"j\":{j}}}\n"))
                        .collect();
                    match c
                        .append(
                            "crash",
                            body.into_bytes(),
                            neurallog_client::Framing::Ndjson,
                        )
                        .await
                    {
                        Ok(r) => acked
                            .lock()
                            .expect("lock")
                            .extend(r.ids.iter().map(ToString::to_string)),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Kill mid-stream, once a good number of batches are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < 5_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    for w in writers {
        let _ = rt.block_on(w);
    }
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 5_000,
        "the writers got {} acknowledgements",
        acked.len()
    );

    let restarted = Serve::start(dir.path(), Some(KEY));
    let stored: HashSet<String> = read_all_ids(&restarted.url, KEY, "crash")
        .into_iter()
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
    // Batches are all or nothing: every stored event belongs to a whole batch of 50.
    assert_eq!(stored.len() % 50, 0, "a batch was half stored");
}

#[test]
fn sigterm_drains_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Serve::start(dir.path(), Some(KEY));
    let out = cli(
        &["logs", "append", "app", "--output", "json"],
        &server.url,
        KEY,
        Some(b"{\"a\":1}\n{\"a\":2}\n"),
    );
    assert_eq!(json_out(&out)["count"], 2);
    server.signal("TERM");
    let status = server.child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    let again = Serve::start(dir.path(), Some(KEY));
    assert_eq!(read_all_ids(&again.url, KEY, "app").len(), 2);
}

#[test]
fn first_start_prints_a_generated_key_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Serve::start(dir.path(), None);
    let mut line = String::new();
    BufReader::new(first.child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let key = line.trim().rsplit(' ').next().expect("key").to_owned();
    assert!(key.starts_with("nl_"), "{line}");
    let o = cli(
        &["logs", "list", "--output", "json"],
        &first.url,
        &key,
        None,
    );
    assert_eq!(json_out(&o)["logs"], serde_json::json!([]));
    let stored =
        std::fs::read_to_string(dir.path().join("bootstrap-key.sha256")).expect("hash file");
    assert!(!stored.contains(&key), "only the hash is stored");
    first.signal("TERM");
    first.child.wait().expect("wait");
    // The second start keeps the key and prints nothing.
    let mut second = Serve::start(dir.path(), None);
    second.signal("TERM");
    let out = second.child.wait_with_output_compat();
    assert!(!out.contains("nl_"), "the key is shown only once: {out}");
    let third = Serve::start(dir.path(), None);
    assert!(
        cli(&["logs", "list"], &third.url, &key, None)
            .status
            .success(),
        "the generated key still works"
    );
}

trait WaitOutput {
    fn wait_with_output_compat(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_compat(&mut self) -> String {
        let mut s = String::new();
        if let Some(out) = self.stdout.take() {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                s.push_str(&l);
            }
        }
        let _ = self.wait();
        s
    }
}

#[test]
fn client_commands_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Serve::start(dir.path(), Some(KEY));
    let file = dir.path().join("events.ndjson");
    let lines: String = (0..2500)
        .map(|i| {
            format!(
                "{{\"i\":{i},\"level\":\"{}\"}}\n",
                if i % 10 == 0 { "ERROR" } else { "info" }
            )
        })
        .collect();
    std::fs::write(&file, lines).expect("write");
    let o = cli(
        &[
            "logs",
            "append",
            "app",
            "--file",
            file.to_str().expect("path"),
            "--output",
            "json",
        ],
        &server.url,
        KEY,
        None,
    );
    let r = json_out(&o);
    assert_eq!(
        (r["count"].as_u64(), r["requests"].as_u64()),
        (Some(2500), Some(3))
    );
    let page = json_out(&cli(
        &["logs", "get", "app", "--limit", "5", "--output", "json"],
        &server.url,
        KEY,
        None,
    ));
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(5));
    assert_eq!(page["entries"][0]["data"]["i"], 2499);
    let id = page["entries"][0]["id"].as_str().expect("id").to_owned();
    let one = json_out(&cli(
        &["logs", "get", "app", &id, "--output", "json"],
        &server.url,
        KEY,
        None,
    ));
    assert_eq!(one["entry"]["id"], id.as_str());
    let hits = json_out(&cli(
        &[
            "logs", "search", "error", "--field", "i=10", "--output", "json",
        ],
        &server.url,
        KEY,
        None,
    ));
    assert_eq!(hits["total"], 1);
    let stats = json_out(&cli(
        &["logs", "stats", "--output", "json"],
        &server.url,
        KEY,
        None,
    ));
    assert_eq!(stats["total"]["count"], 2500);
    let table = cli(
        &["logs", "list", "--output", "table"],
        &server.url,
        KEY,
        None,
    );
    assert!(String::from_utf8_lossy(&table.stdout).contains("app"));
    let del = json_out(&cli(
        &["logs", "delete", "app", "--output", "json"],
        &server.url,
        KEY,
        None,
    ));
    assert_eq!(del["deleted"], 2500);
}

#[test]
fn client_errors_are_one_line_and_nonzero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Serve::start(dir.path(), Some(KEY));
    for (args, key, expect) in [
        (vec!["logs", "list"], "wrong-key", "unauthorized"),
        (vec!["logs", "get", "../etc"], KEY, "invalid_log_name"),
        (
            vec!["logs", "search", "--field", "nonsense"],
            KEY,
            "PATH=VALUE",
        ),
    ] {
        let o = cli(&args, &server.url, key, None);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: ") && err.contains(expect), "{err}");
    }
    let o = cli(
        &["logs", "append", "app"],
        &server.url,
        KEY,
        Some(b"{\"ok\":1}\n{broken\n"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("invalid_json") && err.contains("line 1"),
        "{err}"
    );
    let o = cli(&["logs", "list"], "http://127.0.0.1:1", KEY, None);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

#[test]
fn serve_refuses_bad_configuration_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (var, value, expect) in [
        ("PORT", "99999", "invalid PORT '99999'"),
        ("NEURALLOG_BIND", "nowhere", "NEURALLOG_BIND"),
        ("NODE_ENV", "production", "refusing to start in production"),
    ] {
        let o = Command::new(BIN)
            .arg("serve")
            .env("NEURALLOG_DATA_DIR", dir.path())
            .env_remove("API_KEY")
            .env(var, value)
            .output()
            .expect("run");
        assert!(!o.status.success(), "{var}={value} must fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{err}");
    }
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "colour = \"blue\"\n").expect("write");
    let o = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().expect("path")])
        .output()
        .expect("run");
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("unknown field `colour`")
    );
}

#[test]
fn bench_runs_and_reports_every_key() {
    let o = Command::new(BIN)
        .args([
            "bench",
            "--events",
            "3000",
            "--batch",
            "500",
            "--queries",
            "20",
            "--compare-seconds",
            "0.3",
            "--json",
        ])
        .output()
        .expect("run bench");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).expect("json");
    for k in [
        "ingest_events_per_s",
        "ingest_mb_per_s",
        "query_newest100_p50_ms",
        "query_newest100_p99_ms",
        "search_scan_mb_per_s",
        "peak_rss_mb",
        "disk_ratio",
    ] {
        assert!(r[k].as_f64().is_some_and(|v| v > 0.0), "{k} = {}", r[k]);
    }
    assert!(r.get("security_overhead").is_some() && r["params"]["events"] == 3000);
    assert_eq!(r["params"]["auth"], "api-key+audit");
    for k in ["ingest_ratio_on_over_off", "append_ratio_on_over_off"] {
        assert!(
            r["auth_cost"][k].as_f64().is_some_and(|v| v > 0.0),
            "{k} = {}",
            r["auth_cost"]
        );
    }
}

#[test]
fn admin_commands_end_to_end() {
    const SYSTEM: &str = "system-key-for-the-binary-test-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Serve::start_with(dir.path(), Some(KEY), &[("NEURALLOG_SYSTEM_KEY", SYSTEM)]);
    let url = server.url.as_str();
    let run = |key: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        cli(&all, url, key, None)
    };
    let t = json_out(&run(
        SYSTEM,
        &["tenants", "create", "acme", "--display-name", "Acme"],
    ));
    assert_eq!(t["tenant"]["id"], "acme");
    let list = json_out(&run(SYSTEM, &["tenants", "list"]));
    assert_eq!(list["tenants"][1]["displayName"], "Acme");
    let admin = json_out(&run(
        SYSTEM,
        &[
            "keys", "create", "ops", "--role", "admin", "--tenant", "acme",
        ],
    ));
    let admin_key = admin["key"].as_str().expect("key").to_owned();
    let reader = json_out(&run(
        &admin_key,
        &[
            "keys",
            "create",
            "dash",
            "--role",
            "reader",
            "--log",
            "app-*",
            "--expires-in",
            "30d",
        ],
    ));
    assert_eq!(reader["logs"][0], "app-*");
    let keys = json_out(&run(&admin_key, &["keys", "list"]));
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(2));
    assert!(!keys.to_string().contains(&admin_key));
    let id = reader["id"].as_str().expect("id");
    let rotated = json_out(&run(&admin_key, &["keys", "rotate", id, "--grace", "0"]));
    assert_eq!(rotated["replaces"], id);
    json_out(&run(
        &admin_key,
        &["keys", "revoke", rotated["id"].as_str().expect("id")],
    ));
    // A refused command is one line and a non-zero exit.
    let o = cli(
        &["keys", "list"],
        url,
        rotated["key"].as_str().expect("key"),
        None,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthorized"));
    let audit = json_out(&run(
        &admin_key,
        &["audit", "list", "--action", "keys.create"],
    ));
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");
    let v = json_out(&run(&admin_key, &["audit", "verify"]));
    assert_eq!(v["verified"], true);
    let v = json_out(&run(SYSTEM, &["audit", "verify", "--global"]));
    assert_eq!(v["verified"], true);
    let d = json_out(&run(SYSTEM, &["tenants", "delete", "acme"]));
    assert_eq!(d["id"], "acme");
    let o = cli(&["logs", "list"], url, &admin_key, None);
    assert!(!o.status.success());
}

#[test]
fn retention_and_erase_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path(), Some(KEY));
    let run = |args: &[&str]| cli(args, &s.url, KEY, None);
    let r = json_out(&run(&[
        "retention",
        "set",
        "--default-days",
        "30",
        "--log",
        "debug=1",
        "-o",
        "json",
    ]));
    assert_eq!(
        (r["default_days"].clone(), r["logs"]["debug"].clone()),
        (30.into(), 1.into())
    );
    let r = json_out(&run(&[
        "retention",
        "set",
        "--log",
        "debug=none",
        "-o",
        "json",
    ]));
    assert_eq!(
        (r["default_days"].clone(), r["logs"].clone()),
        (30.into(), serde_json::json!({}))
    );
    let r = json_out(&run(&["retention", "get", "-o", "json"]));
    assert_eq!(r["default_days"], 30);
    let bad = run(&["retention", "set", "--default-days", "0"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.trim().lines().count() == 1 && err.contains("default_days"),
        "{err}"
    );

    let events =
        b"{\"user\":{\"email\":\"e@x.org\"}}\n{\"user\":{\"email\":\"f@x.org\"}}\n{\"code\":500}\n";
    let o = cli(&["logs", "append", "app"], &s.url, KEY, Some(events));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let refused = run(&["erase", "--field", "user.email", "--value", "e@x.org"]);
    assert!(!refused.status.success(), "needs --yes");
    let r = json_out(&run(&[
        "erase",
        "--field",
        "user.email",
        "--value",
        "e@x.org",
        "--yes",
        "-o",
        "json",
    ]));
    assert_eq!(
        (r["erased"].clone(), r["logs"]["app"].clone()),
        (1.into(), 1.into())
    );
    // Numbers are typed: "500" as JSON text is a string and matches nothing; 500 matches.
    let r = json_out(&run(&[
        "erase", "--field", "code", "--value", "\"500\"", "--yes", "-o", "json",
    ]));
    assert_eq!(r["erased"], 0);
    let r = json_out(&run(&[
        "erase", "--field", "code", "--value", "500", "--log", "app", "--yes", "-o", "json",
    ]));
    assert_eq!(r["erased"], 1);
    assert_eq!(read_all_ids(&s.url, KEY, "app").len(), 1);
}
