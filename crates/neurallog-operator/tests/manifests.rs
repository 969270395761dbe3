//! Schema and policy checks of every manifest in `deploy/` and of the rendered sample Tenant.
//!
//! Schema validation (kubeconform-style, offline): each document is deserialized into its
//! k8s-openapi type and serialized back, and the result must equal the input. A misspelled or
//! unknown field disappears in the round trip and a wrong type fails to parse, so both are
//! caught — the same strictness as `kubeconform -strict`, with the Kubernetes 1.33 types.
//! The Tenant sample is checked against the generated CRD instead (round trip plus the CEL
//! rules). Every pod template then goes through the Pod Security Standards `restricted`
//! checker, and the RBAC is checked for the guide's `tenants` rule and for wildcards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;
use neurallog_operator::config::OperatorConfig;
use neurallog_operator::crd::Tenant;
use neurallog_operator::pss;
use neurallog_operator::render::{self, RenderInputs};
use neurallog_operator::secrets::SecretKind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("yaml"))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).expect("json"))
        .collect()
}

use serde::Deserialize as _;

fn manifests() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = ["", "samples"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(deploy_dir().join(sub)).expect("deploy dir"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    for f in files {
        for (i, d) in docs(&f).into_iter().enumerate() {
            out.push((format!("{}#{i}", f.display()), d));
        }
    }
    out
}

fn sample() -> Tenant {
    let v = docs(&deploy_dir().join("samples/tenant.yaml")).remove(0);
    serde_json::from_value(v).expect("sample is a Tenant")
}

/// The rendered sample, Secrets included, as JSON documents.
fn rendered_sample() -> Vec<(String, Value)> {
    let mut t = sample();
    t.metadata.uid = Some("11111111-2222-4333-8444-555555555555".into());
    let mut objs = render::render(&t, &OperatorConfig::default(), &RenderInputs::default())
        .expect("the sample renders");
    for kind in SecretKind::ALL {
        objs.push(render::secret::secret(
            &t,
            kind,
            &kind.generate(),
            "2026-12-03T00:00:00Z",
        ));
    }
    // Through YAML, as `neurallog-operator render` prints it.
    let yaml = render::to_yaml(&objs).expect("yaml");
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| {
            serde_json::to_value(serde_yaml::Value::deserialize(d).expect("yaml")).expect("json")
        })
        .enumerate()
        .map(|(i, v)| (format!("render#{i}"), v))
        .collect()
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Deserializes into `K` and back; the result must be the input.
fn round_trip<K: DeserializeOwned + Serialize>(id: &str, doc: &Value) -> Result<(), String> {
    let typed: K = serde_json::from_value(doc.clone()).map_err(|e| format!("{id}: {e}"))?;
    let mut back = serde_json::to_value(&typed).map_err(|e| format!("{id}: {e}"))?;
    let mut want = doc.clone();
    strip_nulls(&mut back);
    strip_nulls(&mut want);
    if back == want {
        Ok(())
    } else {
        Err(format!(
            "{id}: fields lost or changed in the round trip (unknown or misspelled field?)\n want {want}\n  got {back}"
        ))
    }
}

fn validate(id: &str, doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(id, doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(id, doc),
        ("v1", "Service") => round_trip::<Service>(id, doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(id, doc),
        ("v1", "Secret") => round_trip::<Secret>(id, doc),
        ("v1", "ResourceQuota") => round_trip::<ResourceQuota>(id, doc),
        ("v1", "LimitRange") => round_trip::<LimitRange>(id, doc),
        ("v1", "PersistentVolumeClaim") => round_trip::<PersistentVolumeClaim>(id, doc),
        ("v1", "Pod") => round_trip::<Pod>(id, doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(id, doc),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(id, doc),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(id, doc),
        ("batch/v1", "Job") => round_trip::<Job>(id, doc),
        ("batch/v1", "CronJob") => round_trip::<CronJob>(id, doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(id, doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(id, doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(id, doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(id, doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(id, doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(id, doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(id, doc)
        }
        ("neurallog.io/v1", "Tenant") => validate_tenant(id, doc),
        _ => Err(format!("{id}: no schema for {api_version} {kind}")),
    }
}

/// Every field of the input must survive parsing (defaults may be added), and the CRD's CEL
/// rules must accept it.
fn validate_tenant(id: &str, doc: &Value) -> Result<(), String> {
    fn subset(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => x
                .iter()
                .all(|(k, v)| y.get(k).is_some_and(|w| subset(v, w))),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| subset(v, w))
            }
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            _ => a == b,
        }
    }
    let t: Tenant = serde_json::from_value(doc.clone()).map_err(|e| format!("{id}: {e}"))?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    if !subset(doc, &back) {
        return Err(format!("{id}: unknown field in the Tenant"));
    }
    t.validate().map_err(|e| format!("{id}: {e}"))?;
    let crd = Tenant::crd();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema"),
    )
    .map_err(|e| e.to_string())?;
    kube::core::cel::Validator::new()
        .validate(&schema, doc, None)
        .map_err(|e| format!("{id}: CEL: {:?}", e.into_vec()))
}

#[test]
fn every_deploy_manifest_passes_strict_schema_validation() {
    let all = manifests();
    assert!(all.len() >= 10, "found {} documents", all.len());
    let errors: Vec<String> = all
        .iter()
        .filter_map(|(id, d)| validate(id, d).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_rendered_sample_passes_strict_schema_validation() {
    let errors: Vec<String> = rendered_sample()
        .iter()
        .filter_map(|(id, d)| validate(id, d).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_validator_catches_an_unknown_field_and_a_wrong_type() {
    // Guards the guard: a typo and a wrong type must both fail.
    let mut d = rendered_sample()
        .into_iter()
        .find(|(_, d)| d["kind"] == "Deployment")
        .expect("deployment")
        .1;
    d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] =
        Value::Bool(true);
    assert!(validate("typo", &d).is_err());
    let mut d = rendered_sample()
        .into_iter()
        .find(|(_, d)| d["kind"] == "Service")
        .expect("service")
        .1;
    d["spec"]["ports"][0]["port"] = Value::String("http".into());
    assert!(validate("type", &d).is_err());
    let mut t = docs(&deploy_dir().join("samples/tenant.yaml")).remove(0);
    t["spec"]["server"]["replicaCount"] = Value::from(3);
    assert!(validate("tenant", &t).is_err());
}

fn restricted_violations(docs: &[(String, Value)]) -> (usize, Vec<String>) {
    let mut pods = 0;
    let mut out = Vec::new();
    for (id, d) in docs {
        let Some(template) = pss::pod_template(d) else {
            continue;
        };
        let (annotations, spec): (BTreeMap<String, String>, _) = template.expect("pod spec parses");
        pods += 1;
        for v in pss::check_restricted(&spec, &annotations) {
            out.push(format!("{id}: {} at {}: {}", v.control, v.path, v.message));
        }
    }
    (pods, out)
}

#[test]
fn every_pod_in_deploy_passes_the_restricted_profile() {
    let (pods, v) = restricted_violations(&manifests());
    assert!(pods >= 1, "the operator Deployment is checked");
    assert!(v.is_empty(), "{}", v.join("\n"));
}

#[test]
fn every_rendered_pod_passes_the_restricted_profile() {
    let (pods, v) = restricted_violations(&rendered_sample());
    assert_eq!(pods, 3, "server, redis and the backup job");
    assert!(v.is_empty(), "{}", v.join("\n"));
}

#[test]
fn the_operator_cluster_role_has_the_guides_tenants_rule_and_no_wildcard() {
    let all = manifests();
    let role = all
        .iter()
        .find(|(_, d)| d["kind"] == "ClusterRole")
        .expect("ClusterRole")
        .1
        .clone();
    let role: ClusterRole = serde_json::from_value(role).expect("ClusterRole");
    let rules = role.rules.expect("rules");
    let tenants = rules
        .iter()
        .find(|r| r.resources.as_deref() == Some(&["tenants".to_owned()][..]))
        .expect("tenants rule");
    assert_eq!(
        tenants.api_groups.as_deref(),
        Some(&["neurallog.io".to_owned()][..])
    );
    assert_eq!(
        tenants.verbs,
        [
            "create", "delete", "get", "list", "patch", "update", "watch"
        ]
    );
    for (_, d) in &all {
        if !matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for r in d["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                let vals = r[field].as_array().cloned().unwrap_or_default();
                assert!(
                    !vals.iter().any(|v| v == "*"),
                    "wildcard in {}",
                    d["metadata"]["name"]
                );
                assert!(
                    !vals
                        .iter()
                        .any(|v| matches!(v.as_str(), Some("escalate" | "bind" | "impersonate")))
                );
            }
            // Secrets are read by name, never listed or watched.
            if r["resources"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "secrets"))
            {
                let verbs = r["verbs"].as_array().expect("verbs");
                assert!(!verbs.iter().any(|v| v == "list" || v == "watch"));
            }
        }
    }
}

#[test]
fn kustomization_lists_existing_files_and_the_crd_is_the_generated_one() {
    let k = docs(&deploy_dir().join("kustomization.yaml")).remove(0);
    for r in k["resources"].as_array().expect("resources") {
        let f = deploy_dir().join(r.as_str().expect("path"));
        assert!(f.exists(), "{} listed but missing", f.display());
    }
    let crd = docs(&deploy_dir().join("crd.yaml")).remove(0);
    assert_eq!(crd, serde_json::to_value(Tenant::crd()).expect("crd"));
}

#[test]
fn monitoring_files_parse_and_cover_the_server_metrics() {
    let rules = docs(&deploy_dir().join("monitoring/alert-rules.yaml")).remove(0);
    let exprs: Vec<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| r["expr"].as_str().expect("expr").to_owned())
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy_dir().join("monitoring/grafana-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("dashboard is JSON");
    let queries = dashboard["panels"].to_string();
    for metric in [
        "neurallog_http_requests_total",
        "neurallog_auth_failures_total",
        "neurallog_rate_limited_total",
        "neurallog_storage_errors_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "no alert on {metric}"
        );
        assert!(queries.contains(metric), "no panel for {metric}");
    }
}
