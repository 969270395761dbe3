//! The `Tenant` custom resource (`neurallog.io/v1`, cluster-scoped).
//!
//! A Tenant is the unit of isolation of the security guide ("Multi-Tenant Isolation"): the
//! operator turns one Tenant into one namespace with its own Redis, server, network policies,
//! RBAC and secrets. The Rust types here are the single source of the CRD's schema: the
//! structural OpenAPI schema, its bounds and its CEL rules are all derived from them, printed by
//! `neurallog-operator crd` and committed as `deploy/crd.yaml` (a test fails when the file is
//! stale). The spec keeps the field names of the original NeuralLog operator (`displayName`,
//! `server`, `redis`, `networkPolicy`, ...) and adds what the guide needs (TLS, auth, secret
//! rotation, retention, backups).
//!
//! Validation lives in two places on purpose: the schema (so the API server refuses a bad
//! Tenant before it is stored) and [`TenantSpec::validate`] (so `render` refuses it offline and
//! the reconciler never acts on a Tenant that an old CRD let through).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};
use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyIngressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every NeuralLog resource.
pub const GROUP: &str = "neurallog.io";
/// Finalizer that keeps a Tenant until its namespace has been removed.
pub const FINALIZER: &str = "neurallog.io/finalizer";
/// Longest tenant name: the namespace `tenant-<name>` must stay a 63-character DNS label.
pub const MAX_NAME_LEN: usize = 56;

/// Environment variables the operator sets itself; a Tenant may not override them, so a
/// user-supplied `env` can never replace a secret reference with an inline value.
pub const RESERVED_ENV: &[&str] = &[
    "PORT",
    "NEURALLOG_BIND",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "TENANT_ID",
    "API_KEY",
    "NEURALLOG_MASTER_KEY",
    "NEURALLOG_SYSTEM_KEY",
    "TLS_CERT",
    "TLS_KEY",
    "TLS_CLIENT_CA",
    "NODE_ENV",
    "METRICS_PORT",
];

/// Redis directives the operator owns: allowing them in `spec.redis.config` would let a Tenant
/// switch off protected mode, the password, persistence or the disabled commands.
pub const RESERVED_REDIS_DIRECTIVES: &[&str] = &[
    "bind",
    "port",
    "protected-mode",
    "requirepass",
    "masterauth",
    "rename-command",
    "dir",
    "appendonly",
    "appendfsync",
    "daemonize",
    "include",
    "loadmodule",
    "enable-debug-command",
    "enable-module-command",
    "enable-protected-configs",
    "aclfile",
    "user",
];

const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
const DNS_SUBDOMAIN: &str = "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
/// A key inside a Secret (also a file name when the Secret is mounted).
const SECRET_KEY: &str = r"^[-._a-zA-Z0-9]+$";
const QUANTITY: &str = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$";
/// An image reference with an explicit tag or digest, never `:latest` (guide: "Image Pinning").
const IMAGE: &str = r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9]((:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})|(@sha256:[a-f0-9]{64}))$";
/// Five-field cron expression (what a CronJob accepts), or one of the `@` macros.
const CRON: &str = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$";

/// Desired state of one tenant.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "neurallog.io",
    version = "v1",
    kind = "Tenant",
    plural = "tenants",
    singular = "tenant",
    shortname = "nlt",
    category = "neurallog",
    status = "TenantStatus",
    derive = "PartialEq",
    doc = "A NeuralLog tenant: an isolated namespace with its own Redis, server, network policies, RBAC and secrets",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 56 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("a tenant name must be a DNS label of at most 56 characters (it names the namespace tenant-<name>)")
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Human-readable name shown in tools.
    #[schemars(length(min = 1, max = 128))]
    pub display_name: String,
    /// Free text about the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Namespace-wide budget, enforced with a ResourceQuota and a LimitRange.
    #[serde(default)]
    pub resources: TenantResources,
    /// The NeuralLog server Deployment.
    #[serde(default)]
    pub server: ServerSpec,
    /// The tenant's dedicated Redis.
    #[serde(default)]
    pub redis: RedisSpec,
    /// Network isolation of the tenant namespace.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// HTTPS for the server's API, from a Secret in the tenant namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Token authentication in addition to API keys, and abuse protection limits.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Automatic rotation of the API key and the Redis password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation: Option<SecretRotationSpec>,
    /// How long log events are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Scheduled encrypted backups (`neurallog backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

