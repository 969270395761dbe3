//! Retention (spec §6.3): where a tenant's settings are kept, and the background purge that
//! enforces them.
//!
//! Settings are one metadata record per tenant (`Scope::Tenant`, space `settings`, key
//! `retention`, JSON), so they live and die with the tenant on every backend. The purge task
//! wakes every `NEURALLOG_PURGE_INTERVAL_SECONDS`, and for every tenant and log with a period
//! removes whole expired blocks through [`Storage::purge_before`], at most
//! [`MAX_BLOCKS_PER_CYCLE`] per cycle in all (a long backlog is worked off over several
//! cycles, so a purge never monopolises the store). What it removed is counted in
//! [`PurgeMetrics`] and recorded in the tenant's audit trail (action `retention.purge`, with
//! the number of entries removed as the event's count).

use std::sync::Arc;
use std::time::Duration;

use neurallog_core::retention::RetentionSettings;
use neurallog_core::time::now_ms;
use neurallog_core::{LogName, TenantId};
use neurallog_storage::{PurgeOutcome, Scope, Storage, StorageError};
use prometheus_client::metrics::counter::Counter;

use crate::audit::AuditSink;
use crate::audit::chain::AuditEvent;

/// Metadata space and key of a tenant's retention settings.
pub const SETTINGS_SPACE: &str = "settings";
pub const RETENTION_KEY: &str = "retention";
/// Metadata space (global scope) whose keys name the tenants the purge visits besides the
/// server's own tenant (the tenant registry).
pub const TENANTS_SPACE: &str = "tenants";
/// Most blocks one purge cycle removes, over all tenants and logs.
pub const MAX_BLOCKS_PER_CYCLE: usize = 1000;
/// Most blocks one `purge_before` call removes.
const MAX_BLOCKS_PER_CALL: usize = 128;

const DAY_MS: i64 = 86_400_000;

/// The tenant's settings; none stored reads as empty.
pub async fn load(
    storage: &dyn Storage,
    tenant: &TenantId,
) -> Result<RetentionSettings, StorageError> {
    match storage
        .meta_get(Scope::Tenant(tenant), SETTINGS_SPACE, RETENTION_KEY)
        .await?
    {
        None => Ok(RetentionSettings::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::corrupt(format!("stored retention settings: {e}"))),
    }
}

/// Replaces the tenant's settings (removes the record when they are empty).
pub async fn save(
    storage: &dyn Storage,
    tenant: &TenantId,
    settings: &RetentionSettings,
) -> Result<(), StorageError> {
    if settings == &RetentionSettings::default() {
        storage
            .meta_delete(Scope::Tenant(tenant), SETTINGS_SPACE, RETENTION_KEY)
            .await?;
        return Ok(());
    }
    let bytes = serde_json::to_vec(settings).map_err(StorageError::internal)?;
    storage
        .meta_put(Scope::Tenant(tenant), SETTINGS_SPACE, RETENTION_KEY, bytes)
        .await
}

/// Counters of the purge task, exported on `/metrics` as `neurallog_retention_*`.
#[derive(Clone, Debug, Default)]
pub struct PurgeMetrics {
    /// Cycles completed.
    pub cycles: Counter,
    /// Blocks and entries removed.
    pub blocks: Counter,
    pub entries: Counter,
    /// Storage calls that failed (the cycle goes on with the next log).
    pub errors: Counter,
}

impl PurgeMetrics {
    /// Adds the counters to the server's registry.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "retention_purge_cycles",
            "Retention purge cycles completed",
            self.cycles.clone(),
        );
        registry.register(
            "retention_purged_blocks",
            "Expired blocks removed by retention",
            self.blocks.clone(),
        );
        registry.register(
            "retention_purged_entries",
            "Expired entries removed by retention",
            self.entries.clone(),
        );
        registry.register(
            "retention_purge_errors",
            "Retention storage calls that failed",
            self.errors.clone(),
        );
    }
}

/// One purge of one log that removed something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeReport {
    pub tenant: TenantId,
    pub log: LogName,
    /// Events older than this (epoch ms) were due.
    pub cutoff_ms: i64,
    pub days: u64,
    pub outcome: PurgeOutcome,
}

