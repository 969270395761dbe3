//! `neurallog-healthcheck URL`: the container images' `HEALTHCHECK`.
//!
//! The runtime images are distroless (no shell, no curl), so the health check is this small
//! static program: it sends `GET` to a plain-HTTP URL on the loopback interface and exits 0 on
//! a 2xx answer, 1 otherwise. For an `https://` URL it checks only that the port accepts a TCP
//! connection, since a TLS client would pull a TLS stack into the image for a local probe.
//! Kubernetes ignores `HEALTHCHECK` and uses the pod probes; this serves `docker run` and
//! Compose.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::Duration;

fn check(url: &str) -> Result<(), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!("unsupported url {url}"));
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let default_port = if tls { 443 } else { 80 };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{addr}: {e}"))?;
    if tls {
        return Ok(());
    }
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: neurallog-healthcheck\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    // "HTTP/1.1 200"
    match &head[9..10] {
        b"2" => Ok(()),
        _ => Err(format!("{url}: {}", String::from_utf8_lossy(&head))),
    }
}

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3030/health".to_owned());
    match check(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