/// Namespace-wide resource budget of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantResources {
    /// Total CPU limit of the namespace (Kubernetes quantity).
    #[serde(default = "default_quota_cpu")]
    #[schemars(regex(pattern = QUANTITY))]
    pub cpu: String,
    /// Total memory limit of the namespace.
    #[serde(default = "default_quota_memory")]
    #[schemars(regex(pattern = QUANTITY))]
    pub memory: String,
    /// Total persistent storage that the namespace may claim.
    #[serde(default = "default_quota_storage")]
    #[schemars(regex(pattern = QUANTITY))]
    pub storage: String,
    /// Most pods the namespace may run.
    #[serde(default = "default_quota_pods")]
    #[schemars(range(min = 1, max = 500))]
    pub pods: i32,
}

impl Default for TenantResources {
    fn default() -> Self {
        Self {
            cpu: default_quota_cpu(),
            memory: default_quota_memory(),
            storage: default_quota_storage(),
            pods: default_quota_pods(),
        }
    }
}

fn default_quota_cpu() -> String {
    "4".into()
}
fn default_quota_memory() -> String {
    "8Gi".into()
}
fn default_quota_storage() -> String {
    "50Gi".into()
}
fn default_quota_pods() -> i32 {
    20
}

/// CPU and memory of one container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU (Kubernetes quantity, e.g. `500m`).
    #[schemars(regex(pattern = QUANTITY))]
    pub cpu: String,
    /// Memory (Kubernetes quantity, e.g. `512Mi`).
    #[schemars(regex(pattern = QUANTITY))]
    pub memory: String,
}

/// Requests and limits of one container; both are always set (guide: "Resource Limits").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// What the scheduler reserves.
    pub requests: ResourceAmounts,
    /// The ceiling the kubelet enforces.
    pub limits: ResourceAmounts,
}

impl ComputeResources {
    /// The guide's example values: 100m/128Mi requested, 500m/512Mi at most.
    pub fn guide_default() -> Self {
        Self {
            requests: ResourceAmounts {
                cpu: "100m".into(),
                memory: "128Mi".into(),
            },
            limits: ResourceAmounts {
                cpu: "500m".into(),
                memory: "512Mi".into(),
            },
        }
    }
}

impl Default for ComputeResources {
    fn default() -> Self {
        Self::guide_default()
    }
}

/// The NeuralLog server of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Number of server pods; above 1 a PodDisruptionBudget keeps one available. 0 shuts
    /// the server down (guide: "Incident Containment → Service Shutdown").
    #[serde(default = "default_server_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    /// Image with a tag or digest (never `latest`); the operator's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE), length(max = 512))]
    pub image: Option<String>,
    /// Container requests and limits.
    #[serde(default)]
    pub resources: ComputeResources,
    /// Extra environment variables. The operator's own variables cannot be overridden, and a
    /// variable that names a secret must come from a Secret, not a literal value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = Rule::new("self.all(e, !(e.name in ['PORT', 'NEURALLOG_BIND', 'REDIS_URL', 'REDIS_PASSWORD', 'TENANT_ID', 'API_KEY', 'NEURALLOG_MASTER_KEY', 'NEURALLOG_SYSTEM_KEY', 'TLS_CERT', 'TLS_KEY', 'TLS_CLIENT_CA', 'NODE_ENV', 'METRICS_PORT']))").message("env may not override a variable that the operator sets"),
        validation = Rule::new("self.all(e, !has(e.value) || !e.name.matches('(SECRET|PASSWORD|TOKEN|_KEY$)'))").message("a secret-bearing variable must use valueFrom.secretKeyRef, never an inline value")
    )]
    pub env: Vec<ServerEnvVar>,
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            replicas: default_server_replicas(),
            image: None,
            resources: ComputeResources::default(),
            env: Vec::new(),
        }
    }
}

