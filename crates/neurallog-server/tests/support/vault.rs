//! A stand-in Vault server speaking the KV v2 read API, on 127.0.0.1:0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const TOKEN: &str = "hvs.test-token-5f3a9c";

/// Secrets by "mount/path", each a map of fields.
#[derive(Clone, Default)]
pub struct FakeVault {
    secrets: Arc<Mutex<HashMap<String, HashMap<String, String>>>>,
    pub addr: String,
}

impl FakeVault {
    pub async fn start() -> Self {
        let mut vault = FakeVault::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        vault.addr = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/v1/{mount}/data/{*path}", get(read))
            .with_state(vault.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        vault
    }

    pub fn put(&self, location: &str, field: &str, value: &str) {
        self.secrets
            .lock()
            .expect("lock")
            .entry(location.to_owned())
            .or_default()
            .insert(field.to_owned(), value.to_owned());
    }
}

async fn read(
    State(vault): State<FakeVault>,
    Path((mount, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if headers.get("X-Vault-Token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errors": ["permission denied"]})),
        );
    }
    let secrets = vault.secrets.lock().expect("lock");
    match secrets.get(&format!("{mount}/{path}")) {
        Some(fields) => (
            StatusCode::OK,
            Json(json!({
                "request_id": "r",
                "data": {"data": fields, "metadata": {"version": 1}},
            })),
        ),
        None => (StatusCode::NOT_FOUND, Json(json!({"errors": []}))),
    }
}
