//! Status computation: what the operator observed → the Tenant's status (pure).
//!
//! The reconciler collects the server Deployment and Redis StatefulSet as the API server
//! returned them from the apply, whether the secrets exist, and whether anything failed;
//! [`compute`] turns that into the phase, the conditions (`Ready` plus one per component) and
//! the replica counts. Keeping it pure means every phase transition is tested without a
//! cluster, and a re-run that observes the same state produces an identical status, which
//! is how the reconciler knows it can skip the status write.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{ComponentStatus, ComponentsStatus, Tenant, TenantPhase, TenantStatus};

/// Condition types written by the operator.
pub mod condition {
    /// Every component is ready.
    pub const READY: &str = "Ready";
    /// The server Deployment has its replicas ready.
    pub const SERVER: &str = "ServerReady";
    /// The Redis StatefulSet has its replicas ready.
    pub const REDIS: &str = "RedisReady";
    /// The tenant's secrets exist.
    pub const SECRETS: &str = "SecretsReady";
    /// The network policies are applied.
    pub const NETWORK: &str = "NetworkIsolated";
}

/// What one reconcile observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The server Deployment as applied, if the apply got that far.
    pub server: Option<ComponentStatus>,
    /// The Redis StatefulSet as applied.
    pub redis: Option<ComponentStatus>,
    /// All three secrets exist.
    pub secrets_ready: bool,
    /// The error that stopped the reconcile, if any.
    pub error: Option<String>,
}

/// Replica counts of a Deployment.
pub fn from_deployment(d: &Deployment) -> ComponentStatus {
    let st = d.status.clone().unwrap_or_default();
    ComponentStatus {
        desired_replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: st.ready_replicas.unwrap_or(0),
        updated_replicas: st.updated_replicas.unwrap_or(0),
    }
}

/// Replica counts of a StatefulSet.
pub fn from_stateful_set(s: &StatefulSet) -> ComponentStatus {
    let st = s.status.clone().unwrap_or_default();
    ComponentStatus {
        desired_replicas: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: st.ready_replicas.unwrap_or(0),
        updated_replicas: st.updated_replicas.unwrap_or(0),
    }
}

fn ready(c: &Option<ComponentStatus>) -> bool {
    c.as_ref().is_some_and(|c| {
        c.ready_replicas >= c.desired_replicas && c.updated_replicas >= c.desired_replicas
    })
}

fn workload_condition(
    kind: &str,
    what: &str,
    c: &Option<ComponentStatus>,
) -> (String, bool, String, String) {
    match c {
        None => (
            kind.into(),
            false,
            "NotApplied".into(),
            format!("the {what} has not been applied"),
        ),
        Some(s) if ready(c) => (
            kind.into(),
            true,
            "ReplicasReady".into(),
            format!(
                "{}/{} {what} replicas ready",
                s.ready_replicas, s.desired_replicas
            ),
        ),
        Some(s) => (
            kind.into(),
            false,
            "ReplicasNotReady".into(),
            format!(
                "{}/{} {what} replicas ready",
                s.ready_replicas, s.desired_replicas
            ),
        ),
    }
}

