//! Operator-wide settings that rendering depends on.
//!
//! Everything a rendered object needs that is not in the Tenant lives here, so that
//! [`crate::render::render`] stays a pure function of `(Tenant, OperatorConfig, inputs)` and the
//! same values can come from flags, the environment or a test.

use std::time::Duration;

/// Settings shared by every tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorConfig {
    /// Server image when a Tenant does not name one.
    pub server_image: String,
    /// Redis image when a Tenant does not name one.
    pub redis_image: String,
    /// Namespace of the Prometheus that scrapes the servers' metrics port.
    pub monitoring_namespace: String,
    /// Namespace of the cluster DNS pods.
    pub dns_namespace: String,
    /// Value of the `k8s-app` label of the cluster DNS pods.
    pub dns_app_label: String,
    /// Cluster DNS domain used in the Redis URL.
    pub cluster_domain: String,
    /// The fixed non-root UID and GID of every tenant pod.
    pub run_as_user: i64,
    /// Field manager of every server-side apply.
    pub field_manager: String,
    /// How often a healthy Tenant is reconciled again (drift correction, rotation checks).
    pub resync: Duration,
}

/// The default server image; pinned to a release tag, never `latest`.
pub const DEFAULT_SERVER_IMAGE: &str = "ghcr.io/neurallog/neurallog:0.1.0";
/// The default Redis image; pinned to a patch release tag.
pub const DEFAULT_REDIS_IMAGE: &str = "docker.io/library/redis:7.4.2-alpine";
/// The UID/GID of every NeuralLog container, also baked into the images.
pub const DEFAULT_UID: i64 = 10001;
/// Field manager name of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "neurallog-operator";

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            server_image: DEFAULT_SERVER_IMAGE.into(),
            redis_image: DEFAULT_REDIS_IMAGE.into(),
            monitoring_namespace: "monitoring".into(),
            dns_namespace: "kube-system".into(),
            dns_app_label: "kube-dns".into(),
            cluster_domain: "cluster.local".into(),
            run_as_user: DEFAULT_UID,
            field_manager: FIELD_MANAGER.into(),
            resync: Duration::from_secs(300),
        }
    }
}
