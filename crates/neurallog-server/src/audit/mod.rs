//! The audit trail (spec §7): who did what to which resource, with what outcome.
//!
//! - [`chain`]: the record format, its hash chain and verification.
//! - [`layer`]: the middleware that turns every authenticated, refused or administrative call
//!   into an [`AuditEvent`], and the request id it gives every call.
//! - [`AuditSink`]: the handle requests use; [`AuditSink::start`] runs the one writer task of
//!   the process, which batches records per scope, chains them, appends them to the storage's
//!   audit sequence (`Scope::Tenant`, or `Scope::Global` for system actions and for refusals
//!   that have no tenant) and then stores the chain's head.
//!
//! Successful ingest calls are aggregated: the writer folds the successful `logs.append` calls
//! of one principal on one log from one address into one event per second whose `count` says
//! how many calls it stands for. Every other call, and every failed or refused append, is one
//! event of its own.

pub mod chain;
pub mod layer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use neurallog_core::TenantId;
use neurallog_storage::{Scope, Storage, StorageError};
use rand::RngCore;
use tokio::sync::{mpsc, oneshot};

pub use chain::AuditEvent;

/// Metadata space holding the newest hash of each chain of a scope.
pub const HEADS_SPACE: &str = "audit-heads";
/// The action whose successful calls are aggregated.
pub const AGGREGATED_ACTION: &str = "logs.append";
/// Records appended in one storage call at most.
const MAX_BATCH: usize = 1024;
/// Events waiting for the writer at most; senders wait beyond it (back-pressure, not loss).
const QUEUE: usize = 16_384;

enum Msg {
    Event(Option<TenantId>, Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
    /// The tenant was deleted with its audit sequence: start a new chain for it.
    Forget(TenantId),
}

/// Sends events to the writer task.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<Msg>>,
}

impl AuditSink {
    /// A sink that records nothing (the benchmark's unauthenticated mode).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Starts the writer task of this process.
    pub fn start(storage: Arc<dyn Storage>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut id = [0u8; 6];
        rand::rng().fill_bytes(&mut id);
        let writer = Writer {
            storage,
            process: chain::hex(&id),
            chains: HashMap::new(),
            epoch: 0,
            aggregated: HashMap::new(),
        };
        tokio::spawn(writer.run(rx));
        Self { tx: Some(tx) }
    }

    /// Queues an event; `tenant` None puts it in the global sequence.
    pub async fn record(&self, tenant: Option<TenantId>, event: AuditEvent) {
        if let Some(tx) = &self.tx
            && tx.send(Msg::Event(tenant, Box::new(event))).await.is_err()
        {
            tracing::error!("audit writer has stopped: an audit event was not recorded");
        }
    }

    /// Waits until every event queued before this call is stored.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Forgets the chain of a deleted tenant.
    pub async fn forget(&self, tenant: TenantId) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Forget(tenant)).await;
        }
    }
}

type AggregateKey = (
    Option<TenantId>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

struct Writer {
    storage: Arc<dyn Storage>,
    /// Random per process, so that replicas sharing a store never write the same chain.
    process: String,
    /// Per scope: chain id and newest hash.
    chains: HashMap<Option<TenantId>, (String, [u8; 32])>,
    epoch: u64,
    aggregated: HashMap<AggregateKey, AuditEvent>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut pending = Vec::new();
            let mut waiters = Vec::new();
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else {
                        let rest = self.take_aggregated();
                        self.write(rest).await;
                        return;
                    };
                    self.take(msg, &mut pending, &mut waiters).await;
                    while pending.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(msg) => self.take(msg, &mut pending, &mut waiters).await,
                            Err(_) => break,
                        }
                    }
                }
                _ = tick.tick() => pending = self.take_aggregated(),
            }
            self.write(pending).await;
            for w in waiters {
                let _ = w.send(());
            }
        }
    }

    async fn take(
        &mut self,
        msg: Msg,
        pending: &mut Vec<(Option<TenantId>, AuditEvent)>,
        waiters: &mut Vec<oneshot::Sender<()>>,
    ) {
        match msg {
            Msg::Event(tenant, event) => {
                let event = *event;
                if event.action == AGGREGATED_ACTION && event.outcome == "success" {
                    let key = (
                        tenant.clone(),
                        event.principal.clone(),
                        event.resource.clone(),
                        event.client.clone(),
                        event.auth_method.clone(),
                    );
                    self.aggregated
                        .entry(key)
                        .and_modify(|e| e.count += event.count)
                        .or_insert(event);
                } else {
                    pending.push((tenant, event));
                }
            }
            Msg::Flush(done) => {
                pending.extend(self.take_aggregated());
                waiters.push(done);
            }
            Msg::Forget(tenant) => {
                // Write what is queued for the old chain first, then start a new one.
                pending.extend(self.take_aggregated());
                let batch = std::mem::take(pending);
                self.write(batch).await;
                self.chains.remove(&Some(tenant));
            }
        }
    }

    fn take_aggregated(&mut self) -> Vec<(Option<TenantId>, AuditEvent)> {
        let mut out: Vec<_> = self
            .aggregated
            .drain()
            .map(|((tenant, ..), event)| (tenant, event))
            .collect();
        out.sort_by_key(|(_, e)| e.ts);
        out
    }

    async fn write(&mut self, events: Vec<(Option<TenantId>, AuditEvent)>) {
        let mut by_scope: BTreeMap<Option<TenantId>, Vec<AuditEvent>> = BTreeMap::new();
        for (tenant, event) in events {
            by_scope.entry(tenant).or_default().push(event);
        }
        for (tenant, events) in by_scope {
            self.write_scope(tenant, events).await;
        }
    }

    async fn write_scope(&mut self, tenant: Option<TenantId>, events: Vec<AuditEvent>) {
        let n = events.len();
        let (chain_id, mut last) = match self.chains.get(&tenant) {
            Some(c) => c.clone(),
            None => {
                self.epoch += 1;
                (format!("{}-{}", self.process, self.epoch), chain::GENESIS)
            }
        };
        let mut records = Vec::with_capacity(n);
        for e in events {
            let (bytes, h) = chain::seal(&chain_id, &last, e);
            records.push(bytes);
            last = h;
        }
        let scope = match &tenant {
            Some(t) => Scope::Tenant(t),
            None => Scope::Global,
        };
        if let Err(e) = self.append_with_retry(scope, records).await {
            tracing::error!(error = %e, records = n, "audit records could not be stored and are lost");
            return;
        }
        let head = chain::hex(&last);
        if let Err(e) = self
            .storage
            .meta_put(scope, HEADS_SPACE, &chain_id, head.into_bytes())
            .await
        {
            // The chain stays verifiable: a head that lags only leaves the newest records
            // unanchored until the next batch stores a newer head.
            tracing::warn!(error = %e, "audit chain head not stored");
        }
        self.chains.insert(tenant, (chain_id, last));
    }

    async fn append_with_retry(
        &self,
        scope: Scope<'_>,
        records: Vec<Vec<u8>>,
    ) -> Result<u64, StorageError> {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            match self.storage.audit_append(scope, records.clone()).await {
                Ok(seq) => return Ok(seq),
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %e, "audit append failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
