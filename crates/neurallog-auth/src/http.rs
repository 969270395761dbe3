//! The HTTP client used towards the identity provider.
//!
//! Every call has a timeout, follows no redirect (an answer must come from the configured
//! address) and reads at most [`MAX_BODY_BYTES`], so a slow or hostile endpoint cannot stall
//! or exhaust the server. Any failure is reported as a short reason string; callers classify
//! it as [`crate::TokenRejection::Unavailable`] or a settings error.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// Largest response body read from the identity provider (discovery, JWKS, introspection).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the client: timeouts on connect and on the whole call, no redirects.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("neurallog/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// Sends `request`, requires a 2xx answer and parses its (bounded) body as JSON.
pub async fn json<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, String> {
    let mut response = request.send().await.map_err(describe)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(format!("answer larger than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("answer larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("answer is not the expected JSON: {e}"))
}

/// A short reason for a transport error, without the URL's query (which could carry data).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!(
            "{kind} ({}{})",
            url.origin().ascii_serialization(),
            url.path()
        ),
        None => kind.to_owned(),
    }
}