fn default_server_replicas() -> i32 {
    2
}

/// An extra environment variable of the server. Like a Kubernetes `EnvVar`, with bounds on the
/// name and value so the API server can price the CEL rules that check them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerEnvVar {
    /// Variable name (a C identifier).
    #[schemars(
        regex(pattern = "^[A-Za-z_][A-Za-z0-9_]*$"),
        length(min = 1, max = 128)
    )]
    pub name: String,
    /// Literal value; not allowed for secret-bearing names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Source of the value (`secretKeyRef`, `configMapKeyRef`, `fieldRef`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

impl From<&ServerEnvVar> for EnvVar {
    fn from(e: &ServerEnvVar) -> Self {
        EnvVar {
            name: e.name.clone(),
            value: e.value.clone(),
            value_from: e.value_from.clone(),
        }
    }
}

/// The tenant's dedicated Redis (guide: "Dedicated Redis").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// 1 runs Redis, 0 stops it (e.g. during a restore). A single primary: NeuralLog's server
    /// writes to one Redis, and replicas without replication set up would split the data.
    #[serde(default = "default_redis_replicas")]
    #[schemars(range(min = 0, max = 1))]
    pub replicas: i32,
    /// Image with a tag or digest; the operator's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE), length(max = 512))]
    pub image: Option<String>,
    /// Container requests and limits.
    #[serde(default)]
    pub resources: ComputeResources,
    /// Persistent volume of the append-only file.
    #[serde(default)]
    pub storage: StorageSpec,
    /// TLS between the server and Redis, from a Secret in the tenant namespace. Redis then
    /// listens only on TLS and the server connects with `rediss://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTlsSpec>,
    /// Extra `redis.conf` directives (e.g. `maxmemory: 256mb`). Directives that would weaken
    /// the security settings the operator owns are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(
        validation = Rule::new("!['bind', 'port', 'protected-mode', 'requirepass', 'masterauth', 'rename-command', 'dir', 'appendonly', 'appendfsync', 'daemonize', 'include', 'loadmodule', 'enable-debug-command', 'enable-module-command', 'enable-protected-configs', 'aclfile', 'user'].exists(d, d in self)").message("this Redis directive is managed by the operator"),
        validation = Rule::new("self.all(k, !self[k].contains('\\n') && !self[k].contains('\\r'))").message("values are single lines")
    )]
    #[schemars(extend("additionalProperties" = {"type": "string", "maxLength": 512}, "maxProperties" = 64))]
    pub config: BTreeMap<String, String>,
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            replicas: default_redis_replicas(),
            image: None,
            resources: ComputeResources::default(),
            storage: StorageSpec::default(),
            tls: None,
            config: BTreeMap::new(),
        }
    }
}

fn default_redis_replicas() -> i32 {
    1
}

/// Redis TLS material (guide: "Redis TLS").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisTlsSpec {
    /// Secret with the Redis certificate, its key and the CA that signed it.
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(max = 253))]
    pub secret_name: String,
    /// Key of the PEM certificate.
    #[serde(default = "default_cert_key")]
    #[schemars(regex(pattern = SECRET_KEY), length(min = 1, max = 253))]
    pub cert_key: String,
    /// Key of the PEM private key.
    #[serde(default = "default_key_key")]
    #[schemars(regex(pattern = SECRET_KEY), length(min = 1, max = 253))]
    pub key_key: String,
    /// Key of the PEM CA bundle the server verifies Redis with.
    #[serde(default = "default_ca_key")]
    #[schemars(regex(pattern = SECRET_KEY), length(min = 1, max = 253))]
    pub ca_key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// A persistent volume claim's size and class.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = QUANTITY))]
    pub size: String,
    /// StorageClass; the cluster default when unset. Choose an encrypted class (guide:
    /// "Encrypted Volumes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_SUBDOMAIN))]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

fn default_storage_size() -> String {
    "1Gi".into()
}

