//! The tenant's NetworkPolicies (guide: "Network Security", "Network Isolation").
//!
//! NetworkPolicies are additive: a pod selected by any policy accepts only what some policy
//! allows. So `default-deny-all` selects every pod for both directions and allows nothing, and
//! each further policy opens one path:
//! - `allow-internal-traffic`: pod to pod inside the namespace (server to Redis, backups);
//! - `allow-api-access`: TCP 3030 on the server pods, only from the `allowedNamespaces`,
//!   matched by the immutable `kubernetes.io/metadata.name` label (the guide's example matches
//!   a `name` label that anyone who can label a namespace can forge);
//! - `allow-dns-egress`: UDP/TCP 53 to the cluster DNS pods, without which nothing resolves;
//! - `allow-monitoring-scrape`: TCP 9464 on the server pods from the monitoring namespace;
//! - `allow-custom-rules`: the Tenant's own `ingressRules`/`egressRules` for the server pods.
//!
//! `isolate: true` (incident containment) closes `allow-api-access` and drops the custom
//! rules; the default deny, in-namespace traffic, DNS and the metrics scrape stay.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{API_PORT, METRICS_PORT, component, meta, selector};
use crate::config::OperatorConfig;
use crate::crd::Tenant;

/// The label every namespace carries with its own name (set by the API server, immutable).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn policy(
    tenant: &Tenant,
    name: &str,
    pods: LabelSelector,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> NetworkPolicy {
    let mut types = Vec::new();
    if ingress.is_some() {
        types.push("Ingress".to_owned());
    }
    if egress.is_some() {
        types.push("Egress".to_owned());
    }
    NetworkPolicy {
        metadata: meta(tenant, name, component::NETWORK),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(types),
            ingress,
            egress,
        }),
    }
}

fn all_pods() -> LabelSelector {
    LabelSelector::default()
}

fn server_pods(tenant: &Tenant) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector(tenant, component::SERVER)),
        match_expressions: None,
    }
}

fn namespaces_named(names: &[String]) -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_NAME_LABEL.into(),
            operator: "In".into(),
            values: Some(names.to_vec()),
        }]),
    }
}

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

/// Every policy of the tenant; none when `spec.networkPolicy.enabled` is false.
pub fn policies(tenant: &Tenant, config: &OperatorConfig) -> Vec<NetworkPolicy> {
    let np = &tenant.spec.network_policy;
    if !np.enabled {
        return Vec::new();
    }
    let same_namespace = NetworkPolicyPeer {
        pod_selector: Some(all_pods()),
        ..NetworkPolicyPeer::default()
    };
    let mut out = vec![
        policy(
            tenant,
            "default-deny-all",
            all_pods(),
            Some(vec![]),
            Some(vec![]),
        ),
        policy(
            tenant,
            "allow-internal-traffic",
            all_pods(),
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![same_namespace.clone()]),
                ports: None,
            }]),
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![same_namespace]),
                ports: None,
            }]),
        ),
    ];
    // NB: with no allowed namespace the policy still exists with no rule, so the API is closed
    // rather than open, and adding a namespace later is a change to this one object.
    let api_rules = if np.allowed_namespaces.is_empty() || np.isolate {
        vec![]
    } else {
        vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespaces_named(&np.allowed_namespaces)),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("TCP", API_PORT)]),
        }]
    };
    out.push(policy(
        tenant,
        "allow-api-access",
        server_pods(tenant),
        Some(api_rules),
        None,
    ));
    out.push(policy(
        tenant,
        "allow-dns-egress",
        all_pods(),
        None,
        Some(vec![NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespaces_named(std::slice::from_ref(
                    &config.dns_namespace,
                ))),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(
                        [("k8s-app".to_owned(), config.dns_app_label.clone())].into(),
                    ),
                    match_expressions: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
        }]),
    ));
    out.push(policy(
        tenant,
        "allow-monitoring-scrape",
        server_pods(tenant),
        Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(namespaces_named(std::slice::from_ref(
                    &config.monitoring_namespace,
                ))),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("TCP", METRICS_PORT)]),
        }]),
        None,
    ));
    if !np.isolate && (!np.ingress_rules.is_empty() || !np.egress_rules.is_empty()) {
        let ingress = (!np.ingress_rules.is_empty()).then(|| np.ingress_rules.clone());
        let egress = (!np.egress_rules.is_empty()).then(|| np.egress_rules.clone());
        out.push(policy(
            tenant,
            "allow-custom-rules",
            server_pods(tenant),
            ingress,
            egress,
        ));
    }
    out
}
