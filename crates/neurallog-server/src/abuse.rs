//! Abuse protection (spec §7): per-credential request rates and per-address brute-force
//! blocking.
//!
//! Both are in-memory and per process: with several replicas each enforces its own share,
//! which bounds an attacker by `replicas × limit` — good enough to stop floods and password
//! guessing without a round trip to shared storage on every request. Time is passed in by the
//! caller so the rules are tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shards of the maps, so that concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;

/// Entries a shard keeps before idle ones are swept (bounds memory under key churn).
const SWEEP_AT: usize = 4096;

fn shard_of<K: Hash>(k: &K) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    k.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// The rate of one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once from a full bucket.
    pub burst: u32,
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead; `remaining` whole requests are left in the bucket.
    Allowed { limit: u32, remaining: u32 },
    /// Refused: retry after this many seconds (at least 1).
    Limited { limit: u32, retry_after: u64 },
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by credential (key id, token subject) or tenant.
#[derive(Debug)]
pub struct RateLimiter {
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket at `rate`.
    pub fn check(&self, key: &str, rate: Rate, now: Instant) -> RateDecision {
        let limit = rate.burst.max(1);
        let Ok(mut shard) = self.shards[shard_of(&key)].lock() else {
            // A poisoned lock means a panic elsewhere; failing open here would hide nothing
            // the panic did not already break, and failing closed would take the API down.
            return RateDecision::Allowed {
                limit,
                remaining: 0,
            };
        };
        if shard.len() >= SWEEP_AT {
            // A bucket that has refilled completely is the same as no bucket.
            shard.retain(|_, b| {
                let full_after = f64::from(limit) / rate.per_second.max(f64::MIN_POSITIVE);
                now.saturating_duration_since(b.at).as_secs_f64() < full_after
            });
        }
        let b = shard.entry(key.to_owned()).or_insert(Bucket {
            tokens: f64::from(limit),
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_second).min(f64::from(limit));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            RateDecision::Allowed {
                limit,
                remaining: b.tokens.floor() as u32,
            }
        } else {
            let wait = (1.0 - b.tokens) / rate.per_second.max(f64::MIN_POSITIVE);
            RateDecision::Limited {
                limit,
                retry_after: (wait.ceil() as u64).max(1),
            }
        }
    }
}

/// How brute-force blocking behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPolicy {
    /// Failed authentications from one address within [`BlockPolicy::WINDOW`] that block it.
    pub failures: u32,
    /// How long a blocked address stays blocked.
    pub block_for: Duration,
}

impl BlockPolicy {
    /// The window failures are counted in (spec §2: 60 s).
    pub const WINDOW: Duration = Duration::from_secs(60);
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// Counts failed authentications per client address and blocks an address for a cooling-off
/// period once it crosses the limit.
#[derive(Debug)]
pub struct BruteForceGuard {
    policy: BlockPolicy,
    shards: Vec<Mutex<HashMap<IpAddr, Record>>>,
}

impl BruteForceGuard {
    /// A guard with `policy`.
    pub fn new(policy: BlockPolicy) -> Self {
        Self {
            policy,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> BlockPolicy {
        self.policy
    }

    /// Seconds left of `addr`'s block, when it is blocked.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        let shard = self.shards[shard_of(&addr)].lock().ok()?;
        let until = shard.get(&addr)?.blocked_until?;
        (until > now).then(|| until.duration_since(now).as_secs().max(1))
    }

    /// Records a failed authentication; returns `true` when this failure blocked the address.
    pub fn failure(&self, addr: IpAddr, now: Instant) -> bool {
        let Ok(mut shard) = self.shards[shard_of(&addr)].lock() else {
            return false;
        };
        if shard.len() >= SWEEP_AT {
            shard.retain(|_, r| {
                r.blocked_until.is_some_and(|u| u > now)
                    || r.failures
                        .back()
                        .is_some_and(|t| now.saturating_duration_since(*t) < BlockPolicy::WINDOW)
            });
        }
        let r = shard.entry(addr).or_default();
        if r.blocked_until.is_some_and(|u| u > now) {
            return false;
        }
        while r
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= BlockPolicy::WINDOW)
        {
            r.failures.pop_front();
        }
        r.failures.push_back(now);
        if r.failures.len() >= self.policy.failures.max(1) as usize {
            r.failures.clear();
            r.blocked_until = Some(now + self.policy.block_for);
            return true;
        }
        false
    }