/// The audit record of one purge: the system did it, to the log's events before the cut-off.
pub fn audit_event(r: &PurgeReport) -> AuditEvent {
    AuditEvent {
        ts: now_ms(),
        tenant: Some(r.tenant.to_string()),
        principal: Some("system:retention".into()),
        auth_method: None,
        action: "retention.purge".into(),
        resource: format!(
            "/logs/{}?until={}&days={}&blocks={}",
            r.log, r.cutoff_ms, r.days, r.outcome.blocks
        ),
        outcome: "success".into(),
        status: 200,
        client: None,
        request_id: format!("purge-{}-{}", r.cutoff_ms, r.log),
        count: r.outcome.entries,
    }
}

/// What the server shares with the retention routes and the purge task.
#[derive(Debug)]
pub struct Retention {
    /// `NEURALLOG_RETENTION_DAYS`: the default of tenants without one.
    pub server_default_days: Option<u64>,
    pub metrics: Arc<PurgeMetrics>,
}

/// The background purge.
#[derive(Clone, Debug)]
pub struct Purger {
    pub storage: Arc<dyn Storage>,
    /// The server's own tenant (always visited).
    pub tenant: TenantId,
    pub server_default_days: Option<u64>,
    pub metrics: Arc<PurgeMetrics>,
    pub audit: AuditSink,
    pub max_blocks_per_cycle: usize,
}

impl Purger {
    /// Tenants to visit: the server's own and those of the registry.
    async fn tenants(&self) -> Vec<TenantId> {
        let mut out = vec![self.tenant.clone()];
        match self.storage.meta_list(Scope::Global, TENANTS_SPACE).await {
            Ok(records) => {
                for (k, _) in records {
                    if let Ok(t) = TenantId::new(k)
                        && !out.contains(&t)
                    {
                        out.push(t);
                    }
                }
            }
            Err(e) => {
                self.metrics.errors.inc();
                tracing::warn!(error = %e, "retention: cannot list tenants");
            }
        }
        out
    }

    /// One cycle: returns the blocks removed.
    pub async fn cycle(&self) -> u64 {
        let mut budget = self.max_blocks_per_cycle.max(1);
        let mut removed = 0;
        'tenants: for tenant in self.tenants().await {
            let (settings, logs) = match (
                load(self.storage.as_ref(), &tenant).await,
                self.storage.list_logs(&tenant).await,
            ) {
                (Ok(s), Ok(l)) => (s, l),
                (Err(e), _) | (_, Err(e)) => {
                    self.metrics.errors.inc();
                    tracing::warn!(%tenant, error = %e, "retention: cannot read settings or logs");
                    continue;
                }
            };
            for log in logs {
                let Some(days) = settings.days_for(&log, self.server_default_days) else {
                    continue;
                };
                let cutoff_ms = now_ms().saturating_sub((days as i64).saturating_mul(DAY_MS));
                let mut total = PurgeOutcome::default();
                loop {
                    let max = budget.min(MAX_BLOCKS_PER_CALL);
                    match self
                        .storage
                        .purge_before(&tenant, &log, cutoff_ms, max)
                        .await
                    {
                        Ok(o) => {
                            budget -= (o.blocks as usize).min(budget);
                            total.blocks += o.blocks;
                            total.entries += o.entries;
                            total.more = o.more;
                            if !o.more || budget == 0 {
                                break;
                            }
                        }
                        Err(e) => {
                            self.metrics.errors.inc();
                            tracing::warn!(%tenant, %log, error = %e, "retention: purge failed");
                            break;
                        }
                    }
                }
                if total.blocks > 0 {
                    removed += total.blocks;
                    self.metrics.blocks.inc_by(total.blocks);
                    self.metrics.entries.inc_by(total.entries);
                    let report = PurgeReport {
                        tenant: tenant.clone(),
                        log: log.clone(),
                        cutoff_ms,
                        days,
                        outcome: total,
                    };
                    tracing::info!(
                        %tenant, %log, days, blocks = total.blocks, entries = total.entries,
                        "retention: purged expired events"
                    );
                    self.audit
                        .record(Some(tenant.clone()), audit_event(&report))
                        .await;
                }
                if budget == 0 {
                    break 'tenants; // the rest waits for the next cycle
                }
            }
        }
        self.metrics.cycles.inc();
        removed
    }

    /// Runs a cycle every `interval` until the task is aborted.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.cycle().await;
            }
        })
    }
}