/// The status that `observed` implies. `previous` keeps each condition's
/// `lastTransitionTime` while its status does not change.
pub fn compute(
    tenant: &Tenant,
    observed: &Observed,
    previous: Option<&TenantStatus>,
    last_secret_rotation: Option<Time>,
    now: &Time,
) -> TenantStatus {
    let generation = tenant.metadata.generation;
    let server_ready = ready(&observed.server);
    let redis_ready = ready(&observed.redis);
    let all_ready =
        server_ready && redis_ready && observed.secrets_ready && observed.error.is_none();

    let network = if tenant.spec.network_policy.enabled && tenant.spec.network_policy.isolate {
        (
            condition::NETWORK.to_owned(),
            true,
            "Quarantined".to_owned(),
            "spec.networkPolicy.isolate is true: the API is closed to every namespace".to_owned(),
        )
    } else if tenant.spec.network_policy.enabled {
        (
            condition::NETWORK.to_owned(),
            true,
            "PoliciesApplied".to_owned(),
            "default-deny and allow policies applied".to_owned(),
        )
    } else {
        (
            condition::NETWORK.to_owned(),
            false,
            "Disabled".to_owned(),
            "spec.networkPolicy.enabled is false: the namespace is not isolated".to_owned(),
        )
    };
    let secrets = if observed.secrets_ready {
        (
            condition::SECRETS.to_owned(),
            true,
            "Present".to_owned(),
            "api-keys, redis-auth and master-key exist".to_owned(),
        )
    } else {
        (
            condition::SECRETS.to_owned(),
            false,
            "Missing".to_owned(),
            "the tenant secrets are not all present".to_owned(),
        )
    };
    let ready_cond = match &observed.error {
        Some(e) => (
            condition::READY.to_owned(),
            false,
            "ReconcileError".to_owned(),
            e.clone(),
        ),
        None if all_ready => (
            condition::READY.to_owned(),
            true,
            "AllComponentsReady".to_owned(),
            "the tenant is serving".to_owned(),
        ),
        None => (
            condition::READY.to_owned(),
            false,
            "Provisioning".to_owned(),
            "waiting for components to become ready".to_owned(),
        ),
    };
    let wanted = [
        ready_cond,
        workload_condition(condition::SERVER, "server", &observed.server),
        workload_condition(condition::REDIS, "redis", &observed.redis),
        secrets,
        network,
    ];
    let conditions = wanted
        .into_iter()
        .map(|(type_, ok, reason, message)| {
            let status = if ok { "True" } else { "False" }.to_owned();
            let since = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_,
                status,
                reason,
                message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect();

    let phase = if observed.error.is_some() {
        TenantPhase::Failed
    } else if all_ready {
        TenantPhase::Running
    } else {
        TenantPhase::Provisioning
    };
    TenantStatus {
        phase: Some(phase),
        namespace: Some(tenant.namespace_name()),
        conditions,
        observed_generation: generation,
        components: ComponentsStatus {
            server: observed.server.clone().unwrap_or_default(),
            redis: observed.redis.clone().unwrap_or_default(),
        },
        last_secret_rotation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("time"))
    }

    fn comp(desired: i32, ready: i32) -> Option<ComponentStatus> {
        Some(ComponentStatus {
            desired_replicas: desired,
            ready_replicas: ready,
            updated_replicas: ready,
        })
    }

    fn cond<'a>(s: &'a TenantStatus, type_: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    #[test]
    fn all_ready_is_running() {
        let o = Observed {
            server: comp(2, 2),
            redis: comp(1, 1),
            secrets_ready: true,
            error: None,
        };
        let s = compute(&Tenant::test(), &o, None, None, &t(100));
        assert_eq!(s.phase, Some(TenantPhase::Running));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(s.namespace.as_deref(), Some("tenant-acme"));
        assert_eq!(s.components.server.ready_replicas, 2);
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "Ready",
                "ServerReady",
                "RedisReady",
                "SecretsReady",
                "NetworkIsolated"
            ]
        );
    }

    #[test]
    fn partial_readiness_is_provisioning() {
        let o = Observed {
            server: comp(2, 1),
            redis: comp(1, 1),
            secrets_ready: true,
            error: None,
        };
        let s = compute(&Tenant::test(), &o, None, None, &t(100));
        assert_eq!(s.phase, Some(TenantPhase::Provisioning));
        assert_eq!(cond(&s, "ServerReady").status, "False");
        assert_eq!(cond(&s, "ServerReady").message, "1/2 server replicas ready");
        assert_eq!(cond(&s, "RedisReady").status, "True");
    }

    #[test]
    fn an_error_is_failed_with_the_message() {
        let o = Observed {
            error: Some("apply failed".into()),
            ..Observed::default()
        };
        let s = compute(&Tenant::test(), &o, None, None, &t(100));
        assert_eq!(s.phase, Some(TenantPhase::Failed));
        assert_eq!(cond(&s, "Ready").reason, "ReconcileError");
        assert_eq!(cond(&s, "Ready").message, "apply failed");
        assert_eq!(cond(&s, "ServerReady").reason, "NotApplied");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let tenant = Tenant::test();
        let o = Observed {
            server: comp(2, 2),
            redis: comp(1, 1),
            secrets_ready: true,
            error: None,
        };
        let first = compute(&tenant, &o, None, None, &t(100));
        let same = compute(&tenant, &o, Some(&first), None, &t(200));
        assert_eq!(
            first, same,
            "a re-run with the same observation changes nothing"
        );
        let degraded = Observed {
            server: comp(2, 1),
            ..o
        };
        let next = compute(&tenant, &degraded, Some(&same), None, &t(300));
        assert_eq!(cond(&next, "Ready").last_transition_time, t(300));
        assert_eq!(cond(&next, "RedisReady").last_transition_time, t(100));
    }

    #[test]
    fn disabled_network_policy_is_reported() {
        let mut tenant = Tenant::test();
        tenant.spec.network_policy.enabled = false;
        let s = compute(&tenant, &Observed::default(), None, None, &t(1));
        assert_eq!(cond(&s, "NetworkIsolated").reason, "Disabled");
    }

    #[test]
    fn replica_counts_come_from_the_workload_status() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3}
        }))
        .expect("deployment");
        assert_eq!(
            from_deployment(&d),
            ComponentStatus {
                desired_replicas: 3,
                ready_replicas: 2,
                updated_replicas: 3
            }
        );
        let s: StatefulSet = serde_json::from_value(serde_json::json!({
            "spec": {"replicas": 1, "selector": {}, "serviceName": "redis", "template": {}}
        }))
        .expect("statefulset");
        assert_eq!(from_stateful_set(&s).ready_replicas, 0);
    }
}