/// Network isolation (guide: "Network Security").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Render the policies. Turning this off removes the tenant's network isolation and is
    /// reported as a warning condition.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Namespaces whose pods may call the API on port 3030.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = DNS_LABEL)))]
    pub allowed_namespaces: Vec<String>,
    /// Extra ingress rules for the server pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ingress_rules: Vec<NetworkPolicyIngressRule>,
    /// Extra egress rules for the server pods (e.g. to an OIDC issuer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress_rules: Vec<NetworkPolicyEgressRule>,
    /// Incident containment (guide: "Incident Containment → Network Isolation"): closes the
    /// API to every namespace and drops the custom rules, leaving only in-namespace traffic,
    /// DNS and the metrics scrape, until it is set back to false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate: bool,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_namespaces: Vec::new(),
            ingress_rules: Vec::new(),
            egress_rules: Vec::new(),
            isolate: false,
        }
    }
}

fn default_true() -> bool {
    true
}

/// HTTPS for the API from a Secret in the tenant namespace (guide: "TLS").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret holding the certificate chain and key (e.g. one written by cert-manager).
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(max = 253))]
    pub secret_name: String,
    /// Key of the PEM certificate chain in the Secret.
    #[serde(default = "default_cert_key")]
    #[schemars(length(min = 1, max = 253))]
    pub cert_key: String,
    /// Key of the PEM private key in the Secret.
    #[serde(default = "default_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key_key: String,
    /// Key of a CA bundle in the same Secret; enables mutual TLS when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub client_ca_key: Option<String>,
}

fn default_cert_key() -> String {
    "tls.crt".into()
}
fn default_key_key() -> String {
    "tls.key".into()
}

/// A key in a Secret of the tenant namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Token authentication and abuse-protection limits (spec §4, §7).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// JWT validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// OIDC discovery and token introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
    /// Per-key request rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub rate_limit_rps: Option<u32>,
    /// Per-key burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub rate_limit_burst: Option<u32>,
    /// Failed authentications from one address within 60 s before it is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub auth_failure_limit: Option<u32>,
    /// How long a blocked address stays blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86_400))]
    pub auth_block_seconds: Option<u32>,
}

/// Accepted JWT signature algorithms; fixed by configuration, never by the token.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)] // NB: the names are the JOSE algorithm identifiers
pub enum JwtAlgorithm {
    /// HMAC SHA-256.
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSA PKCS#1 SHA-256.
    RS256,
    /// RSA PKCS#1 SHA-384.
    RS384,
    /// RSA PKCS#1 SHA-512.
    RS512,
    /// RSA-PSS SHA-256.
    PS256,
    /// ECDSA P-256.
    ES256,
    /// ECDSA P-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// Whether the algorithm needs a shared secret rather than a public key.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }
}

/// JWT validation settings (spec §4.2).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.algorithms.exists(a, a.startsWith('HS')) || has(self.secretRef)").message("HMAC algorithms need secretRef"),
    validation = Rule::new("self.algorithms.all(a, a.startsWith('HS')) || has(self.publicKeyRef) || has(self.jwksUrl)").message("public-key algorithms need publicKeyRef or jwksUrl")
)]
pub struct JwtSpec {
    /// Accepted algorithms.
    #[schemars(length(min = 1, max = 10))]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Required `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub issuer: Option<String>,
    /// Required `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub audience: Option<String>,
    /// JWKS endpoint (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https://"), length(max = 2048))]
    pub jwks_url: Option<String>,
    /// HMAC secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_ref: Option<SecretKeyRef>,
}

/// OAuth2 / OIDC settings (spec §4.3).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.introspectionUrl) || (has(self.clientId) && has(self.clientSecretRef))").message("introspection needs clientId and clientSecretRef")
)]
pub struct OidcSpec {
    /// Issuer used for discovery (https only).
    #[schemars(regex(pattern = "^https://"), length(max = 2048))]
    pub issuer_url: String,
    /// RFC 7662 introspection endpoint (https only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https://"), length(max = 2048))]
    pub introspection_url: Option<String>,
    /// Client id for introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub client_id: Option<String>,
    /// Client secret for introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
}

/// Automatic secret rotation (guide: "Secret Rotation").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationSpec {
    /// Days between rotations of the API key and the Redis password.
    #[schemars(range(min = 1, max = 365))]
    pub interval_days: u32,
}

