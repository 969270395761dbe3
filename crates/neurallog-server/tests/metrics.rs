//! The `/metrics` listener: Prometheus text on its own port, counting requests by route
//! template (never by the raw path a client chose), ingested events and bytes.

use neurallog_server::{Server, ServerConfig};
use serde_json::json;

const KEY: &str = "metrics-test-key-0123456789-0123456789";

fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

#[tokio::test]
async fn requests_and_ingest_are_counted_by_route_template() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::for_dir(dir.path());
    config.api_key = Some(neurallog_server::secret::Secret::new(KEY));
    let server = Server::start(config).await.expect("start");
    let api = format!("http://{}", server.addr());
    let metrics = format!(
        "http://{}/metrics",
        server.metrics_addr().expect("metrics on")
    );
    let http = reqwest::Client::new();

    for log in ["app", "other", "x-1"] {
        let r = http
            .post(format!("{api}/logs/{log}"))
            .header("X-API-Key", KEY)
            .json(&json!([{"msg": "hello"}, {"msg": "world"}]))
            .send()
            .await
            .expect("append");
        assert_eq!(r.status(), 201);
    }
    let r = http
        .get(format!("{api}/logs/app"))
        .send()
        .await
        .expect("read");
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{api}/no/such/route/secret-token"))
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404);

    let resp = http.get(&metrics).send().await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("text");
    assert_eq!(
        value_of(
            &text,
            r#"neurallog_http_requests_total{route="/logs/{log}",method="POST",status="201"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            r#"neurallog_http_requests_total{route="/logs/{log}",method="GET",status="401"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(&text, "neurallog_ingested_events_total"),
        Some(6.0)
    );
    assert_eq!(
        value_of(&text, "neurallog_ingested_bytes_total"),
        Some(6.0 * r#"{"msg":"hello"}"#.len() as f64)
    );
    assert!(text.contains("neurallog_http_request_duration_seconds_bucket"));
    // Raw paths never become labels: a client cannot create series.
    assert!(!text.contains("secret-token"), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    // Metrics are not served on the API port.
    let r = http
        .get(format!("{api}/metrics"))
        .send()
        .await
        .expect("api");
    assert_eq!(r.status(), 404);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_busy_explicit_metrics_port_is_a_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::for_dir(dir.path());
    config.api_key = Some(neurallog_server::secret::Secret::new(KEY));
    config.metrics_port = port;
    let err = Server::start(config).await.err().expect("refused");
    assert!(
        err.to_string().contains("cannot listen for metrics"),
        "{err}"
    );
}
