//! Rendering: a Tenant and the operator's settings in, every Kubernetes object out.
//!
//! This is the pure half of the operator (spec §8, linkerd's policy-controller split): no IO,
//! no clock, no randomness except what the caller passes in. The reconciler applies what
//! [`render`] returns with server-side apply, `neurallog-operator render` prints it offline,
//! and the tests check every security property on it without a cluster.
//!
//! Submodules, one per concern of the security guide:
//! - [`namespace`]: the Namespace (Pod Security Admission), ResourceQuota, LimitRange
//! - [`network`]: the NetworkPolicies
//! - [`rbac`]: ServiceAccounts, Role, RoleBinding
//! - [`pod`]: the hardening every pod and container gets
//! - [`redis`]: the dedicated Redis (ConfigMap, headless Service, StatefulSet)
//! - [`server`]: the server Deployment, Service and PodDisruptionBudget
//! - [`backup`]: the backup volume and CronJob
//! - [`secret`]: the Secret objects, from values the caller generated or read

pub mod backup;
pub mod namespace;
pub mod network;
pub mod pod;
pub mod rbac;
pub mod redis;
pub mod secret;
pub mod server;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt as _;
use kube::core::ApiResource;
use serde::Serialize;

use crate::config::OperatorConfig;
use crate::crd::{InvalidSpec, Tenant};

/// Label naming the tenant an object belongs to.
pub const LABEL_TENANT: &str = "neurallog.io/tenant";
/// Label naming the part of the tenant an object implements.
pub const LABEL_COMPONENT: &str = "neurallog.io/component";
/// Label naming who manages the object.
pub const LABEL_MANAGED_BY: &str = "neurallog.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "neurallog-operator";
/// Pod template annotation that changes on each secret rotation, so the Deployment and the
/// StatefulSet roll their pods and pick up the new values.
pub const ROTATION_ANNOTATION: &str = "neurallog.io/secrets-rotated-at";

/// The server's API port (spec §2).
pub const API_PORT: i32 = 3030;
/// The server's metrics port (spec §2).
pub const METRICS_PORT: i32 = 9464;
/// The Redis port.
pub const REDIS_PORT: i32 = 6379;

/// Components, the values of [`LABEL_COMPONENT`].
pub mod component {
    /// The namespace and its quota and limits.
    pub const NAMESPACE: &str = "namespace";
    /// Network policies.
    pub const NETWORK: &str = "network";
    /// Service accounts and RBAC.
    pub const RBAC: &str = "rbac";
    /// Generated secrets.
    pub const SECRETS: &str = "secrets";
    /// The NeuralLog server.
    pub const SERVER: &str = "server";
    /// The tenant's Redis.
    pub const REDIS: &str = "redis";
    /// Scheduled backups.
    pub const BACKUP: &str = "backup";
}

/// What rendering needs besides the Tenant and the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderInputs {
    /// RFC 3339 time of the last secret rotation; stamped on the pod templates of the server
    /// and Redis so that a rotation rolls them.
    pub rotated_at: Option<String>,
}

macro_rules! objects {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// One rendered Kubernetes object.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(untagged)]
        #[allow(clippy::large_enum_variant)] // NB: a few dozen objects per tenant; boxing buys nothing
        pub enum Object {
            $(
                #[doc = concat!("A `", stringify!($variant), "`.")]
                $variant($ty),
            )*
        }

        impl Object {
            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self { $(Self::$variant(o) => &o.metadata,)* }
            }

            /// The object's metadata, for stamping.
            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Self::$variant(o) => &mut o.metadata,)* }
            }

            /// The object's `kind`.
            pub fn kind(&self) -> &'static str {
                match self { $(Self::$variant(_) => <$ty as k8s_openapi::Resource>::KIND,)* }
            }

            /// Group, version and plural, for a dynamic API call.
            pub fn api_resource(&self) -> ApiResource {
                match self { $(Self::$variant(_) => ApiResource::erase::<$ty>(&()),)* }
            }

        }

        $(
            impl From<$ty> for Object {
                fn from(o: $ty) -> Self { Self::$variant(o) }
            }
        )*
    };
}

objects! {
    Namespace(Namespace),
    ResourceQuota(ResourceQuota),
    LimitRange(LimitRange),
    NetworkPolicy(NetworkPolicy),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    Secret(Secret),
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    PodDisruptionBudget(PodDisruptionBudget),
    PersistentVolumeClaim(PersistentVolumeClaim),
    CronJob(CronJob),
}

