//! Faults of the Redis backend against a real `redis-server`.
mod support;