    /// Lifts every block (incident response, tests).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 10.0,
        burst: 5,
    };

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(
                l.check("k", RATE, t0),
                RateDecision::Allowed {
                    limit: 5,
                    remaining: 4 - i
                }
            );
        }
        assert_eq!(
            l.check("k", RATE, t0),
            RateDecision::Limited {
                limit: 5,
                retry_after: 1
            }
        );
        // Other keys have buckets of their own.
        assert!(matches!(
            l.check("other", RATE, t0),
            RateDecision::Allowed { .. }
        ));
    }

    #[test]
    fn tokens_refill_at_the_rate() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            l.check("k", RATE, t0);
        }
        let t1 = t0 + Duration::from_millis(250); // 2.5 tokens
        assert!(matches!(
            l.check("k", RATE, t1),
            RateDecision::Allowed { .. }
        ));
        assert!(matches!(
            l.check("k", RATE, t1),
            RateDecision::Allowed { .. }
        ));
        assert!(matches!(
            l.check("k", RATE, t1),
            RateDecision::Limited { .. }
        ));
        // Refill is capped at the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..5 {
            assert!(matches!(
                l.check("k", RATE, t2),
                RateDecision::Allowed { .. }
            ));
        }
        assert!(matches!(
            l.check("k", RATE, t2),
            RateDecision::Limited { .. }
        ));
    }

    #[test]
    fn slow_rates_ask_for_a_longer_wait() {
        let l = RateLimiter::default();
        let slow = Rate {
            per_second: 0.1,
            burst: 1,
        };
        let t0 = Instant::now();
        l.check("k", slow, t0);
        assert_eq!(
            l.check("k", slow, t0),
            RateDecision::Limited {
                limit: 1,
                retry_after: 10
            }
        );
    }

    #[test]
    fn many_keys_do_not_grow_memory_without_bound() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..(SHARDS * SWEEP_AT * 2) {
            // Each key's bucket is full again a second later, so it can be forgotten.
            let now = t0 + Duration::from_secs(i as u64);
            l.check(&format!("k{i}"), RATE, now);
        }
        let total: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * SWEEP_AT, "{total}");
    }

    fn policy() -> BlockPolicy {
        BlockPolicy {
            failures: 3,
            block_for: Duration::from_secs(300),
        }
    }

    #[test]
    fn repeated_failures_block_an_address_for_the_cooling_off_period() {
        let g = BruteForceGuard::new(policy());
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let t0 = Instant::now();
        assert!(!g.failure(a, t0));
        assert!(!g.failure(a, t0 + Duration::from_secs(1)));
        assert_eq!(g.blocked(a, t0), None);
        assert!(
            g.failure(a, t0 + Duration::from_secs(2)),
            "third failure blocks"
        );
        assert_eq!(g.blocked(a, t0 + Duration::from_secs(2)), Some(300));
        assert_eq!(g.blocked(b, t0), None, "only that address");
        assert_eq!(g.blocked(a, t0 + Duration::from_secs(302)), None, "lifted");
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let g = BruteForceGuard::new(policy());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        g.failure(a, t0);
        g.failure(a, t0 + Duration::from_secs(30));
        assert!(
            !g.failure(a, t0 + Duration::from_secs(61)),
            "the first expired"
        );
        assert!(g.failure(a, t0 + Duration::from_secs(62)));
    }
}
