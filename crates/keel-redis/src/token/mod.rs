//! The shared token store: one token fetch for the whole fleet per token lifetime.
//!
//! Every process of a fleet that shares one OAuth client would otherwise fetch its own token
//! and refresh it on its own schedule. [`RedisTokenSource`] wraps the real source (usually
//! [`ClientCredentials`](keel_layers::auth::ClientCredentials)) and keeps the current token
//! in Redis: a process whose [`TokenCache`](keel_layers::auth::TokenCache) needs a token reads
//! the shared one; if there is none (or it is due for a refresh), one process takes a lock
//! (`SET lock owner NX PX ttl`, a random owner), fetches, stores the token with a TTL that ends
//! before the token expires, and releases the lock with a compare-and-delete script; the
//! others poll the key until the token appears. Its [`invalidate`](keel_layers::auth::TokenSource::invalidate)
//! deletes the shared token only if it is still the rejected one (compared by fingerprint in a
//! script), so 100 processes seeing a 401 for one token cause one fetch.
//!
//! # Security
//!
//! The Redis instance holds a live access token: it must be access-controlled (ACL user and
//! password, TLS when it is not on the same host) and reachable only by the fleet. The key
//! name hashes the configured name and never holds the token; the value is the token and is
//! never logged.
//!
//! # Failure
//!
//! A lock holder that dies blocks the others at most until its lock expires. Redis
//! unreachable (at start or mid-run) is told apart from "lock held": the process fetches
//! in-process from the inner source (never serving an expired token), logs one warning, and
//! uses Redis again once it answers; with [`RedisConfig::fail_closed`](crate::RedisConfig::fail_closed)
//! the fetch fails instead.

mod scripts;
mod source;
mod value;

pub use source::{RedisTokenSource, RedisTokenStats};
