//! The Pod Security Standards `restricted` profile as a checker.
//!
//! The tenant namespaces enforce `restricted` through Pod Security Admission, so a pod that
//! fails it would be refused by the API server and the tenant would never run. This module
//! implements the profile's rules (Kubernetes documentation "Pod Security Standards", the
//! baseline controls plus the restricted ones, policy version `latest`) so that tests and CI
//! can check every rendered pod and every pod in `deploy/` offline, without a cluster.
//! Each [`Violation`] names the control it breaks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use serde_json::Value;

/// A broken rule: which control, where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The control's name in the Pod Security Standards.
    pub control: &'static str,
    /// Path of the offending field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Baseline "Sysctls": the only sysctls a pod may set.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Baseline "SELinux": the allowed SELinux types.
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// Restricted "Volume Types": the only volume sources allowed.
const VOLUME_TYPES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, control: &'static str, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation {
            control,
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Every container of a pod (init, regular, ephemeral) with its field path.
fn containers(spec: &PodSpec) -> Vec<(String, Option<&SecurityContext>, Vec<i32>)> {
    let mut out = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let ports = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port)
            .collect();
        out.push((
            format!("spec.initContainers[{i}]"),
            c.security_context.as_ref(),
            ports,
        ));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let ports = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port)
            .collect();
        out.push((
            format!("spec.containers[{i}]"),
            c.security_context.as_ref(),
            ports,
        ));
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let ports = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port)
            .collect();
        out.push((
            format!("spec.ephemeralContainers[{i}]"),
            c.security_context.as_ref(),
            ports,
        ));
    }
    out
}

/// Checks one pod spec (and its annotations, for the AppArmor control) against `restricted`.
pub fn check_restricted(spec: &PodSpec, annotations: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut c = Checker { out: Vec::new() };
    let psc = spec.security_context.as_ref();

    // Baseline: Host Namespaces.
    for (field, v) in [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ] {
        if v == Some(true) {
            c.fail(
                "Host Namespaces",
                format!("spec.{field}"),
                "must be unset or false",
            );
        }
    }
    // Baseline: HostProcess (pod level).
    if psc
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true)
    {
        c.fail(
            "HostProcess",
            "spec.securityContext.windowsOptions.hostProcess",
            "must be false",
        );
    }
    // Baseline: HostPath Volumes; Restricted: Volume Types.
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let json = serde_json::to_value(v).unwrap_or(Value::Null);
        let kinds: Vec<&String> = json
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        for k in kinds {
            if k == "hostPath" {
                c.fail(
                    "HostPath Volumes",
                    format!("spec.volumes[{i}]"),
                    "hostPath is forbidden",
                );
            } else if !VOLUME_TYPES.contains(&k.as_str()) {
                c.fail(
                    "Volume Types",
                    format!("spec.volumes[{i}]"),
                    format!("{k} is not allowed"),
                );
            }
        }
    }
    // Baseline: Sysctls, SELinux, Seccomp, AppArmor at pod level.
    if let Some(s) = psc {
        for sc in s.sysctls.iter().flatten() {
            if !SAFE_SYSCTLS.contains(&sc.name.as_str()) {
                c.fail(
                    "Sysctls",
                    "spec.securityContext.sysctls",
                    format!("{} is not safe", sc.name),
                );
            }
        }
        if let Some(se) = &s.se_linux_options {
            selinux(&mut c, "spec.securityContext", se);
        }
        if let Some(a) = &s.app_armor_profile
            && a.type_ == "Unconfined"
        {
            c.fail(
                "AppArmor",
                "spec.securityContext.appArmorProfile",
                "must not be Unconfined",
            );
        }
    }
    for (k, v) in annotations {
        if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && v != "runtime/default"
            && !v.starts_with("localhost/")
        {
            c.fail(
                "AppArmor",
                format!("metadata.annotations[{k}]"),
                "must be runtime/default or localhost/*",
            );
        }
    }

    let pod_non_root = psc.and_then(|s| s.run_as_non_root) == Some(true);
    let pod_seccomp = psc
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    if pod_seccomp == Some("Unconfined") {
        c.fail(
            "Seccomp",
            "spec.securityContext.seccompProfile",
            "must not be Unconfined",
        );
    }
    // Restricted: Running as Non-root user (pod level).
    if psc.and_then(|s| s.run_as_user) == Some(0) {
        c.fail(
            "Running as Non-root user",
            "spec.securityContext.runAsUser",
            "must not be 0",
        );
    }

    for (path, sc, host_ports) in containers(spec) {
        // Baseline: Host Ports.
        if host_ports.iter().any(|p| *p != 0) {
            c.fail(
                "Host Ports",
                format!("{path}.ports"),
                "hostPort must be unset or 0",
            );
        }
        let Some(sc) = sc else {
            c.fail(
                "Privilege Escalation",
                format!("{path}.securityContext"),
                "missing",
            );
            if !pod_non_root {
                c.fail(
                    "Running as Non-root",
                    format!("{path}.securityContext"),
                    "missing",
                );
            }
            if !matches!(pod_seccomp, Some("RuntimeDefault" | "Localhost")) {
                c.fail("Seccomp", format!("{path}.securityContext"), "missing");
            }
            c.fail(
                "Capabilities",
                format!("{path}.securityContext"),
                "must drop ALL",
            );
            continue;
        };
        let p = format!("{path}.securityContext");
        // Baseline: Privileged Containers, HostProcess, /proc Mount Type.
        if sc.privileged == Some(true) {
            c.fail(
                "Privileged Containers",
                format!("{p}.privileged"),
                "must be false",
            );
        }
        if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
            c.fail(
                "HostProcess",
                format!("{p}.windowsOptions.hostProcess"),
                "must be false",
            );
        }
        if let Some(pm) = &sc.proc_mount
            && pm != "Default"
        {
            c.fail(
                "/proc Mount Type",
                format!("{p}.procMount"),
                "must be Default",
            );
        }
        if let Some(se) = &sc.se_linux_options {
            selinux(&mut c, &p, se);
        }
        if let Some(a) = &sc.app_armor_profile
            && a.type_ == "Unconfined"
        {
            c.fail(
                "AppArmor",
                format!("{p}.appArmorProfile"),
                "must not be Unconfined",
            );
        }
        // Restricted: Privilege Escalation.
        if sc.allow_privilege_escalation != Some(false) {
            c.fail(
                "Privilege Escalation",
                format!("{p}.allowPrivilegeEscalation"),
                "must be false",
            );
        }
        // Restricted: Running as Non-root.
        match sc.run_as_non_root {
            Some(false) => c.fail(
                "Running as Non-root",
                format!("{p}.runAsNonRoot"),
                "must not be false",
            ),
            None if !pod_non_root => c.fail(
                "Running as Non-root",
                format!("{p}.runAsNonRoot"),
                "must be true here or on the pod",
            ),
            _ => {}
        }
        // Restricted: Running as Non-root user.
        if sc.run_as_user == Some(0) {
            c.fail(
                "Running as Non-root user",
                format!("{p}.runAsUser"),
                "must not be 0",
            );
        }
        // Restricted: Seccomp.
        match sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) {
            Some("RuntimeDefault" | "Localhost") => {}
            Some(other) => c.fail(
                "Seccomp",
                format!("{p}.seccompProfile"),
                format!("{other} is not allowed"),
            ),
            None if matches!(pod_seccomp, Some("RuntimeDefault" | "Localhost")) => {}
            None => c.fail(
                "Seccomp",
                format!("{p}.seccompProfile"),
                "must be RuntimeDefault or Localhost",
            ),
        }
        // Restricted: Capabilities.
        let caps = sc.capabilities.as_ref();
        let drops_all = caps
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            c.fail(
                "Capabilities",
                format!("{p}.capabilities.drop"),
                "must include ALL",
            );
        }
        for add in caps.and_then(|c| c.add.as_ref()).into_iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                c.fail(
                    "Capabilities",
                    format!("{p}.capabilities.add"),
                    format!("{add} may not be added"),
                );
            }
        }
    }
    c.out
}

