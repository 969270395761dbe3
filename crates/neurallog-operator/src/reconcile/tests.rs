//! The reconcile loop against a mocked API server.
//!
//! No Kubernetes API server can run here, so (as kube-rs's controller-rs does) the client
//! talks to a `tower-test` mock service. Behind it, [`Fake`] keeps the objects in memory,
//! answers GET, POST, PUT, PATCH (server-side apply, merge and JSON patch) and DELETE like
//! the API server would, fails a chosen request once on demand, and logs every request. Each
//! test asserts the exact sequence of requests a reconcile made, and the resulting objects.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

use super::*;
use crate::crd::SecretRotationSpec;
use crate::fake_api::{Fake, serve};
use crate::render::ROTATION_ANNOTATION;

const NS: &str = "tenant-acme";
const TENANT: &str = "/apis/neurallog.io/v1/tenants/acme";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

struct Harness {
    fake: Arc<Mutex<Fake>>,
    ctx: Arc<Context>,
    now: Arc<Mutex<Timestamp>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn start(tenant: &Tenant) -> Harness {
    let fake = Arc::new(Mutex::new(Fake {
        ready: true,
        ..Fake::default()
    }));
    let mut stored = serde_json::to_value(tenant).expect("tenant json");
    stored["metadata"]["resourceVersion"] = json!("1");
    fake.lock()
        .expect("lock")
        .objects
        .insert(TENANT.into(), stored);
    let (client, server) = serve(fake.clone());
    let now = Arc::new(Mutex::new(
        Timestamp::from_second(1_780_000_000).expect("time"),
    ));
    let clock_now = now.clone();
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: OperatorConfig::default(),
        metrics: Arc::new(Metrics::default()),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "neurallog-operator".into(),
                instance: Some("test".into()),
            },
        ),
        clock: Arc::new(move || *clock_now.lock().expect("clock")),
    });
    Harness {
        fake,
        ctx,
        now,
        server,
    }
}

impl Harness {
    /// The Tenant as the fake API server currently stores it.
    fn tenant(&self) -> Tenant {
        let v = self.fake.lock().expect("lock").objects[TENANT].clone();
        serde_json::from_value(v).expect("tenant")
    }

    /// Runs one reconcile of the stored Tenant; returns its result and the requests it made.
    async fn reconcile(&self) -> (Result<Action, Error>, Vec<String>) {
        let before = self.fake.lock().expect("lock").log.len();
        let result = reconcile(Arc::new(self.tenant()), self.ctx.clone()).await;
        let log = self.fake.lock().expect("lock").log[before..].to_vec();
        (result, log)
    }

    fn object(&self, path: &str) -> Option<Value> {
        self.fake.lock().expect("lock").objects.get(path).cloned()
    }

    fn secret_value(&self, name: &str, key: &str) -> String {
        let s = self
            .object(&format!("/api/v1/namespaces/{NS}/secrets/{name}"))
            .expect("secret");
        let b64 = s["data"][key].as_str().expect("data").to_owned();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        String::from_utf8(raw).expect("utf8")
    }

    fn advance(&self, d: SignedDuration) {
        let mut now = self.now.lock().expect("clock");
        *now = now.checked_add(d).expect("time");
    }

    /// Create: finalizer first, then the full first apply.
    async fn create(&self) {
        let (r, log) = self.reconcile().await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            log,
            [format!("PATCH {TENANT}")],
            "the first reconcile only adds the finalizer"
        );
        let (r, _) = self.reconcile().await;
        assert!(r.is_ok(), "{r:?}");
    }
}

