//! The tenant's namespace and its budget (guide: "Namespace Isolation", "Resource Isolation").
//!
//! The Namespace carries the Pod Security Admission labels that make the API server refuse
//! any pod below the `restricted` profile (guide: "Admission Controllers", "Pod Security"),
//! so even an object created outside the operator cannot weaken the tenant. The ResourceQuota
//! caps the namespace as a whole and forbids NodePort and LoadBalancer Services (the API is
//! reachable only through the network policies); the LimitRange gives any container created
//! without requests and limits a bounded default.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{component, labels, meta};
use crate::crd::Tenant;

/// The Pod Security Admission labels: enforce, audit and warn at `restricted`.
pub fn pod_security_labels() -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    for mode in ["enforce", "audit", "warn"] {
        l.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".to_owned(),
        );
        l.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".to_owned(),
        );
    }
    l
}

/// The namespace `tenant-<name>`.
pub fn namespace(tenant: &Tenant) -> Namespace {
    let mut l = labels(tenant, component::NAMESPACE);
    l.extend(pod_security_labels());
    Namespace {
        metadata: ObjectMeta {
            name: Some(tenant.namespace_name()),
            labels: Some(l),
            annotations: Some(BTreeMap::from([(
                "neurallog.io/display-name".to_owned(),
                tenant.spec.display_name.clone(),
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_owned())
}

/// The namespace's hard limits, from `spec.resources`.
pub fn resource_quota(tenant: &Tenant) -> ResourceQuota {
    let r = &tenant.spec.resources;
    let hard = BTreeMap::from([
        ("requests.cpu".to_owned(), q(&r.cpu)),
        ("limits.cpu".to_owned(), q(&r.cpu)),
        ("requests.memory".to_owned(), q(&r.memory)),
        ("limits.memory".to_owned(), q(&r.memory)),
        ("requests.storage".to_owned(), q(&r.storage)),
        ("persistentvolumeclaims".to_owned(), q("10")),
        ("pods".to_owned(), q(&r.pods.to_string())),
        ("services".to_owned(), q("10")),
        ("services.nodeports".to_owned(), q("0")),
        ("services.loadbalancers".to_owned(), q("0")),
    ]);
    ResourceQuota {
        metadata: meta(tenant, "tenant-quota", component::NAMESPACE),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    }
}

/// Defaults and ceilings for containers that do not state their own.
pub fn limit_range(tenant: &Tenant) -> LimitRange {
    let pair = |cpu: &str, mem: &str| {
        Some(BTreeMap::from([
            ("cpu".to_owned(), q(cpu)),
            ("memory".to_owned(), q(mem)),
        ]))
    };
    let r = &tenant.spec.resources;
    LimitRange {
        metadata: meta(tenant, "tenant-limits", component::NAMESPACE),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: pair("500m", "512Mi"),
                default_request: pair("100m", "128Mi"),
                max: pair(&r.cpu, &r.memory),
                ..LimitRangeItem::default()
            }],
        }),
    }
}
