//! The tenant's NeuralLog server (guide: "Secure Server Configuration", "Environment
//! Variables", "TLS").
//!
//! Every secret reaches the server as a `secretKeyRef` (API key, Redis password, master key,
//! TLS material, JWT and OAuth2 secrets); literal values are only for settings that are not
//! secret. The server is pinned to its tenant (`TENANT_ID`), runs in production mode (so an
//! insecure setting stops it rather than warns), and is probed on `/health` and `/ready`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PodSpec, PodTemplateSpec, Probe,
    SecretKeySelector, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;

use super::pod::{
    container_security_context, pod_security_context, resources, tmp_mount, tmp_volume,
};
use super::rbac::SERVER_ACCOUNT;
use super::{
    API_PORT, METRICS_PORT, ROTATION_ANNOTATION, RenderInputs, component, labels, meta, redis,
    selector,
};
use crate::config::OperatorConfig;
use crate::crd::{SecretKeyRef, Tenant};
use crate::secrets::{API_KEY_KEY, API_KEYS, MASTER_KEY, MASTER_KEY_KEY};

/// Name of the server Deployment, Service and PodDisruptionBudget.
pub const NAME: &str = "neurallog-server";

fn value(name: &str, v: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(v.into()),
        value_from: None,
    }
}

/// An environment variable read from `secret`/`key`.
pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn secret_ref_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    secret_env(name, &r.name, &r.key)
}

/// The server container's environment, operator-owned variables first, then the Tenant's.
pub fn env(tenant: &Tenant, config: &OperatorConfig) -> Vec<EnvVar> {
    let spec = &tenant.spec;
    let mut env = vec![
        value("PORT", API_PORT.to_string()),
        value("NEURALLOG_BIND", "0.0.0.0"),
        value("METRICS_PORT", METRICS_PORT.to_string()),
        value("NODE_ENV", "production"),
        value("LOG_LEVEL", "info"),
        value("TENANT_ID", tenant.name_any()),
        value("REDIS_URL", redis::url(tenant, config)),
        redis::password_env("REDIS_PASSWORD"),
        secret_env("API_KEY", API_KEYS, API_KEY_KEY),
        secret_env("NEURALLOG_MASTER_KEY", MASTER_KEY, MASTER_KEY_KEY),
    ];
    if let Some(ca) = redis::ca_env(tenant) {
        env.push(ca);
    }
    if let Some(tls) = &spec.tls {
        env.push(secret_env("TLS_CERT", &tls.secret_name, &tls.cert_key));
        env.push(secret_env("TLS_KEY", &tls.secret_name, &tls.key_key));
        if let Some(ca) = &tls.client_ca_key {
            env.push(secret_env("TLS_CLIENT_CA", &tls.secret_name, ca));
        }
    } else {
        // Without its own certificate the server runs in production mode only behind the
        // cluster's TLS-terminating ingress, which this declares.
        env.push(value("NEURALLOG_TLS_PROXY", "true"));
    }
    let auth = &spec.auth;
    if let Some(jwt) = &auth.jwt {
        let algs: Vec<String> = jwt.algorithms.iter().map(|a| format!("{a:?}")).collect();
        env.push(value("JWT_ALGORITHMS", algs.join(",")));
        if let Some(v) = &jwt.issuer {
            env.push(value("JWT_ISSUER", v));
        }
        if let Some(v) = &jwt.audience {
            env.push(value("JWT_AUDIENCE", v));
        }
        if let Some(v) = &jwt.jwks_url {
            env.push(value("JWT_JWKS_URL", v));
        }
        if let Some(r) = &jwt.secret_ref {
            env.push(secret_ref_env("JWT_SECRET", r));
        }
        if let Some(r) = &jwt.public_key_ref {
            env.push(secret_ref_env("JWT_PUBLIC_KEY", r));
        }
    }
    if let Some(oidc) = &auth.oidc {
        env.push(value("OIDC_ISSUER_URL", &oidc.issuer_url));
        if let Some(v) = &oidc.introspection_url {
            env.push(value("OAUTH2_INTROSPECTION_URL", v));
        }
        if let Some(v) = &oidc.client_id {
            env.push(value("OAUTH2_CLIENT_ID", v));
        }
        if let Some(r) = &oidc.client_secret_ref {
            env.push(secret_ref_env("OAUTH2_CLIENT_SECRET", r));
        }
    }
    let limits = [
        ("RATE_LIMIT_RPS", auth.rate_limit_rps),
        ("RATE_LIMIT_BURST", auth.rate_limit_burst),
        ("AUTH_FAILURE_LIMIT", auth.auth_failure_limit),
        ("AUTH_BLOCK_SECONDS", auth.auth_block_seconds),
    ];
    for (name, v) in limits {
        if let Some(v) = v {
            env.push(value(name, v.to_string()));
        }
    }
    if let Some(r) = &spec.retention {
        env.push(value("NEURALLOG_RETENTION_DAYS", r.days.to_string()));
    }
    // NB: a Tenant variable replaces an operator default of the same name (LOG_LEVEL, the
    // limits): server-side apply refuses a list with two entries for one name. Reserved names
    // never get here (validation).
    for extra in &spec.server.env {
        env.retain(|e| e.name != extra.name);
        env.push(EnvVar::from(extra));
    }
    env
}

fn http_probe(path: &str, scheme: &str, initial: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some(scheme.into()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The server Deployment.
pub fn deployment(tenant: &Tenant, config: &OperatorConfig, inputs: &RenderInputs) -> Deployment {
    let spec = &tenant.spec.server;
    let uid = config.run_as_user;
    let scheme = if tenant.spec.tls.is_some() {
        "HTTPS"
    } else {
        "HTTP"
    };
    let mut pod_labels = labels(tenant, component::SERVER);
    // NB: the guide's allow-api policy selects `app: neurallog-server`; keep that label so
    // policies written against the guide keep matching.
    pod_labels.insert("app".into(), NAME.into());
    let mut annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), METRICS_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ]);
    if let Some(at) = &inputs.rotated_at {
        annotations.insert(ROTATION_ANNOTATION.to_owned(), at.clone());
    }
    let container = Container {
        name: "server".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| config.server_image.clone()),
        ),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["serve".into()]),
        env: Some(env(tenant, config)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: API_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        liveness_probe: Some(http_probe("/health", scheme, 10, 10)),
        readiness_probe: Some(http_probe("/ready", scheme, 5, 5)),
        resources: Some(resources(&spec.resources)),
        security_context: Some(container_security_context(uid)),
        volume_mounts: Some(vec![tmp_mount()]),
        ..Container::default()
    };
    Deployment {
        metadata: meta(tenant, NAME, component::SERVER),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(selector(tenant, component::SERVER)),
                match_expressions: None,
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(SERVER_ACCOUNT.into()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security_context(uid)),
                    containers: vec![container],
                    volumes: Some(vec![tmp_volume()]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// ClusterIP Service in front of the server pods: the API and the metrics port.
pub fn service(tenant: &Tenant) -> Service {
    let port = |name: &str, p: i32| ServicePort {
        name: Some(name.into()),
        port: p,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    Service {
        metadata: meta(tenant, NAME, component::SERVER),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector(tenant, component::SERVER)),
            ports: Some(vec![port("http", API_PORT), port("metrics", METRICS_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Keeps one server pod up through voluntary disruptions; only when there is more than one.
pub fn disruption_budget(tenant: &Tenant) -> Option<PodDisruptionBudget> {
    if tenant.spec.server.replicas <= 1 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: meta(tenant, NAME, component::SERVER),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(tenant, component::SERVER)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