/// The API path of a rendered object, computed independently of the code under test.
fn path_of(o: &Object) -> String {
    let (prefix, plural) = match o.kind() {
        "Namespace" => return format!("/api/v1/namespaces/{}", o.name()),
        "ResourceQuota" => ("/api/v1", "resourcequotas"),
        "LimitRange" => ("/api/v1", "limitranges"),
        "ServiceAccount" => ("/api/v1", "serviceaccounts"),
        "ConfigMap" => ("/api/v1", "configmaps"),
        "Service" => ("/api/v1", "services"),
        "PersistentVolumeClaim" => ("/api/v1", "persistentvolumeclaims"),
        "NetworkPolicy" => ("/apis/networking.k8s.io/v1", "networkpolicies"),
        "Role" => ("/apis/rbac.authorization.k8s.io/v1", "roles"),
        "RoleBinding" => ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
        "StatefulSet" => ("/apis/apps/v1", "statefulsets"),
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "PodDisruptionBudget" => ("/apis/policy/v1", "poddisruptionbudgets"),
        "CronJob" => ("/apis/batch/v1", "cronjobs"),
        other => panic!("unexpected kind {other}"),
    };
    format!("{prefix}/namespaces/{NS}/{plural}/{}", o.name())
}

/// The applies of every rendered object after the namespace, in order.
fn applies_after_namespace(t: &Tenant) -> Vec<String> {
    let objs =
        render::render(t, &OperatorConfig::default(), &RenderInputs::default()).expect("render");
    objs[1..]
        .iter()
        .map(|o| format!("PATCH {}", path_of(o)))
        .collect()
}

/// The secret requests of a reconcile: three reads, then (on create) three creates and the
/// `SecretsCreated` event.
fn secret_reads(create: bool) -> Vec<String> {
    let mut out: Vec<String> = ["api-keys", "redis-auth", "master-key"]
        .iter()
        .map(|name| format!("GET /api/v1/namespaces/{NS}/secrets/{name}"))
        .collect();
    if create {
        out.extend(std::iter::repeat_n(
            format!("POST /api/v1/namespaces/{NS}/secrets"),
            3,
        ));
        out.push(format!("POST {EVENTS}"));
    }
    out
}

fn expected(parts: &[Vec<String>]) -> Vec<String> {
    parts.concat()
}

fn s(v: &str) -> Vec<String> {
    vec![v.to_owned()]
}

