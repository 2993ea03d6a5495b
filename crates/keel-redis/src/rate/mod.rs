//! The shared rate state: one 429 gate and one pacing budget for the whole fleet.
//!
//! A process that gets a 429 learns the API's limit; without sharing, every other process
//! of the fleet has to learn it again with its own 429s. [`RedisRateState`] closes the gate
//! for every process (an atomic max of the deadline in Redis, then a pub/sub notification),
//! keeps the deadline in a local cache so the fast path (gate open) makes no Redis round
//! trip, and wakes local waiters when the deadline passes or moves. Optional
//! [`FleetPacing`] keeps the fleet together under one rate with a token bucket in Redis,
//! taking permits in batches.
//!
//! # Under a backoff layer
//!
//! [`RedisRateState`] is a [`RateState`](keel_layers::backoff::RateState): hand it to
//! [`BackoffPolicy::rate_state`](keel_layers::backoff::BackoffPolicy::rate_state) and every
//! clone of that policy (and every process with the same Redis and name) shares one gate and
//! one pacing budget. Its `try_acquire` reads only local state (the mirrored deadline and the
//! held permits); a batch of permits is taken from Redis in a background task, and a close is
//! sent to Redis in the background too, so no request waits on a Redis round trip unless it
//! waits for permits anyway.
//!
//! ```no_run
//! use keel_layers::backoff::{BackoffLayer, BackoffPolicy};
//! use keel_redis::{rate::FleetPacing, RedisConfig, RedisRateState};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let Some(config) = RedisConfig::from_env()? else { return Ok(()) };
//! let pacing = FleetPacing::per_second(200.0).batch(20);
//! let rate = RedisRateState::with_pacing(config.connect()?, "api.example.com client-a", pacing);
//! let backoff = BackoffLayer::new(BackoffPolicy::default().rate_state(rate));
//! # drop(backoff);
//! # Ok(())
//! # }
//! ```
//!
//! # Release after a 429
//!
//! When the gate opens, the held requests must not all go at the same instant (they would
//! trip the next 429 at once). With [`FleetPacing`], the fleet's bucket paces them. Without
//! it, each process paces its own release as keel-layers'
//! [`LocalRateState`](keel_layers::backoff::LocalRateState) does: at the rate the 429
//! advertised (`inin-ratelimit-allowed` and the like; the process that got the 429 sends it
//! with the close, so every process learns it), lifted after windows without a 429, or
//! spread over the closed interval when no rate was advertised. The advertised rate is the
//! client's whole budget and a process does not know how many others share it, so a fleet
//! of N releases at up to N times that rate: far fewer than all held requests at once, and
//! the first 429 closes every process's gate again. A fleet that must stay under the rate
//! configures [`FleetPacing`].
//!
//! # Failure
//!
//! The gate is closed locally first, so an unreachable Redis costs only the fleet-wide part;
//! pacing then runs in-process at the same rate. One warning per outage; a background task
//! reconnects, subscribes again and re-reads the gate. With
//! [`RedisConfig::fail_closed`](crate::RedisConfig::fail_closed),
//! [`acquire`](RedisRateState::acquire) fails while Redis is unreachable.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use keel_redis::{rate::FleetPacing, RedisConfig, RedisRateState};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let Some(config) = RedisConfig::from_env()? else { return Ok(()) };
//! let pacing = FleetPacing::per_second(50.0).batch(10);
//! let rate = RedisRateState::with_pacing(config.connect()?, "api.example.com", pacing);
//! rate.acquire().await?; // before each request
//! // a 429 with Retry-After: 2
//! rate.close_until(tokio::time::Instant::now() + Duration::from_secs(2)).await;
//! # Ok(())
//! # }
//! ```

mod listener;
mod pacing;
mod scripts;
mod seam;
mod state;

pub use pacing::FleetPacing;
pub use state::{RedisRateState, RedisRateStats};
