//! The reconciler: the thin IO loop around [`crate::render`] and [`crate::status`].
//!
//! One reconcile of a Tenant, in request order:
//! 1. the finalizer `neurallog.io/finalizer` is added first (kube-runtime's finalizer helper),
//!    so a Tenant is never deleted before its namespace is gone;
//! 2. the Namespace is applied, because everything else lives in it;
//! 3. each Secret is read; a missing one is generated and created, an existing value is never
//!    overwritten, except the API key and Redis password when a rotation is due;
//! 4. every other rendered object is applied with server-side apply under one field manager,
//!    forced, which also puts back anything someone changed by hand (drift); objects the spec
//!    no longer wants are deleted when the spec's generation changed;
//! 5. the status is computed from what the applies returned and written only if it changed;
//! 6. events are published for secrets created or rotated, phase changes and failures.
//!
//! On deletion the status becomes `Terminating`, the namespace is deleted, and the finalizer
//! is removed only once the namespace is gone. A failed reconcile records the error in the
//! status and an event, counts it by kind, and is retried by [`error_policy`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Client, Resource as _, ResourceExt as _};
use serde_json::json;
use tracing::{info, warn};

use crate::config::OperatorConfig;
use crate::crd::{FINALIZER, InvalidSpec, Tenant, TenantPhase, TenantSpec, TenantStatus};
use crate::render::{self, Object, RenderInputs};
use crate::secrets::SecretKind;
use crate::status::{self, Observed};
use crate::telemetry::Metrics;

/// Source of the current time, injected so tests can move it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Everything a reconcile needs besides the Tenant.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Operator settings.
    pub config: OperatorConfig,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Event publisher.
    pub recorder: Recorder,
    /// Current time.
    pub clock: Clock,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes api call failed: {0}")]
    Kube(#[from] kube::Error),
    /// The Tenant breaks a rule the schema should have enforced.
    #[error(transparent)]
    Invalid(#[from] InvalidSpec),
    /// An object did not convert between its typed and dynamic forms.
    #[error("object conversion failed: {0}")]
    Serde(#[from] serde_json::Error),
    /// The namespace is still being deleted; the finalizer stays until it is gone.
    #[error("namespace {0} is still terminating")]
    CleanupPending(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short label for metrics and retry decisions.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Invalid(_) => "invalid_spec",
            Self::Serde(_) => "serialization",
            Self::CleanupPending(_) => "cleanup_pending",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.kind(),
                _ => "finalizer",
            },
        }
    }
}

/// Whether the API key and Redis password are due for rotation at `now`. The first
/// generation is not a rotation: with no recorded rotation nothing is due.
pub fn rotation_due(spec: &TenantSpec, last: Option<&Time>, now: Timestamp) -> bool {
    match next_rotation(spec, last) {
        Some(at) => now >= at,
        None => false,
    }
}

/// When the next rotation is due, if rotation is on and a previous one is recorded.
pub fn next_rotation(spec: &TenantSpec, last: Option<&Time>) -> Option<Timestamp> {
    let r = spec.secret_rotation.as_ref()?;
    let last = last?;
    let interval = SignedDuration::from_hours(24 * i64::from(r.interval_days));
    last.0.checked_add(interval).ok()
}

/// Optional objects removed when the spec stops asking for them. The backup volume is not
/// listed: it holds the archives and outlives a schedule change.
const PRUNABLE: &[(&str, &str)] = &[
    ("PodDisruptionBudget", "neurallog-server"),
    ("CronJob", "neurallog-backup"),
    ("ServiceAccount", "neurallog-backup"),
    ("NetworkPolicy", "default-deny-all"),
    ("NetworkPolicy", "allow-internal-traffic"),
    ("NetworkPolicy", "allow-api-access"),
    ("NetworkPolicy", "allow-dns-egress"),
    ("NetworkPolicy", "allow-monitoring-scrape"),
    ("NetworkPolicy", "allow-custom-rules"),
];

/// Entry point called by the controller for every change of a Tenant or of an owned object.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    let started = std::time::Instant::now();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Event::Apply(t) => apply(&t, &ctx).await,
            Event::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        ctx.metrics.failed(e.kind());
    }
    result
}

/// Retry policy: a pending cleanup is checked again soon, an invalid spec waits for an edit,
/// anything else (usually a transient API error) retries after a short delay.
pub fn error_policy(tenant: Arc<Tenant>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(tenant = %tenant.name_any(), error = %error, kind = error.kind(), "reconcile failed");
    match error.kind() {
        "cleanup_pending" => Action::requeue(Duration::from_secs(5)),
        "invalid_spec" => Action::requeue(Duration::from_secs(300)),
        _ => Action::requeue(Duration::from_secs(15)),
    }
}

fn time(ts: Timestamp) -> Time {
    Time(ts)
}