impl Object {
    /// Whether the object lives in a namespace (all but the Namespace itself).
    pub fn is_namespaced(&self) -> bool {
        !matches!(self, Self::Namespace(_))
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// `Kind/name`, for messages and tests.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind(), self.name())
    }
}

/// The labels every object of `tenant` carries.
pub fn labels(tenant: &Tenant, component: &str) -> BTreeMap<String, String> {
    let name = tenant.name_any();
    BTreeMap::from([
        (LABEL_TENANT.to_owned(), name.clone()),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
        ("app.kubernetes.io/name".to_owned(), "neurallog".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
    ])
}

/// The labels that select the pods of one component of a tenant.
pub fn selector(tenant: &Tenant, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_TENANT.to_owned(), tenant.name_any()),
        (LABEL_COMPONENT.to_owned(), component.to_owned()),
    ])
}

/// Metadata of a namespaced object of `tenant`.
pub fn meta(tenant: &Tenant, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(tenant.namespace_name()),
        labels: Some(labels(tenant, component)),
        ..ObjectMeta::default()
    }
}

/// The reference that makes the Tenant the controlling owner of an object, so the garbage
/// collector removes what the Tenant made. `None` for a Tenant read from a file (no uid): an
/// owner reference to a uid that does not exist would get the objects collected at once.
pub fn owner_reference(tenant: &Tenant) -> Option<OwnerReference> {
    let uid = tenant.metadata.uid.clone()?;
    Some(OwnerReference {
        api_version: "neurallog.io/v1".into(),
        kind: "Tenant".into(),
        name: tenant.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Every object of the tenant except its Secrets, in apply order: the namespace first, then
/// what constrains the workloads (quota, limits, policies, RBAC), then the workloads.
pub fn render(
    tenant: &Tenant,
    config: &OperatorConfig,
    inputs: &RenderInputs,
) -> Result<Vec<Object>, InvalidSpec> {
    tenant.validate()?;
    let mut out: Vec<Object> = vec![
        namespace::namespace(tenant).into(),
        namespace::resource_quota(tenant).into(),
        namespace::limit_range(tenant).into(),
    ];
    out.extend(
        network::policies(tenant, config)
            .into_iter()
            .map(Object::from),
    );
    out.extend(rbac::objects(tenant));
    out.push(redis::config_map(tenant).into());
    out.push(redis::service(tenant).into());
    out.push(redis::stateful_set(tenant, config, inputs).into());
    out.push(server::service(tenant).into());
    out.push(server::deployment(tenant, config, inputs).into());
    if let Some(pdb) = server::disruption_budget(tenant) {
        out.push(pdb.into());
    }
    if tenant.spec.backup.is_some() {
        out.push(backup::volume_claim(tenant).into());
        out.push(backup::cron_job(tenant, config).into());
    }
    stamp(tenant, &mut out);
    Ok(out)
}

/// Adds the owner reference and the common labels to every object, whatever its renderer did.
pub fn stamp(tenant: &Tenant, objects: &mut [Object]) {
    let owner = owner_reference(tenant);
    for o in objects {
        let component = o
            .meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_COMPONENT).cloned())
            .unwrap_or_else(|| component::NAMESPACE.to_owned());
        let m = o.meta_mut();
        let l = m.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in labels(tenant, &component) {
            l.entry(k).or_insert(v);
        }
        if let Some(owner) = &owner {
            m.owner_references = Some(vec![owner.clone()]);
        }
    }
}

/// Objects as one multi-document YAML stream, each preceded by `---`.
pub fn to_yaml(objects: &[Object]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        for line in serde_yaml::to_string(o)?.lines() {
            out.push_str(&quote_timestamp(line));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Quotes a plain scalar that YAML 1.1 readers (PyYAML, older kubectl plugins) would take
/// for a timestamp rather than a string: serde_yaml writes YAML 1.2, where an RFC 3339 time
/// is a plain string, so `generated-at: 2026-12-03T00:00:00Z` would change type when read
/// back by such tools and fail schema validation as "not a string".
fn quote_timestamp(line: &str) -> String {
    let Some((key, value)) = line.split_once(": ") else {
        return line.to_owned();
    };
    let b = value.as_bytes();
    let looks_like_date = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    if looks_like_date && !value.contains('\'') {
        format!("{key}: '{value}'")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests;