/// Log retention (guide: "Data Retention").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Days a log event is kept before the server's purge removes it.
    #[schemars(range(min = 1, max = 3650))]
    pub days: u32,
}

/// Scheduled backups (guide: "Encrypted Backups", "Backup Retention").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule of the backup CronJob.
    #[schemars(regex(pattern = CRON), length(max = 128))]
    pub schedule: String,
    /// How many backups to keep.
    #[serde(default = "default_backup_keep")]
    #[schemars(range(min = 1, max = 365))]
    pub keep: u32,
    /// Volume that holds the archives.
    #[serde(default)]
    pub storage: StorageSpec,
}

fn default_backup_keep() -> u32 {
    7
}

/// Lifecycle phase shown by `kubectl get tenants`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum TenantPhase {
    /// Accepted, nothing applied yet.
    #[default]
    Pending,
    /// Objects applied, workloads not yet ready.
    Provisioning,
    /// Every component ready.
    Running,
    /// The last reconcile failed; see the conditions.
    Failed,
    /// Being deleted; the namespace is being removed.
    Terminating,
}

impl TenantPhase {
    /// The phase as written in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Provisioning => "Provisioning",
            Self::Running => "Running",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
        }
    }
}

/// Observed state of one workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Replicas the spec asks for.
    pub desired_replicas: i32,
    /// Replicas that pass their readiness probe.
    pub ready_replicas: i32,
    /// Replicas running the current pod template.
    pub updated_replicas: i32,
}

/// Observed state of the tenant's workloads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentsStatus {
    /// The server Deployment.
    #[serde(default)]
    pub server: ComponentStatus,
    /// The Redis StatefulSet.
    #[serde(default)]
    pub redis: ComponentStatus,
}

/// Observed state of a tenant, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TenantPhase>,
    /// The tenant's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `Ready` and one condition per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replica counts per workload.
    #[serde(default)]
    pub components: ComponentsStatus,
    /// When the API key and Redis password were last generated or rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_secret_rotation: Option<Time>,
}

/// A spec that the schema should have refused; carries the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant: {field}: {reason}")]
pub struct InvalidSpec {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Whether an environment variable's name says it carries a secret.
pub fn is_secret_env_name(name: &str) -> bool {
    name.contains("SECRET")
        || name.contains("PASSWORD")
        || name.contains("TOKEN")
        || name.ends_with("_KEY")
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Tenant {
    /// Name of the namespace that holds every object of this tenant.
    pub fn namespace_name(&self) -> String {
        format!("tenant-{}", kube::ResourceExt::name_any(self))
    }

    /// The rules of the schema that rendering relies on, checked again offline.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        let name = kube::ResourceExt::name_any(self);
        if !is_dns_label(&name) || name.len() > MAX_NAME_LEN {
            return Err(invalid(
                "metadata.name",
                format!("must be a DNS label of at most {MAX_NAME_LEN} characters"),
            ));
        }
        self.spec.validate()
    }
}

impl TenantSpec {
    /// Checks the invariants that protect the rendered security settings.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        if self.display_name.is_empty() {
            return Err(invalid("spec.displayName", "must not be empty"));
        }
        if !(0..=20).contains(&self.server.replicas) {
            return Err(invalid("spec.server.replicas", "must be between 0 and 20"));
        }
        if !(0..=1).contains(&self.redis.replicas) {
            return Err(invalid("spec.redis.replicas", "must be 0 or 1"));
        }
        for (i, e) in self.server.env.iter().enumerate() {
            if RESERVED_ENV.contains(&e.name.as_str()) {
                return Err(invalid(
                    format!("spec.server.env[{i}]"),
                    format!("{} is set by the operator", e.name),
                ));
            }
            if e.value.is_some() && is_secret_env_name(&e.name) {
                return Err(invalid(
                    format!("spec.server.env[{i}]"),
                    format!("{} must come from a secretKeyRef", e.name),
                ));
            }
        }
        for (k, v) in &self.redis.config {
            if RESERVED_REDIS_DIRECTIVES.contains(&k.to_ascii_lowercase().as_str()) {
                return Err(invalid(
                    format!("spec.redis.config.{k}"),
                    "managed by the operator",
                ));
            }
            let word = k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !word || v.contains('\n') || v.contains('\r') {
                return Err(invalid(
                    format!("spec.redis.config.{k}"),
                    "directives are lowercase words and values single lines",
                ));
            }
        }
        for (i, ns) in self.network_policy.allowed_namespaces.iter().enumerate() {
            if !is_dns_label(ns) {
                return Err(invalid(
                    format!("spec.networkPolicy.allowedNamespaces[{i}]"),
                    "must be a namespace name",
                ));
            }
        }
        if let Some(jwt) = &self.auth.jwt {
            if jwt.algorithms.is_empty() {
                return Err(invalid(
                    "spec.auth.jwt.algorithms",
                    "at least one algorithm",
                ));
            }
            if jwt.algorithms.iter().any(|a| a.is_hmac()) && jwt.secret_ref.is_none() {
                return Err(invalid(
                    "spec.auth.jwt.secretRef",
                    "HMAC algorithms need it",
                ));
            }
        }
        Ok(())
    }
}