async fn publish(
    ctx: &Context,
    tenant: &Tenant,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &tenant.object_ref(&())).await {
        warn!(tenant = %tenant.name_any(), error = %e, "event not published");
    }
}

async fn patch_status(
    ctx: &Context,
    tenant: &Tenant,
    status: &TenantStatus,
) -> Result<(), kube::Error> {
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let body = json!({ "status": status });
    api.patch_status(
        &tenant.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

/// Server-side apply of one rendered object; returns the object as the API server stored it.
pub async fn apply_object(
    client: &Client,
    manager: &str,
    object: &Object,
) -> Result<DynamicObject, Error> {
    let ar = object.api_resource();
    let api: Api<DynamicObject> = match (object.is_namespaced(), object.meta().namespace.as_deref())
    {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    let body = serde_json::to_value(object)?;
    let pp = PatchParams::apply(manager).force();
    Ok(api.patch(object.name(), &pp, &Patch::Apply(&body)).await?)
}

async fn delete_if_present(client: &Client, ns: &str, kind: &str, name: &str) -> Result<(), Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &prunable_resource(kind));
    ignore_not_found(
        api.delete(name, &DeleteParams::background())
            .await
            .map(|_| ()),
    )
}

fn prunable_resource(kind: &str) -> kube::core::ApiResource {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::core::ApiResource;
    match kind {
        "PodDisruptionBudget" => ApiResource::erase::<PodDisruptionBudget>(&()),
        "CronJob" => ApiResource::erase::<CronJob>(&()),
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        _ => ApiResource::erase::<NetworkPolicy>(&()),
    }
}

fn ignore_not_found(r: Result<(), kube::Error>) -> Result<(), Error> {
    match r {
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        other => Ok(other?),
    }
}

/// Brings the cluster to the Tenant's desired state; records failures in the status.
async fn apply(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    match apply_inner(tenant, ctx).await {
        Ok(action) => Ok(action),
        Err(e) => {
            let now = time((ctx.clock)());
            let observed = Observed {
                error: Some(e.to_string()),
                ..Observed::default()
            };
            let previous = tenant.status.as_ref();
            let last = previous.and_then(|s| s.last_secret_rotation.clone());
            let mut status = status::compute(tenant, &observed, previous, last, &now);
            // NB: a failed run has not brought this generation about; keeping the previous
            // value makes the retry prune as a first apply of the generation would.
            status.observed_generation = previous.and_then(|p| p.observed_generation);
            if previous != Some(&status)
                && let Err(pe) = patch_status(ctx, tenant, &status).await
            {
                warn!(tenant = %tenant.name_any(), error = %pe, "failure status not written");
            }
            publish(
                ctx,
                tenant,
                EventType::Warning,
                "ReconcileFailed",
                "Reconcile",
                e.to_string(),
            )
            .await;
            Err(e)
        }
    }
}

async fn apply_inner(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let ns = tenant.namespace_name();
    let now = (ctx.clock)();
    let previous = tenant.status.as_ref();
    let manager = ctx.config.field_manager.as_str();

    // The namespace first: every other object, the secrets included, lives in it. Rendering
    // here also validates the Tenant before any write.
    let first = render::render(tenant, &ctx.config, &RenderInputs::default())?;
    let Some(namespace) = first.first() else {
        return Ok(Action::requeue(ctx.config.resync));
    };
    apply_object(&ctx.client, manager, namespace).await?;

    // Secrets: created once, never overwritten, replaced only by a due rotation. The rotation
    // clock is the secrets' own `generated-at` annotation (the status copy is only a report),
    // so a rotation whose later steps failed is not repeated on the retry.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut existing = Vec::new();
    for kind in SecretKind::ALL {
        existing.push((kind, secrets.get_opt(kind.location().0).await?));
    }
    let last = existing
        .iter()
        .filter(|(kind, _)| kind.rotates())
        .filter_map(|(_, s)| s.as_ref())
        .filter_map(|s| s.annotations().get(render::secret::GENERATED_AT))
        .filter_map(|v| v.parse::<Timestamp>().ok())
        .min()
        .map(time)
        .or_else(|| previous.and_then(|s| s.last_secret_rotation.clone()));
    let due = rotation_due(&tenant.spec, last.as_ref(), now);
    let stamp = now.to_string();
    let mut created = Vec::new();
    let mut rotated = Vec::new();
    for (kind, current) in existing {
        let (secret_name, key) = kind.location();
        let Object::Secret(mut fresh) =
            render::secret::secret(tenant, kind, &kind.generate(), &stamp)
        else {
            continue;
        };
        match current {
            None => match secrets.create(&PostParams::default(), &fresh).await {
                Ok(_) => created.push(secret_name),
                // NB: another writer created it between the read and the create; keep theirs.
                Err(kube::Error::Api(st)) if st.is_already_exists() => {}
                Err(e) => return Err(e.into()),
            },
            Some(current) => {
                let has_value = current
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .is_some_and(|v| !v.0.is_empty());
                if has_value && !(due && kind.rotates()) {
                    continue;
                }
                // NB: replace with the read resourceVersion, so a concurrent change fails
                // with a conflict instead of being lost.
                fresh.metadata.resource_version = current.metadata.resource_version.clone();
                secrets
                    .replace(secret_name, &PostParams::default(), &fresh)
                    .await?;
                rotated.push(secret_name);
            }
        }
    }
    for s in &created {
        ctx.metrics.action("secret_created");
        info!(tenant = %name, secret = %s, "secret created");
    }
    for s in &rotated {
        ctx.metrics.action("secret_rotated");
        info!(tenant = %name, secret = %s, "secret rotated");
    }
    if !created.is_empty() {
        let note = format!("generated {}", created.join(", "));
        publish(
            ctx,
            tenant,
            EventType::Normal,
            "SecretsCreated",
            "CreateSecrets",
            note,
        )
        .await;
    }
    if due && !rotated.is_empty() {
        let note = format!("rotated {}; server and redis restart", rotated.join(", "));
        publish(
            ctx,
            tenant,
            EventType::Normal,
            "SecretsRotated",
            "RotateSecrets",
            note,
        )
        .await;
    }
    let rotated_at = match last {
        Some(last) if created.is_empty() && !due => last,
        _ => time(now),
    };

    // The pod templates carry the rotation time, so a rotation rolls the server and Redis.
    let inputs = RenderInputs {
        rotated_at: Some(rotated_at.0.to_string()),
    };
    let objects = render::render(tenant, &ctx.config, &inputs)?;
    let rest = objects.get(1..).unwrap_or_default();

    // Everything else, in render order; the workloads' answers feed the status.
    let mut observed = Observed {
        secrets_ready: true,
        ..Observed::default()
    };
    for object in rest {
        let stored = apply_object(&ctx.client, manager, object).await?;
        match object {
            Object::Deployment(_) => {
                let d: Deployment = serde_json::from_value(serde_json::to_value(&stored)?)?;
                observed.server = Some(status::from_deployment(&d));
            }
            Object::StatefulSet(_) => {
                let s: StatefulSet = serde_json::from_value(serde_json::to_value(&stored)?)?;
                observed.redis = Some(status::from_stateful_set(&s));
            }
            _ => {}
        }
    }

    // Prune what the spec no longer asks for, only when the spec changed.
    if previous.and_then(|s| s.observed_generation) != tenant.metadata.generation {
        for (kind, obj_name) in PRUNABLE {
            if !objects
                .iter()
                .any(|o| o.kind() == *kind && o.name() == *obj_name)
            {
                delete_if_present(&ctx.client, &ns, kind, obj_name).await?;
            }
        }
    }

    let status = status::compute(tenant, &observed, previous, Some(rotated_at), &time(now));
    if previous != Some(&status) {
        patch_status(ctx, tenant, &status).await?;
    }
    let old_phase = previous.and_then(|s| s.phase);
    if old_phase != status.phase {
        let from = old_phase.unwrap_or(TenantPhase::Pending).as_str();
        let to = status.phase.unwrap_or_default().as_str();
        publish(
            ctx,
            tenant,
            EventType::Normal,
            "PhaseChanged",
            "Reconcile",
            format!("{from} -> {to}"),
        )
        .await;
    }

    let mut wait = ctx.config.resync;
    if let Some(at) = next_rotation(&tenant.spec, status.last_secret_rotation.as_ref()) {
        let until = at.duration_since(now);
        if let Ok(until) = Duration::try_from(until) {
            wait = wait.min(until.max(Duration::from_secs(1)));
        }
    }
    Ok(Action::requeue(wait))
}

/// Removes the tenant's namespace; succeeds only once it is gone.
async fn cleanup(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let ns = tenant.namespace_name();
    let previous = tenant.status.clone().unwrap_or_default();
    if previous.phase != Some(TenantPhase::Terminating) {
        let status = TenantStatus {
            phase: Some(TenantPhase::Terminating),
            ..previous
        };
        patch_status(ctx, tenant, &status).await?;
        publish(
            ctx,
            tenant,
            EventType::Normal,
            "Deleting",
            "DeleteNamespace",
            format!("deleting namespace {ns}"),
        )
        .await;
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.delete(&ns, &DeleteParams::background()).await {
        Ok(either) => {
            ctx.metrics.action("namespace_deleted");
            if either.is_left() {
                return Err(Error::CleanupPending(ns));
            }
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(s)) if s.is_not_found() => {
            info!(tenant = %tenant.name_any(), namespace = %ns, "namespace gone, releasing tenant");
            Ok(Action::await_change())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
