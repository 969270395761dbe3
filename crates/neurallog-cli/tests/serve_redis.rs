//! `neurallog serve` against Redis, through the real binary: bad Redis credentials stop
//! start-up with a non-zero exit and one readable line, never a stack trace or a secret.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neurallog_storage::redis::testing::{RedisServer, redis_available};

/// Runs `neurallog serve` with `env` and waits (bounded) for it to exit: (success, stdout, stderr).
fn serve_until_exit(env: &[(&str, String)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_neurallog"));
    cmd.arg("serve")
        .env_clear()
        .env("PORT", "0")
        .env("NEURALLOG_DATA_DIR", dir.path())
        .env("API_KEY", "serve-redis-test-key-0123456789-0123456789")
        .env("LOG_LEVEL", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn neurallog");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("neurallog serve kept running with bad redis credentials");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_clear_line(stdout: &str, stderr: &str, expect: &str, secrets: &[&str]) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(lines[0].contains(expect), "{}", lines[0]);
    for s in secrets {
        assert!(
            !stderr.contains(s) && !stdout.contains(s),
            "secret {s} leaked"
        );
    }
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn wrong_or_missing_redis_password_exits_with_one_line() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start(&["--requirepass", "the-right-pw-5521"]);

    let (ok, out, err) = serve_until_exit(&[
        ("REDIS_URL", redis.url()),
        ("REDIS_PASSWORD", "a-wrong-pw-9034".into()),
    ]);
    assert!(!ok, "must exit non-zero");
    assert_one_clear_line(
        &out,
        &err,
        "authentication failed",
        &["a-wrong-pw-9034", "the-right-pw-5521"],
    );

    // The password from a file (Kubernetes secret volume), wrong as well.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "file-wrong-pw-7781\n").expect("write");
    let (ok, out, err) = serve_until_exit(&[
        ("REDIS_URL", redis.url()),
        ("REDIS_PASSWORD_FILE", file.display().to_string()),
    ]);
    assert!(!ok);
    assert_one_clear_line(&out, &err, "authentication failed", &["file-wrong-pw-7781"]);

    // In the URL.
    let url = format!("redis://:url-wrong-pw-4410@127.0.0.1:{}", redis.port);
    let (ok, out, err) = serve_until_exit(&[("REDIS_URL", url)]);
    assert!(!ok);
    assert_one_clear_line(&out, &err, "authentication failed", &["url-wrong-pw-4410"]);

    // Missing.
    let (ok, out, err) = serve_until_exit(&[("REDIS_URL", redis.url())]);
    assert!(!ok);
    assert_one_clear_line(&out, &err, "authentication required", &[]);
}

#[test]
fn unreachable_redis_exits_with_one_line() {
    if !redis_available() {
        return;
    }
    // A port nothing listens on.
    let port = neurallog_storage::redis::testing::free_port();
    let (ok, out, err) = serve_until_exit(&[("REDIS_URL", format!("redis://127.0.0.1:{port}"))]);
    assert!(!ok);
    assert_one_clear_line(&out, &err, "unreachable", &[]);
}