#[tokio::test]
async fn create_adds_the_finalizer_then_applies_everything_in_order() {
    let tenant = Tenant::test();
    let h = start(&tenant);
    let (r, log) = h.reconcile().await;
    assert!(r.is_ok());
    assert_eq!(log, [format!("PATCH {TENANT}")]);
    assert_eq!(
        h.tenant().metadata.finalizers,
        Some(vec![FINALIZER.to_owned()])
    );

    let (r, log) = h.reconcile().await;
    let action = r.expect("reconciled");
    assert_eq!(action, Action::requeue(OperatorConfig::default().resync));
    let want = expected(&[
        s(&format!("PATCH /api/v1/namespaces/{NS}")),
        secret_reads(true),
        applies_after_namespace(&tenant),
        // the first apply of a generation prunes optional objects the spec does not want
        s(&format!(
            "DELETE /apis/batch/v1/namespaces/{NS}/cronjobs/neurallog-backup"
        )),
        s(&format!(
            "DELETE /api/v1/namespaces/{NS}/serviceaccounts/neurallog-backup"
        )),
        s(&format!(
            "DELETE /apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/allow-custom-rules"
        )),
        s(&format!("PATCH {TENANT}/status")),
        s(&format!("POST {EVENTS}")),
    ]);
    assert_eq!(log, want);
    assert!(
        h.fake.lock().expect("lock").bad_applies.is_empty(),
        "every apply is forced under one field manager"
    );

    let t = h.tenant();
    let st = t.status.expect("status");
    assert_eq!(st.phase, Some(TenantPhase::Running));
    assert_eq!(st.namespace.as_deref(), Some(NS));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(st.components.server.ready_replicas, 2);
    assert_eq!(
        st.last_secret_rotation.map(|t| t.0),
        Some(*h.now.lock().expect("clock"))
    );
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");

    let key = h.secret_value("api-keys", "server-key");
    assert!(key.starts_with("nl_"));
    let password = h.secret_value("redis-auth", "password");
    assert!(password.len() >= 40);
    // Secret values never travel in any applied object.
    let everything = serde_json::to_string(
        &h.fake
            .lock()
            .expect("lock")
            .objects
            .iter()
            .filter(|(k, _)| !k.contains("/secrets/"))
            .collect::<Vec<_>>(),
    )
    .expect("json");
    assert!(!everything.contains(&key) && !everything.contains(&password));
    let events: Vec<Value> = h
        .fake
        .lock()
        .expect("lock")
        .objects
        .iter()
        .filter(|(k, _)| k.starts_with(EVENTS))
        .map(|(_, v)| v.clone())
        .collect();
    let reasons: Vec<_> = events
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons.contains(&"SecretsCreated".to_owned())
            && reasons.contains(&"PhaseChanged".to_owned()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn a_re_run_applies_again_but_writes_no_secret_status_or_event() {
    let tenant = Tenant::test();
    let h = start(&tenant);
    h.create().await;
    let key = h.secret_value("api-keys", "server-key");
    let master = h.secret_value("master-key", "master-key");
    let status_before = h.tenant().status;

    let (r, log) = h.reconcile().await;
    assert!(r.is_ok());
    let want = expected(&[
        s(&format!("PATCH /api/v1/namespaces/{NS}")),
        secret_reads(false),
        applies_after_namespace(&tenant),
    ]);
    assert_eq!(log, want);
    assert_eq!(
        h.secret_value("api-keys", "server-key"),
        key,
        "secrets are never overwritten"
    );
    assert_eq!(h.secret_value("master-key", "master-key"), master);
    assert_eq!(h.tenant().status, status_before);
}

#[tokio::test]
async fn drift_is_put_back_and_a_changed_secret_is_kept() {
    let tenant = Tenant::test();
    let h = start(&tenant);
    h.create().await;
    let deploy = format!("/apis/apps/v1/namespaces/{NS}/deployments/neurallog-server");
    let policy =
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/default-deny-all");
    let role = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/neurallog-server");
    {
        let mut f = h.fake.lock().expect("lock");
        // Someone scales the server to zero, deletes the deny-all policy, widens the Role and
        // sets the API key by hand.
        f.objects.get_mut(&deploy).expect("deployment")["spec"]["replicas"] = json!(0);
        f.objects.remove(&policy);
        f.objects.get_mut(&role).expect("role")["rules"] =
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        let secret = f
            .objects
            .get_mut(&format!("/api/v1/namespaces/{NS}/secrets/api-keys"))
            .expect("secret");
        secret["data"]["server-key"] =
            json!(base64::engine::general_purpose::STANDARD.encode("nl_custom_value"));
    }
    let (r, log) = h.reconcile().await;
    assert!(r.is_ok());
    assert_eq!(
        log,
        expected(&[
            s(&format!("PATCH /api/v1/namespaces/{NS}")),
            secret_reads(false),
            applies_after_namespace(&tenant)
        ])
    );
    assert_eq!(
        h.object(&deploy).expect("deployment")["spec"]["replicas"],
        2
    );
    assert_eq!(
        h.object(&policy).expect("policy back")["spec"]["policyTypes"],
        json!(["Ingress", "Egress"])
    );
    assert_eq!(
        h.object(&role).expect("role")["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    );
    assert_eq!(
        h.secret_value("api-keys", "server-key"),
        "nl_custom_value",
        "an existing secret value is never overwritten"
    );
}

#[tokio::test]
async fn deletion_removes_the_namespace_before_releasing_the_tenant() {
    let tenant = Tenant::test();
    let h = start(&tenant);
    h.create().await;
    {
        let mut f = h.fake.lock().expect("lock");
        f.objects.get_mut(TENANT).expect("tenant")["metadata"]["deletionTimestamp"] =
            json!("2026-12-03T00:00:00Z");
    }
    let (r, log) = h.reconcile().await;
    let err = r.expect_err("namespace still terminating");
    assert_eq!(err.kind(), "cleanup_pending");
    assert_eq!(
        error_policy(Arc::new(h.tenant()), &err, h.ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        log,
        [
            format!("PATCH {TENANT}/status"),
            format!("POST {EVENTS}"),
            format!("DELETE /api/v1/namespaces/{NS}")
        ]
    );
    assert_eq!(
        h.tenant().status.and_then(|s| s.phase),
        Some(TenantPhase::Terminating)
    );
    assert_eq!(
        h.tenant().metadata.finalizers,
        Some(vec![FINALIZER.to_owned()]),
        "kept while the namespace exists"
    );

    let (r, log) = h.reconcile().await;
    assert_eq!(r.expect("released"), Action::await_change());
    assert_eq!(
        log,
        [
            format!("DELETE /api/v1/namespaces/{NS}"),
            format!("PATCH {TENANT}")
        ]
    );
    assert_eq!(h.tenant().metadata.finalizers, Some(vec![]));
}

#[tokio::test]
async fn rotation_replaces_key_and_password_and_rolls_the_pods() {
    let mut tenant = Tenant::test();
    tenant.spec.secret_rotation = Some(SecretRotationSpec { interval_days: 30 });
    let h = start(&tenant);
    h.create().await;
    let key = h.secret_value("api-keys", "server-key");
    let password = h.secret_value("redis-auth", "password");
    let master = h.secret_value("master-key", "master-key");

    // Not yet due: nothing is replaced, and the requeue is capped by the resync.
    h.advance(SignedDuration::from_hours(24 * 29));
    let (r, log) = h.reconcile().await;
    assert!(r.is_ok());
    assert!(!log.iter().any(|l| l.starts_with("PUT")), "{log:?}");

    h.advance(SignedDuration::from_hours(24 * 2));
    let (r, log) = h.reconcile().await;
    assert!(r.is_ok());
    let want = expected(&[
        s(&format!("PATCH /api/v1/namespaces/{NS}")),
        secret_reads(false),
        s(&format!("PUT /api/v1/namespaces/{NS}/secrets/api-keys")),
        s(&format!("PUT /api/v1/namespaces/{NS}/secrets/redis-auth")),
        s(&format!("POST {EVENTS}")),
        applies_after_namespace(&tenant),
        s(&format!("PATCH {TENANT}/status")),
    ]);
    assert_eq!(log, want);
    assert_ne!(h.secret_value("api-keys", "server-key"), key);
    assert_ne!(h.secret_value("redis-auth", "password"), password);
    assert_eq!(
        h.secret_value("master-key", "master-key"),
        master,
        "the master key is never rotated here"
    );
    let now = h.now.lock().expect("clock").to_string();
    let st = h.tenant().status.expect("status");
    assert_eq!(
        st.last_secret_rotation.map(|t| t.0.to_string()),
        Some(now.clone())
    );
    for path in [
        format!("/apis/apps/v1/namespaces/{NS}/deployments/neurallog-server"),
        format!("/apis/apps/v1/namespaces/{NS}/statefulsets/redis"),
    ] {
        let o = h.object(&path).expect("workload");
        assert_eq!(
            o["spec"]["template"]["metadata"]["annotations"][ROTATION_ANNOTATION],
            json!(now),
            "{path} rolls"
        );
    }
    let put = h
        .object(&format!("/api/v1/namespaces/{NS}/secrets/api-keys"))
        .expect("secret");
    assert!(put["metadata"]["resourceVersion"].is_string());
}

#[tokio::test]
async fn an_api_error_is_recorded_and_the_retry_completes() {
    let tenant = Tenant::test();
    let h = start(&tenant);
    let (r, _) = h.reconcile().await;
    assert!(r.is_ok());
    let sts = format!("PATCH /apis/apps/v1/namespaces/{NS}/statefulsets/redis");
    h.fake.lock().expect("lock").fail_once = Some((sts.clone(), 500));

    let (r, log) = h.reconcile().await;
    let err = r.expect_err("the apply failed");
    assert_eq!(err.kind(), "kube");
    assert_eq!(
        error_policy(Arc::new(h.tenant()), &err, h.ctx.clone()),
        Action::requeue(Duration::from_secs(15))
    );
    let applies = applies_after_namespace(&tenant);
    let upto = applies.iter().position(|l| *l == sts).expect("sts applied") + 1;
    let want = expected(&[
        s(&format!("PATCH /api/v1/namespaces/{NS}")),
        secret_reads(true),
        applies[..upto].to_vec(),
        s(&format!("PATCH {TENANT}/status")),
        s(&format!("POST {EVENTS}")),
    ]);
    assert_eq!(log, want);
    let st = h.tenant().status.expect("status");
    assert_eq!(st.phase, Some(TenantPhase::Failed));
    let metrics = h.ctx.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("neurallog_operator_reconcile_failures_total{kind=\"kube\"} 1"),
        "{metrics}"
    );

    let (r, log) = h.reconcile().await;
    assert!(r.is_ok(), "{r:?}");
    let want = expected(&[
        s(&format!("PATCH /api/v1/namespaces/{NS}")),
        secret_reads(false),
        applies,
        s(&format!(
            "DELETE /apis/batch/v1/namespaces/{NS}/cronjobs/neurallog-backup"
        )),
        s(&format!(
            "DELETE /api/v1/namespaces/{NS}/serviceaccounts/neurallog-backup"
        )),
        s(&format!(
            "DELETE /apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/allow-custom-rules"
        )),
        s(&format!("PATCH {TENANT}/status")),
        s(&format!("POST {EVENTS}")),
    ]);
    assert_eq!(
        log, want,
        "the retry finishes the work, secrets created by the failed run are kept"
    );
    assert_eq!(
        h.tenant().status.and_then(|s| s.phase),
        Some(TenantPhase::Running)
    );
}

#[tokio::test]
async fn a_spec_change_prunes_what_is_no_longer_wanted() {
    let tenant = Tenant::test().with_replicas(3);
    let h = start(&tenant);
    h.create().await;
    let pdb = format!("/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/neurallog-server");
    assert!(h.object(&pdb).is_some());
    {
        let mut f = h.fake.lock().expect("lock");
        let t = f.objects.get_mut(TENANT).expect("tenant");
        t["spec"]["server"]["replicas"] = json!(1);
        t["metadata"]["generation"] = json!(2);
    }
    let (r, log) = h.reconcile().await;
    assert!(r.is_ok());
    assert!(log.contains(&format!("DELETE {pdb}")), "{log:?}");
    assert!(h.object(&pdb).is_none());
    assert_eq!(
        h.tenant().status.and_then(|s| s.observed_generation),
        Some(2)
    );
}

#[test]
fn rotation_is_due_only_after_the_interval() {
    let mut spec = Tenant::test().spec;
    let at = |s: i64| Timestamp::from_second(s).expect("ts");
    let last = Time(at(1_000_000));
    assert!(
        !rotation_due(&spec, Some(&last), at(9_000_000)),
        "rotation off"
    );
    spec.secret_rotation = Some(SecretRotationSpec { interval_days: 1 });
    assert!(
        !rotation_due(&spec, None, at(9_000_000)),
        "the first generation is not a rotation"
    );
    assert!(!rotation_due(&spec, Some(&last), at(1_000_000 + 86_399)));
    assert!(rotation_due(&spec, Some(&last), at(1_000_000 + 86_400)));
}

#[tokio::test]
async fn a_rotation_whose_status_write_failed_is_not_repeated() {
    // Regression guard: the rotation clock is the secrets' annotation, not the status, so a
    // failure after the secrets were replaced does not rotate them a second time.
    let mut tenant = Tenant::test();
    tenant.spec.secret_rotation = Some(SecretRotationSpec { interval_days: 1 });
    let h = start(&tenant);
    h.create().await;
    h.advance(SignedDuration::from_hours(25));
    h.fake.lock().expect("lock").fail_once = Some((format!("PATCH {TENANT}/status"), 500));
    let (r, log) = h.reconcile().await;
    assert!(r.is_err());
    assert_eq!(log.iter().filter(|l| l.starts_with("PUT")).count(), 2);
    let key = h.secret_value("api-keys", "server-key");
    let (r, log) = h.reconcile().await;
    assert!(r.is_ok(), "{r:?}");
    assert!(!log.iter().any(|l| l.starts_with("PUT")), "{log:?}");
    assert_eq!(h.secret_value("api-keys", "server-key"), key);
}
