//! `neurallog-operator run`: wires the client, leader election, the controller and the
//! health/metrics server together.
//!
//! The HTTP endpoints start at once on every replica (a standby replica is healthy and ready
//! to take over); the controller starts only on the Lease holder. Owned Deployments,
//! StatefulSets, NetworkPolicies, Roles and RoleBindings are watched (filtered by the
//! `neurallog.io/managed-by` label), so a hand edit triggers a reconcile that puts the object
//! back; everything else is corrected by the periodic resync.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tracing::{error, info};

use crate::config::OperatorConfig;
use crate::crd::Tenant;
use crate::leader::{self, LeaseSettings};
use crate::reconcile::{self, Context};
use crate::telemetry::{self, Health, Metrics};

/// Settings of the `run` command.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// Rendering and apply settings.
    pub operator: OperatorConfig,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub http_addr: SocketAddr,
    /// Namespace of the leader Lease (the operator's own namespace).
    pub lease_namespace: String,
    /// This replica's identity.
    pub identity: String,
}

/// Runs the operator until a shutdown signal, or until leadership is lost (an error, so the
/// process restarts as a candidate).
pub async fn run(settings: RunSettings) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let health = Health::default();
    let http = tokio::spawn(telemetry::serve(
        settings.http_addr,
        metrics.clone(),
        health.clone(),
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    ));
    health.ready.store(true, Ordering::Relaxed);

    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.lease_namespace);
    let lease = LeaseSettings {
        name: "neurallog-operator-leader".into(),
        identity: settings.identity.clone(),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(5),
    };
    info!(identity = %lease.identity, "waiting for the leader lease");
    tokio::select! {
        () = leader::acquire(&leases, &lease) => {}
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    metrics.leader.set(1);
    info!(identity = %lease.identity, "leading");

    let ctx = Arc::new(Context {
        client: client.clone(),
        config: settings.operator.clone(),
        metrics: metrics.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "neurallog-operator".into(),
                instance: Some(settings.identity.clone()),
            },
        ),
        clock: Arc::new(k8s_openapi::jiff::Timestamp::now),
    });
    let owned = watcher::Config::default().labels("neurallog.io/managed-by=neurallog-operator");
    let controller = Controller::new(
        Api::<Tenant>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Deployment>::all(client.clone()), owned.clone())
    .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
    .owns(Api::<NetworkPolicy>::all(client.clone()), owned.clone())
    .owns(Api::<Role>::all(client.clone()), owned.clone())
    .owns(Api::<RoleBinding>::all(client.clone()), owned)
    .shutdown_on_signal()
    .run(reconcile::reconcile, reconcile::error_policy, ctx)
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "controller event");
        }
    });
    let outcome = tokio::select! {
        () = controller => Ok(()),
        () = leader::hold(&leases, &lease) => {
            error!("leader lease lost; exiting so that another replica takes over");
            Err(anyhow::anyhow!("leader lease lost"))
        }
    };
    metrics.leader.set(0);
    http.abort();
    outcome
}
