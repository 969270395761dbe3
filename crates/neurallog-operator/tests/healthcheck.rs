//! The images' `HEALTHCHECK` program, run as a process against a real listener.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;

fn serve_once(status: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&req).starts_with("GET /health HTTP/1.1"));
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

fn run(url: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_neurallog-healthcheck"))
        .arg(url)
        .output()
        .expect("runs")
        .status
        .success()
}

#[test]
fn healthy_on_2xx() {
    let port = serve_once("200 OK");
    assert!(run(&format!("http://127.0.0.1:{port}/health")));
}

#[test]
fn unhealthy_on_503_or_nothing_listening() {
    let port = serve_once("503 Service Unavailable");
    assert!(!run(&format!("http://127.0.0.1:{port}/health")));
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    assert!(!run(&format!("http://127.0.0.1:{closed}/health")));
}