fn selinux(c: &mut Checker, path: &str, se: &k8s_openapi::api::core::v1::SELinuxOptions) {
    if !SELINUX_TYPES.contains(&se.type_.as_deref().unwrap_or("")) {
        c.fail(
            "SELinux",
            format!("{path}.seLinuxOptions.type"),
            "type is not allowed",
        );
    }
    if se.user.is_some() || se.role.is_some() {
        c.fail(
            "SELinux",
            format!("{path}.seLinuxOptions"),
            "user and role must be unset",
        );
    }
}

/// A pod template's annotations and spec.
pub type PodTemplate = (BTreeMap<String, String>, PodSpec);

/// The pod template of a workload document (`Pod`, `Deployment`, `StatefulSet`, `DaemonSet`,
/// `ReplicaSet`, `Job`, `CronJob`), as annotations and a typed spec; `None` for other kinds.
pub fn pod_template(doc: &Value) -> Option<Result<PodTemplate, serde_json::Error>> {
    let kind = doc.get("kind")?.as_str()?;
    let template = match kind {
        "Pod" => doc.clone(),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            doc.pointer("/spec/template")?.clone()
        }
        "CronJob" => doc.pointer("/spec/jobTemplate/spec/template")?.clone(),
        _ => return None,
    };
    let annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let spec = template.get("spec").cloned().unwrap_or(Value::Null);
    Some((|| {
        Ok((
            serde_json::from_value(annotations)?,
            serde_json::from_value(spec)?,
        ))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Vec<&'static str> {
        let spec: PodSpec = serde_json::from_value(spec).expect("pod spec");
        let mut v: Vec<_> = check_restricted(&spec, &BTreeMap::new())
            .into_iter()
            .map(|v| v.control)
            .collect();
        v.dedup();
        v
    }

    fn good_container() -> Value {
        json!({"name": "c", "image": "x:1", "securityContext": {
            "allowPrivilegeEscalation": false, "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}})
    }

    #[test]
    fn a_hardened_pod_passes() {
        assert!(pod(json!({"containers": [good_container()]})).is_empty());
    }

    #[test]
    fn each_control_catches_its_violation() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"hostNetwork": true, "containers": [good_container()]}),
                "Host Namespaces",
            ),
            (
                json!({"containers": [good_container()], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
                "HostPath Volumes",
            ),
            (
                json!({"containers": [good_container()], "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}),
                "Volume Types",
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "privileged": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}),
                "Privileged Containers",
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}),
                "Privilege Escalation",
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}),
                "Running as Non-root",
            ),
            (
                json!({"securityContext": {"runAsUser": 0}, "containers": [good_container()]}),
                "Running as Non-root user",
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}}]}),
                "Seccomp",
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}),
                "Capabilities",
            ),
            (
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}], "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}),
                "Host Ports",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, "containers": [good_container()]}),
                "Sysctls",
            ),
        ];
        for (spec, control) in cases {
            assert_eq!(pod(spec.clone()), vec![control], "for {spec}");
        }
    }

    #[test]
    fn pod_level_settings_cover_containers() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        });
        assert!(pod(spec).is_empty());
    }

    #[test]
    fn finds_the_template_of_each_workload_kind() {
        let d = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [good_container()]}}}}}});
        let (_, spec) = pod_template(&d).expect("workload").expect("parses");
        assert_eq!(spec.containers.len(), 1);
        assert!(pod_template(&json!({"kind": "Service"})).is_none());
    }
}
