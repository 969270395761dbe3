//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! The operator runs with two replicas for availability, but two reconcilers writing the same
//! tenant would fight (and could both rotate a secret). Only the replica holding the Lease
//! runs the controller. The holder renews the Lease every `renew_every`; a candidate takes it
//! over only once `renewTime + leaseDurationSeconds` has passed. Every write carries the
//! `resourceVersion` it read, so two candidates racing for an expired Lease cannot both win:
//! the loser gets a conflict. A leader that cannot renew stops (the process exits and is
//! restarted as a candidate) rather than keep reconciling without the Lease.
//!
//! [`decide`] is the pure part, tested on its own.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews, and a candidate retries.
    pub renew_every: Duration,
}

/// What a replica should do with the Lease it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds a valid Lease: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a valid Lease: wait.
    Wait,
}

/// Decides from the Lease's spec (`None` when it does not exist yet).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            match renewed.and_then(|r| r.checked_add(SignedDuration::from_secs(seconds)).ok()) {
                Some(expires) if now < expires => Decision::Wait,
                _ => Decision::Acquire,
            }
        }
    }
}

/// One election round: creates, renews or takes over the Lease. `Ok(true)` when this
/// replica holds the Lease afterwards.
pub async fn try_lead(
    api: &Api<Lease>,
    s: &LeaseSettings,
    now: Timestamp,
) -> Result<bool, kube::Error> {
    let current = api.get_opt(&s.name).await?;
    let decision = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &s.identity,
        now,
    );
    if decision == Decision::Wait {
        return Ok(false);
    }
    let seconds = i32::try_from(s.duration.as_secs()).unwrap_or(15);
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(st)) if st.is_already_exists() || st.is_conflict() => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if decision == Decision::Acquire {
        spec.holder_identity = Some(s.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(seconds);
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(st)) if st.is_conflict() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(api: &Api<Lease>, s: &LeaseSettings) {
    loop {
        match try_lead(api, s, Timestamp::now()).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "lease election round failed"),
        }
        tokio::time::sleep(s.renew_every).await;
    }
}

/// Renews the Lease until a renewal is refused or fails for longer than the Lease lasts;
/// returns then, which means leadership is lost.
pub async fn hold(api: &Api<Lease>, s: &LeaseSettings) {
    let mut last_ok = std::time::Instant::now();
    loop {
        tokio::time::sleep(s.renew_every).await;
        match try_lead(api, s, Timestamp::now()).await {
            Ok(true) => last_ok = std::time::Instant::now(),
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "lease renewal failed");
                if last_ok.elapsed() >= s.duration {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_at: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).expect("ts"))),
            ..LeaseSpec::default()
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("ts")
    }

    #[test]
    fn a_missing_lease_is_acquired() {
        assert_eq!(decide(None, "a", at(100)), Decision::Acquire);
    }

    #[test]
    fn the_holder_renews() {
        assert_eq!(decide(Some(&spec("a", 100)), "a", at(200)), Decision::Renew);
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_respected() {
        assert_eq!(decide(Some(&spec("b", 100)), "a", at(114)), Decision::Wait);
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        assert_eq!(
            decide(Some(&spec("b", 100)), "a", at(115)),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", at(1)),
            Decision::Acquire
        );
    }

    use std::sync::{Arc, Mutex};

    use crate::fake_api::{Fake, serve};

    const LEASE: &str =
        "/apis/coordination.k8s.io/v1/namespaces/neurallog-system/leases/neurallog-operator-leader";

    fn settings(identity: &str) -> LeaseSettings {
        LeaseSettings {
            name: "neurallog-operator-leader".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn two_replicas_elect_one_leader_until_its_lease_expires() {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let (client, server) = serve(fake.clone());
        let api: Api<Lease> = Api::namespaced(client, "neurallog-system");
        let (a, b) = (settings("a"), settings("b"));

        assert!(
            try_lead(&api, &a, at(100)).await.expect("a"),
            "a creates the lease"
        );
        assert!(!try_lead(&api, &b, at(105)).await.expect("b"), "b waits");
        assert!(try_lead(&api, &a, at(110)).await.expect("a renews"));
        assert!(
            !try_lead(&api, &b, at(124)).await.expect("b"),
            "renewed at 110, valid until 125"
        );
        assert!(
            try_lead(&api, &b, at(125)).await.expect("b"),
            "b takes over the expired lease"
        );
        assert!(
            !try_lead(&api, &a, at(126)).await.expect("a"),
            "a has lost it"
        );

        let log = fake.lock().expect("lock").log.clone();
        let create =
            "POST /apis/coordination.k8s.io/v1/namespaces/neurallog-system/leases".to_owned();
        let get = format!("GET {LEASE}");
        let put = format!("PUT {LEASE}");
        assert_eq!(
            log,
            [
                get.clone(),
                create,
                get.clone(),
                get.clone(),
                put.clone(),
                get.clone(),
                get.clone(),
                put,
                get
            ]
        );
        let lease = fake.lock().expect("lock").objects[LEASE].clone();
        assert_eq!(lease["spec"]["holderIdentity"], "b");
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
        server.abort();
    }

    #[tokio::test]
    async fn a_racing_candidate_loses_on_conflict() {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let (client, server) = serve(fake.clone());
        let api: Api<Lease> = Api::namespaced(client, "neurallog-system");
        assert!(try_lead(&api, &settings("a"), at(100)).await.expect("a"));
        // Between b's read and b's write, someone else renews: the write carries a stale
        // resourceVersion and must fail with a conflict, leaving b a candidate.
        fake.lock().expect("lock").fail_once = Some((format!("PUT {LEASE}"), 409));
        assert!(!try_lead(&api, &settings("b"), at(200)).await.expect("b"));
        server.abort();
    }
}