/// The CRD as YAML, exactly as committed in `deploy/crd.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    let crd = Tenant::crd();
    let body = serde_yaml::to_string(&crd)?;
    Ok(format!(
        "# Generated by `neurallog-operator crd` from crates/neurallog-operator/src/crd.rs.\n\
         # Do not edit: change the Rust types and regenerate.\n{body}"
    ))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Test tenants built from the type, so every test starts from a valid object.
    use super::*;
    use kube::api::ObjectMeta;

    impl Tenant {
        /// A minimal valid tenant named `acme`.
        pub fn test() -> Self {
            let mut t = Tenant::new(
                "acme",
                TenantSpec {
                    display_name: "Acme Corp".into(),
                    description: None,
                    resources: TenantResources::default(),
                    server: ServerSpec::default(),
                    redis: RedisSpec::default(),
                    network_policy: NetworkPolicySpec {
                        allowed_namespaces: vec!["ingress-nginx".into(), "apps".into()],
                        ..NetworkPolicySpec::default()
                    },
                    tls: None,
                    auth: AuthSpec::default(),
                    secret_rotation: None,
                    retention: None,
                    backup: None,
                },
            );
            t.metadata = ObjectMeta {
                name: Some("acme".into()),
                uid: Some("6f1c1f2e-0000-4000-8000-000000000001".into()),
                generation: Some(1),
                ..ObjectMeta::default()
            };
            t
        }

        /// The same tenant with TLS from the `tls-certs` secret.
        pub fn with_tls(mut self) -> Self {
            self.spec.tls = Some(TlsSpec {
                secret_name: "tls-certs".into(),
                cert_key: "cert".into(),
                key_key: "key".into(),
                client_ca_key: None,
            });
            self
        }

        /// The same tenant with TLS between the server and Redis.
        pub fn with_redis_tls(mut self) -> Self {
            self.spec.redis.tls = Some(RedisTlsSpec {
                secret_name: "redis-tls".into(),
                cert_key: "tls.crt".into(),
                key_key: "tls.key".into(),
                ca_key: "ca.crt".into(),
            });
            self
        }

        /// The same tenant with a nightly backup.
        pub fn with_backup(mut self) -> Self {
            self.spec.backup = Some(BackupSpec {
                schedule: "0 3 * * *".into(),
                keep: 7,
                storage: StorageSpec::default(),
            });
            self
        }

        /// The same tenant with rotation every `days` days.
        pub fn with_rotation(mut self, days: u32) -> Self {
            self.spec.secret_rotation = Some(SecretRotationSpec {
                interval_days: days,
            });
            self
        }

        /// The same tenant with `n` server replicas.
        pub fn with_replicas(mut self, n: i32) -> Self {
            self.spec.server.replicas = n;
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::cel::Validator;
    use serde_json::{Value, json};

    fn schema() -> Value {
        let crd = Tenant::crd();
        let v = &crd.spec.versions[0];
        serde_json::to_value(
            v.schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema"),
        )
        .expect("json")
    }

    fn cel_errors(obj: &Value) -> usize {
        match Validator::new().validate(&schema(), obj, None) {
            Ok(()) => 0,
            Err(e) => e.into_vec().len(),
        }
    }

    fn tenant_json() -> Value {
        serde_json::to_value(Tenant::test()).expect("json")
    }

    #[test]
    fn crd_is_cluster_scoped_with_status_and_columns() {
        let crd = Tenant::crd();
        assert_eq!(crd.spec.group, "neurallog.io");
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "Tenant");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let cols: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Phase", "Namespace", "Ready", "Age"]);
    }

    #[test]
    fn schema_requires_display_name_and_bounds_replicas() {
        let s = schema();
        let spec = &s["properties"]["spec"];
        let required: Vec<_> = spec["required"].as_array().expect("required").clone();
        assert!(required.contains(&json!("displayName")));
        let replicas = &spec["properties"]["server"]["properties"]["replicas"];
        assert_eq!(replicas["minimum"].as_f64(), Some(0.0));
        assert_eq!(replicas["maximum"].as_f64(), Some(20.0));
        let redis = &spec["properties"]["redis"]["properties"]["replicas"];
        assert_eq!(redis["maximum"].as_f64(), Some(1.0));
        let phase = &s["properties"]["status"]["properties"]["phase"]["enum"];
        assert_eq!(
            phase,
            &json!([
                "Pending",
                "Provisioning",
                "Running",
                "Failed",
                "Terminating"
            ])
        );
    }

    #[test]
    fn committed_crd_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crd.yaml");
        let committed = std::fs::read_to_string(path).expect("deploy/crd.yaml exists");
        let generated = crd_yaml().expect("crd renders");
        assert!(
            committed == generated,
            "deploy/crd.yaml is stale: run `cargo run -p neurallog-operator -- crd > deploy/crd.yaml`"
        );
    }

    /// Every (sub)schema that carries `x-kubernetes-validations`, with its rules.
    fn rule_sites(v: &Value, out: &mut Vec<(Value, Vec<String>)>) {
        if let Some(rules) = v.get("x-kubernetes-validations").and_then(Value::as_array) {
            let rules = rules
                .iter()
                .filter_map(|r| r["rule"].as_str().map(str::to_owned))
                .collect();
            out.push((v.clone(), rules));
        }
        match v {
            Value::Object(m) => m.values().for_each(|c| rule_sites(c, out)),
            Value::Array(a) => a.iter().for_each(|c| rule_sites(c, out)),
            _ => {}
        }
    }

    #[test]
    fn cel_rules_compile_use_only_self_and_stay_within_the_cost_budget() {
        use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
        let mut sites = Vec::new();
        rule_sites(&schema(), &mut sites);
        let count: usize = sites.iter().map(|(_, r)| r.len()).sum();
        assert_eq!(count, 8, "every rule is analysed");
        for (site, rules) in sites {
            let compiled = compile_schema(&site);
            assert!(
                !compiled.has_errors(),
                "{:?}",
                compiled.compilation_errors()
            );
            for rule in rules {
                // NB: kube-cel's scope check reports comprehension variables (`e` in
                // `self.all(e, ...)`) as unknown; only its cost findings are checked here.
                let warnings: Vec<_> = analyze_rule(&rule, &compiled, ScopeContext::CrdValidation)
                    .into_iter()
                    .filter(|w| w.kind != WarningKind::WrongScope)
                    .collect();
                assert!(warnings.is_empty(), "{rule}: {warnings:?}");
            }
        }
    }

    #[test]
    fn cel_accepts_the_fixture() {
        assert_eq!(cel_errors(&tenant_json()), 0);
    }

    #[test]
    fn cel_refuses_long_or_invalid_names() {
        let mut t = tenant_json();
        t["metadata"]["name"] = json!("x".repeat(57));
        assert!(cel_errors(&t) > 0);
        t["metadata"]["name"] = json!("Bad_Name");
        assert!(cel_errors(&t) > 0);
    }

    #[test]
    fn cel_refuses_overriding_operator_env() {
        let mut t = tenant_json();
        t["spec"]["server"]["env"] = json!([{"name": "API_KEY", "value": "x"}]);
        assert!(cel_errors(&t) > 0);
    }

    #[test]
    fn cel_refuses_inline_secret_env() {
        let mut t = tenant_json();
        t["spec"]["server"]["env"] = json!([{"name": "JWT_SECRET", "value": "hunter2"}]);
        assert!(cel_errors(&t) > 0);
        t["spec"]["server"]["env"] = json!([{"name": "LOG_LEVEL", "value": "debug"}]);
        assert_eq!(cel_errors(&t), 0);
        t["spec"]["server"]["env"] = json!([{"name": "JWT_SECRET", "valueFrom": {"secretKeyRef": {"name": "jwt", "key": "secret"}}}]);
        assert_eq!(cel_errors(&t), 0);
    }

    #[test]
    fn cel_refuses_weakening_redis_directives() {
        let mut t = tenant_json();
        t["spec"]["redis"]["config"] = json!({"protected-mode": "no"});
        assert!(cel_errors(&t) > 0);
        t["spec"]["redis"]["config"] = json!({"maxmemory": "256mb\nrequirepass x"});
        assert!(cel_errors(&t) > 0, "a newline would smuggle in a directive");
        t["spec"]["redis"]["config"] = json!({"maxmemory": "256mb"});
        assert_eq!(cel_errors(&t), 0);
    }

    #[test]
    fn cel_requires_a_key_for_each_jwt_algorithm_family() {
        let mut t = tenant_json();
        t["spec"]["auth"]["jwt"] = json!({"algorithms": ["HS256"]});
        assert!(cel_errors(&t) > 0);
        t["spec"]["auth"]["jwt"] =
            json!({"algorithms": ["HS256"], "secretRef": {"name": "jwt", "key": "secret"}});
        assert_eq!(cel_errors(&t), 0);
        t["spec"]["auth"]["jwt"] = json!({"algorithms": ["RS256"]});
        assert!(cel_errors(&t) > 0);
    }

    #[test]
    fn validate_mirrors_the_schema() {
        assert_eq!(Tenant::test().validate(), Ok(()));
        let mut t = Tenant::test();
        t.spec.server.env.push(ServerEnvVar {
            name: "REDIS_PASSWORD".into(),
            value: Some("x".into()),
            value_from: None,
        });
        assert_eq!(
            t.validate().map_err(|e| e.field),
            Err("spec.server.env[0]".into())
        );
        let mut t = Tenant::test();
        t.spec.server.env.push(ServerEnvVar {
            name: "OAUTH2_CLIENT_SECRET".into(),
            value: Some("x".into()),
            value_from: None,
        });
        assert!(t.validate().is_err());
        let mut t = Tenant::test();
        t.spec.redis.config.insert("requirepass".into(), "x".into());
        assert!(t.validate().is_err());
        let mut t = Tenant::test();
        t.spec.redis.config.insert("REQUIREPASS".into(), "x".into());
        assert!(
            t.validate().is_err(),
            "directives are case-insensitive in Redis"
        );
        let mut t = Tenant::test();
        t.spec
            .redis
            .config
            .insert("maxmemory".into(), "1gb\nrequirepass x".into());
        assert!(t.validate().is_err());
        let mut t = Tenant::test();
        t.metadata.name = Some("a".repeat(57));
        assert!(t.validate().is_err());
        let mut t = Tenant::test();
        t.spec
            .network_policy
            .allowed_namespaces
            .push("Not A Namespace".into());
        assert!(t.validate().is_err());
    }

    #[test]
    fn defaults_fill_an_almost_empty_spec() {
        let t: Tenant = serde_yaml::from_str(
            "apiVersion: neurallog.io/v1\nkind: Tenant\nmetadata: {name: small}\nspec: {displayName: Small}\n",
        )
        .expect("parses");
        assert_eq!(t.spec.server.replicas, 2);
        assert_eq!(t.spec.redis.replicas, 1);
        assert!(t.spec.network_policy.enabled);
        assert_eq!(t.spec.server.resources.limits.memory, "512Mi");
        assert_eq!(t.namespace_name(), "tenant-small");
    }
}
