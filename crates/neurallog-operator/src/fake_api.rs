//! An in-memory Kubernetes API server for tests (`cfg(test)` only).
//!
//! No API server can run here, so, as kube-rs's controller-rs does, the client talks to a
//! `tower-test` mock service. Behind it, [`Fake`] keeps objects by path and answers GET, POST,
//! PUT (with resourceVersion conflicts), PATCH (server-side apply, merge and JSON patch) and
//! DELETE the way the API server would, fails a chosen request once on demand, and logs every
//! request so tests can assert the exact sequence.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// An in-memory API server.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) objects: BTreeMap<String, Value>,
    pub(crate) log: Vec<String>,
    /// `METHOD path` to fail once with the given status code.
    pub(crate) fail_once: Option<(String, u16)>,
    /// Whether workloads report their replicas ready.
    pub(crate) ready: bool,
    /// Applies that were not forced or not under the operator's field manager.
    pub(crate) bad_applies: Vec<String>,
    pub(crate) version: u64,
}

pub(crate) fn status_body(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": reason})
}

/// RFC 7386 merge patch, also used as the server-side apply merge (force=true: ours wins).
pub(crate) fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                if v.is_null() {
                    d.remove(k);
                } else {
                    merge(d.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

impl Fake {
    pub(crate) fn handle(
        &mut self,
        method: &str,
        uri: &http::Uri,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Value) {
        let path = uri.path().to_owned();
        let query = uri.query().unwrap_or_default().to_owned();
        let line = format!("{method} {path}");
        self.log.push(line.clone());
        if self.fail_once.as_ref().is_some_and(|(l, _)| *l == line) {
            let (_, code) = self.fail_once.take().unwrap_or_default();
            let reason = match code {
                409 => "Conflict",
                404 => "NotFound",
                _ => "InternalError",
            };
            return (code, status_body(code, reason));
        }
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or(Value::Null)
        };
        self.version += 1;
        let rv = self.version.to_string();
        match method {
            "GET" => match self.objects.get(&path) {
                Some(o) => (200, o.clone()),
                None => (404, status_body(404, "NotFound")),
            },
            "POST" => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let key = format!("{path}/{name}");
                if self.objects.contains_key(&key) {
                    return (409, status_body(409, "AlreadyExists"));
                }
                let mut o = body;
                o["metadata"]["resourceVersion"] = json!(rv);
                o["metadata"]["uid"] = json!(format!("uid-{rv}"));
                self.objects.insert(key, o.clone());
                (201, o)
            }
            "PUT" => {
                let sent = body["metadata"]["resourceVersion"].clone();
                let stored = self
                    .objects
                    .get(&path)
                    .map(|o| o["metadata"]["resourceVersion"].clone());
                match stored {
                    None => return (404, status_body(404, "NotFound")),
                    Some(current) if !sent.is_null() && sent != current => {
                        return (409, status_body(409, "Conflict"));
                    }
                    _ => {}
                }
                let mut o = body;
                o["metadata"]["resourceVersion"] = json!(rv);
                self.objects.insert(path, o.clone());
                (200, o)
            }
            "PATCH" if content_type.starts_with("application/apply-patch") => {
                if !query.contains("fieldManager=neurallog-operator")
                    || !query.contains("force=true")
                {
                    self.bad_applies.push(format!("{path}?{query}"));
                }
                let o = self.objects.entry(path).or_insert_with(|| json!({}));
                merge(o, &body);
                o["metadata"]["resourceVersion"] = json!(rv);
                if let Some(replicas) = o.pointer("/spec/replicas").cloned() {
                    let ready = if self.ready {
                        replicas.clone()
                    } else {
                        json!(0)
                    };
                    o["status"] = json!({"replicas": replicas, "readyReplicas": ready, "updatedReplicas": ready});
                }
                (200, o.clone())
            }
            "PATCH" if content_type.starts_with("application/merge-patch") => {
                let key = path.trim_end_matches("/status").to_owned();
                let Some(o) = self.objects.get_mut(&key) else {
                    return (404, status_body(404, "NotFound"));
                };
                merge(o, &body);
                (200, o.clone())
            }
            "PATCH" if content_type.starts_with("application/json-patch") => {
                let Some(o) = self.objects.get_mut(&path) else {
                    return (404, status_body(404, "NotFound"));
                };
                // NB: the API server's JSON patch treats a missing field as null, which
                // the finalizer helper's `test` operation relies on.
                if o["metadata"].get("finalizers").is_none() {
                    o["metadata"]["finalizers"] = Value::Null;
                }
                let patch: json_patch::Patch = match serde_json::from_value(body) {
                    Ok(p) => p,
                    Err(_) => return (422, status_body(422, "Invalid")),
                };
                if json_patch::patch(o, &patch).is_err() {
                    return (422, status_body(422, "Invalid"));
                }
                (200, o.clone())
            }
            "DELETE" => match self.objects.remove(&path) {
                Some(mut o) => {
                    if o["kind"] == "Namespace" {
                        o["status"] = json!({"phase": "Terminating"});
                    }
                    (200, o)
                }
                None => (404, status_body(404, "NotFound")),
            },
            _ => (405, status_body(405, "MethodNotAllowed")),
        }
    }
}

/// Serves `fake` behind a mock service; returns a client for it and the serving task.
pub(crate) fn serve(fake: Arc<Mutex<Fake>>) -> (kube::Client, tokio::task::JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let served = fake;
    let server = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let (code, value) = served.lock().expect("lock").handle(
                parts.method.as_str(),
                &parts.uri,
                &content_type,
                &bytes,
            );
            let response = Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&value).expect("json")))
                .expect("response");
            send.send_response(response);
        }
    });
    (kube::Client::new(service, "default"), server)
}
