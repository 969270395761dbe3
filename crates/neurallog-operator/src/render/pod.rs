//! The hardening every tenant pod and container gets (guide: "Container Security").
//!
//! One place builds the security contexts, so no workload can forget a setting: non-root with
//! a fixed UID/GID, read-only root filesystem with an `emptyDir` at `/tmp`, no privilege
//! escalation, every capability dropped, the runtime's default seccomp profile, no service
//! account token, and requests and limits on every container. Together these satisfy the Pod
//! Security Standards `restricted` profile that the namespace enforces.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, PodSecurityContext, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::crd::ComputeResources;

/// Name of the writable scratch volume mounted at `/tmp`.
pub const TMP_VOLUME: &str = "tmp";

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// Pod-level security context: non-root, fixed UID/GID, volumes group-owned by the same GID.
pub fn pod_security_context(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

/// Container-level security context (guide: "Security Context", "Read-Only Filesystem").
pub fn container_security_context(uid: i64) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// The `/tmp` scratch volume: memory-backed and bounded so it cannot fill the node.
pub fn tmp_volume() -> Volume {
    Volume {
        name: TMP_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("64Mi".into())),
        }),
        ..Volume::default()
    }
}

/// Mount of [`tmp_volume`] at `/tmp`.
pub fn tmp_mount() -> VolumeMount {
    VolumeMount {
        name: TMP_VOLUME.into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    }
}

/// Requests and limits of a container (guide: "Resource Limits").
pub fn resources(r: &ComputeResources) -> ResourceRequirements {
    let amounts = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(amounts(&r.requests.cpu, &r.requests.memory)),
        limits: Some(amounts(&r.limits.cpu, &r.limits.memory)),
        ..ResourceRequirements::default()
    }
}
