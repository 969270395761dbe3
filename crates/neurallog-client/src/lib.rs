//! A typed client of the NeuralLog HTTP API.
//!
//! Every method returns the API's own response type or a [`ClientError`] that carries the
//! server's error code and message, so callers can print one readable line.

use neurallog_core::admin::{
    AuditResponse, AuditVerifyResponse, CreateKeyRequest, CreateTenantRequest, CreatedKeyResponse,
    KeyRevokedResponse, KeysResponse, RotateKeyRequest, TenantDeletedResponse, TenantResponse,
    TenantsResponse,
};
use neurallog_core::api::{
    AppendResponse, DeleteResponse, EntryResponse, ErrorBody, LogStatisticsResponse, LogsResponse,
    ReadResponse, SearchResponse, StatisticsResponse,
};
use neurallog_core::retention::{
    ErasureRequest, ErasureResponse, RetentionResponse, RetentionUpdate,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Transport(_) => None,
        }
    }
}

fn transport(e: reqwest::Error) -> ClientError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    ClientError::Transport(msg)
}

/// How an append body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Json,
    Ndjson,
}

/// TLS options for `https://` servers.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM bundle of extra CAs to trust (a private CA or a self-signed server certificate).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and private key presented to a server that asks for one (mTLS).
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// Client of one server.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl Client {
    /// A client of `base_url` (e.g. `http://127.0.0.1:3030`) presenting `api_key`.
    pub fn new(base_url: &str, api_key: Option<String>) -> Result<Self, ClientError> {
        Self::with_tls(base_url, api_key, &TlsOptions::default())
    }

    /// A client that also trusts `tls.ca_pem` and presents `tls.identity_pem` over HTTPS.
    /// The system's trusted CAs are always trusted too.
    pub fn with_tls(
        base_url: &str,
        api_key: Option<String>,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .pool_max_idle_per_host(256);
        if let Some(pem) = &tls.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Transport(format!("unusable CA bundle: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Transport(
                    "unusable CA bundle: no PEM certificate found".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &tls.identity_pem {
            let mut pem = cert.clone();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            // NB: the parser's message is dropped: it could quote the key.
            let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                ClientError::Transport(
                    "unusable client certificate or key: expected PEM certificate and private key"
                        .into(),
                )
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(transport)?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    /// A request to `path` (which starts with `/`) with the credential attached.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.api_key {
            Some(k) => rb.header("X-API-Key", k),
            None => rb,
        }
    }

    async fn send<T: DeserializeOwned>(rb: RequestBuilder) -> Result<T, ClientError> {
        let resp = rb.send().await.map_err(transport)?;
        Self::decode(resp).await
    }

    async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Transport(format!("unreadable response: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(ClientError::Api {
                status: status.as_u16(),
                code: b.error,
                message: b.message,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                code: "http_error".into(),
                message: status.canonical_reason().unwrap_or("error").to_owned(),
            }),
        }
    }

    /// Appends a raw body (JSON object/array or NDJSON).
    pub async fn append(
        &self,
        log: &str,
        body: Vec<u8>,
        framing: Framing,
    ) -> Result<AppendResponse, ClientError> {
        let ct = match framing {
            Framing::Json => "application/json",
            Framing::Ndjson => "application/x-ndjson",
        };
        Self::send(
            self.request(Method::POST, &format!("/logs/{}", enc(log)))
                .header("Content-Type", ct)
                .body(body),
        )
        .await
    }

    /// Lists logs.
    pub async fn list_logs(&self) -> Result<LogsResponse, ClientError> {
        Self::send(self.request(Method::GET, "/logs")).await
    }

    /// Reads a log newest first with query parameters (`limit`, `since`, `until`, `cursor`).
    pub async fn read(
        &self,
        log: &str,
        params: &[(String, String)],
    ) -> Result<ReadResponse, ClientError> {
        Self::send(
            self.request(Method::GET, &format!("/logs/{}", enc(log)))
                .query(params),
        )
        .await
    }

    /// One entry.
    pub async fn get(&self, log: &str, id: &str) -> Result<EntryResponse, ClientError> {
        Self::send(self.request(Method::GET, &format!("/logs/{}/{}", enc(log), enc(id)))).await
    }

    /// Deletes a log.
    pub async fn delete_log(&self, log: &str) -> Result<DeleteResponse, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/logs/{}", enc(log)))).await
    }

    /// Deletes one entry.
    pub async fn delete_entry(&self, log: &str, id: &str) -> Result<DeleteResponse, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/logs/{}/{}", enc(log), enc(id)))).await
    }

    /// Searches with query parameters (`query`, `log_name`, `field.<path>`, …).
    pub async fn search(&self, params: &[(String, String)]) -> Result<SearchResponse, ClientError> {
        Self::send(self.request(Method::GET, "/search").query(params)).await
    }

    /// Tenant statistics.
    pub async fn statistics(&self) -> Result<StatisticsResponse, ClientError> {
        Self::send(self.request(Method::GET, "/statistics")).await
    }

    /// Statistics of one log.
    pub async fn log_statistics(&self, log: &str) -> Result<LogStatisticsResponse, ClientError> {
        Self::send(self.request(Method::GET, &format!("/logs/{}/statistics", enc(log)))).await
    }

    /// The tenant's retention settings (`retention:manage`).
    pub async fn retention(&self) -> Result<RetentionResponse, ClientError> {
        Self::send(self.request(Method::GET, "/api/retention")).await
    }

    /// Replaces the tenant's retention settings (`retention:manage`).
    pub async fn set_retention(
        &self,
        settings: &RetentionUpdate,
    ) -> Result<RetentionResponse, ClientError> {
        Self::send(self.request(Method::PUT, "/api/retention").json(settings)).await
    }

    /// Erases every event whose field equals the value (`logs:delete`).
    pub async fn erase(&self, request: &ErasureRequest) -> Result<ErasureResponse, ClientError> {
        Self::send(self.request(Method::POST, "/api/erasure").json(request)).await
    }

    /// Creates a tenant (system key).
    pub async fn create_tenant(
        &self,
        req: &CreateTenantRequest,
    ) -> Result<TenantResponse, ClientError> {
        Self::send(self.request(Method::POST, "/api/tenants").json(req)).await
    }

    /// Lists tenants (system key).
    pub async fn list_tenants(&self) -> Result<TenantsResponse, ClientError> {
        Self::send(self.request(Method::GET, "/api/tenants")).await
    }

    /// Deletes a tenant and its data (system key).
    pub async fn delete_tenant(&self, id: &str) -> Result<TenantDeletedResponse, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/api/tenants/{}", enc(id)))).await
    }

    /// Creates an API key; the answer holds the key, shown once.
    pub async fn create_key(
        &self,
        req: &CreateKeyRequest,
    ) -> Result<CreatedKeyResponse, ClientError> {
        Self::send(self.request(Method::POST, "/api/keys").json(req)).await
    }

    /// Lists keys (a system key may name a tenant).
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<KeysResponse, ClientError> {
        let mut rb = self.request(Method::GET, "/api/keys");
        if let Some(t) = tenant {
            rb = rb.query(&[("tenant", t)]);
        }
        Self::send(rb).await
    }

    /// Revokes a key.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyRevokedResponse, ClientError> {
        Self::send(self.request(Method::DELETE, &format!("/api/keys/{}", enc(id)))).await
    }

    /// Rotates a key; the old one works for `grace` (server default 24 h).
    pub async fn rotate_key(
        &self,
        id: &str,
        req: &RotateKeyRequest,
    ) -> Result<CreatedKeyResponse, ClientError> {
        Self::send(
            self.request(Method::POST, &format!("/api/keys/{}/rotate", enc(id)))
                .json(req),
        )
        .await
    }

    /// Audit events with query parameters (`since`, `until`, `principal`, `action`,
    /// `outcome`, `limit`, `cursor`, `scope`).
    pub async fn audit(&self, params: &[(String, String)]) -> Result<AuditResponse, ClientError> {
        Self::send(self.request(Method::GET, "/api/audit").query(params)).await
    }

    /// Verifies the audit chain (`scope=global` for the global trail).
    pub async fn audit_verify(
        &self,
        params: &[(String, String)],
    ) -> Result<AuditVerifyResponse, ClientError> {
        Self::send(self.request(Method::GET, "/api/audit/verify").query(params)).await
    }

    /// Whether `/ready` answers 200.
    pub async fn ready(&self) -> Result<bool, ClientError> {
        let resp = self
            .http
            .get(format!("{}/ready", self.base))
            .send()
            .await
            .map_err(transport)?;
        Ok(resp.status() == StatusCode::OK)
    }
}

/// Percent-encodes one path segment.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
