//! Benchmark events: a synthetic generator (the default) or a real-log NDJSON corpus.
//!
//! The synthetic events imitate application logs — a few levels, services, paths, status
//! codes, latencies and free-text messages drawn from a vocabulary — so that they compress
//! and search roughly like real ones rather than like repeated or random bytes.

use anyhow::Context;
use rand::Rng;
use rand::seq::IndexedRandom;

const LEVELS: &[&str] = &["debug", "info", "info", "info", "warn", "error"];
const SERVICES: &[&str] = &[
    "api",
    "billing",
    "auth",
    "search",
    "worker",
    "gateway",
    "scheduler",
    "mailer",
];
const PATHS: &[&str] = &[
    "/v1/users",
    "/v1/orders",
    "/v1/login",
    "/v1/search",
    "/healthz",
    "/v1/invoices",
    "/v2/items",
];
const WORDS: &[&str] = &[
    "request",
    "completed",
    "failed",
    "user",
    "order",
    "payment",
    "timeout",
    "retry",
    "cache",
    "miss",
    "hit",
    "connection",
    "reset",
    "database",
    "query",
    "slow",
    "token",
    "expired",
    "session",
    "created",
    "deleted",
    "updated",
    "queue",
    "message",
    "processed",
    "upstream",
];

/// Where events come from.
pub enum Source {
    Synthetic { size: usize },
    Corpus { lines: Vec<Vec<u8>> },
}

impl Source {
    /// Loads a corpus file (one JSON object per line).
    pub fn corpus(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read corpus {}", path.display()))?;
        let lines: Vec<Vec<u8>> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect();
        anyhow::ensure!(
            !lines.is_empty(),
            "corpus {} holds no events",
            path.display()
        );
        Ok(Source::Corpus { lines })
    }

    /// The `i`-th event of the stream (the corpus repeats as needed).
    pub fn event(&self, i: u64, rng: &mut impl Rng) -> Vec<u8> {
        match self {
            Source::Synthetic { size } => synthetic(i, *size, rng),
            Source::Corpus { lines } => lines[(i % lines.len() as u64) as usize].clone(),
        }
    }
}

/// One synthetic event of about `size` bytes.
fn synthetic(i: u64, size: usize, rng: &mut impl Rng) -> Vec<u8> {
    let pick = |xs: &[&'static str], rng: &mut dyn rand::RngCore| *xs.choose(rng).unwrap_or(&"x");
    let level = pick(LEVELS, rng);
    let service = pick(SERVICES, rng);
    let path = pick(PATHS, rng);
    let status = [200, 200, 200, 201, 204, 400, 401, 404, 500, 503][rng.random_range(0..10)];
    let mut msg = String::new();
    let head = format!(
        "{{\"level\":\"{level}\",\"service\":\"{service}\",\"seq\":{i},\"trace_id\":\"{:016x}\",\"http\":{{\"method\":\"GET\",\"path\":\"{path}\",\"status\":{status},\"ms\":{}}},\"message\":\"",
        rng.random::<u64>(),
        rng.random_range(1..2000)
    );
    let budget = size.saturating_sub(head.len() + 2).max(8);
    while msg.len() < budget {
        if !msg.is_empty() {
            msg.push(' ');
        }
        msg.push_str(pick(WORDS, rng));
    }
    msg.truncate(budget);
    let mut out = head.into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out.extend_from_slice(b"\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_events_are_json_of_the_size_asked() {
        let mut rng = rand::rng();
        for size in [200, 1000] {
            let e = synthetic(7, size, &mut rng);
            let v: serde_json::Value = serde_json::from_slice(&e).expect("json");
            assert_eq!(v["seq"], 7);
            assert!(
                (size - 2..=size + 2).contains(&e.len()),
                "{} vs {size}",
                e.len()
            );
        }
    }
}
