//! Rate-limit backoff: retry 429/503 after the wait the server asks for, within budgets,
//! pacing every clone of the client through one shared gate.
//!
//! A long batch job will be told "slow down" (429) or "not now" (503), usually with the
//! answer to "for how long?": `Retry-After` (seconds or an HTTP-date) or a rate-limit
//! reset header (Genesys Cloud's `inin-ratelimit-reset`, `x-ratelimit-reset`,
//! `ratelimit-reset`). A fixed retry count with a fixed backoff ignores that answer: it
//! either gives up while the server is still counting down (three retries a second apart
//! against a 30 s window all fail) or hammers it with requests that cannot succeed. This
//! layer waits exactly what was asked, once, then replays the request. Without a hint it
//! falls back to exponential backoff with full jitter, so clients that failed together do
//! not retry together.
//!
//! What stops the retrying is time and load, not a guess at a count: `max_delay` (a single
//! wait the server may ask for), `max_elapsed` (per request), `max_attempts`, and a retry
//! *budget* ([`TpsBudget`], shared by every clone) that allows retries only as a fraction of
//! recent traffic, so during an outage a fleet of workers cannot multiply the load on the
//! server by its retry count. When retrying stops, the caller gets the last response
//! unchanged: the real 429, with its headers and body.
//!
//! After a 429 with a reset time, the [cooperative gate](BackoffPolicy::cooperative_gate)
//! holds every *new* request through any clone until that time, instead of each request
//! discovering the limit on its own; when it opens, the held requests go out at the rate the
//! 429 advertised (`inin-ratelimit-allowed`, `RateLimit-Limit`), a pace that doubles after
//! each quiet second so a momentary limit does not slow a busy client for good, or spread
//! over the first second, not all at once. The gate and the pacing permits live behind the
//! [`RateState`] trait: in this process by default ([`LocalRateState`]), or in a store shared
//! by a fleet of processes ([`BackoffPolicy::rate_state`]). Optional client-side [`Pacing`] spreads requests with
//! a shared token bucket, fixed (`Pacing::per_second(n)`) or learned from 429s
//! (`Pacing::adaptive`, AIMD), so a long job settles just under the server's limit.
//!
//! 429 and 503 are retried for every request (the server did not process it). 502, 504
//! and transport failures (connection refused, reset, closed before a response, see
//! [`is_transport_error`]; and attempts cut by a timeout layer inside this one, see
//! [`is_timeout_error`]) may happen after the server acted, so they are opt-in: for the
//! whole policy, or per request with the [`RetrySafe`] extension (e.g. a read-only `POST`).
//!
//! Bodies replay through [`crate::replay`]: a backup is cloned with
//! [`try_clone_request`](crate::replay::try_clone_request) before each attempt, and a retry
//! sends a clone of it, made after the attempt. If the body cannot be replayed (a `ReplayBody` that
//! outgrew its cap), the response goes back as it is, with a `tracing` warning; an empty or
//! partial body is never sent in its place. The retryable response's body is drained (up
//! to [`drain_limit`](BackoffPolicy::drain_limit)) during the wait and dropped before the
//! replay, so the connection can be reused.
//!
//! Another retrying layer stacked directly above this one can share its retry loop:
//! [`BackoffLayer::replay_on`] takes a [`ReplayOnResponse`](crate::hook::ReplayOnResponse)
//! hook (refresh-on-401's layer is one) and replays after the responses it asks for, with
//! one request backup and one spare service for both kinds of retry (cheaper for every
//! request, retried or not; same behaviour and counters).
//!
//! Each retry emits a `tracing` event at `INFO` with `status`, `attempt`, `delay_ms` and
//! `source` (`retry-after`, `ratelimit-reset` or `schedule`); [`BackoffStats`] counts 429
//! waits, 503 retries, other retries and the time spent waiting.
//!
//! # Example
//!
//! A server over its limit for the next 30 seconds, which says so. A fixed "3 retries,
//! 1 s apart" would fail here; `Backoff` waits once, exactly 30 s, and gets the page.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use keel_layers::backoff::{BackoffLayer, BackoffPolicy, TpsBudget};
//! use tokio::time::Instant;
//! use tower::{BoxError, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let opens_at = Instant::now() + Duration::from_secs(30);
//! let api = tower::service_fn(move |_req: Request<Full<Bytes>>| async move {
//!     let now = Instant::now();
//!     let response = if now < opens_at {
//!         let wait = (opens_at - now).as_secs().to_string();
//!         Response::builder().status(429).header("retry-after", wait).body(Full::default())?
//!     } else {
//!         Response::new(Full::new(Bytes::from("page 1")))
//!     };
//!     Ok::<_, BoxError>(response)
//! });
//!
//! let policy = BackoffPolicy::new()
//!     .max_delay(Duration::from_secs(60))     // a longer requested wait returns the 429
//!     .max_elapsed(Duration::from_secs(300))  // per request, all attempts included
//!     .budget(TpsBudget::default());          // retries ≤ 20 % of recent requests (+ a reserve)
//! let stats = policy.stats();
//! let client = ServiceBuilder::new()
//!     .layer(BackoffLayer::new(policy))
//!     .service(api);
//!
//! let started = Instant::now();
//! let request = Request::get("https://api.example.test/page/1").body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(started.elapsed(), Duration::from_secs(30)); // (virtual time)
//! assert_eq!(stats.throttled_waits(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Differences from `tower::retry` / `tower::limit::RateLimit`
//!
//! - [`tower::retry::Retry`] with a [`Policy`](tower::retry::Policy) could read
//!   `Retry-After`, but it can only act on the request it is retrying: it has no hook before
//!   a *first* attempt, so it cannot hold new requests at a gate another request closed,
//!   and it keeps no per-request start time for an elapsed limit. `Backoff` is a small
//!   state machine future doing what `Retry` does plus pacing, draining and limits, and
//!   uses tower's [`Budget`] trait and [`TpsBudget`] unchanged.
//! - [`tower::limit::RateLimit`] is per service instance: it is not `Clone`, and services
//!   made by one layer keep separate windows (tower#794), so N workers send N times the
//!   rate. It also paces in `poll_ready` with a fixed window and never learns from the
//!   server. [`Pacing`] lives in one `Arc` shared by every service a [`BackoffLayer`] makes
//!   and all their clones, waits inside the response future (so a dropped future holds
//!   nothing: no permit, no reservation, no queue slot), and in adaptive mode tracks the
//!   server's real limit from its 429s.
//! - Because pacing waits happen after `call`, a concurrency limit placed *outside* this
//!   layer counts requests waiting at the gate as in flight.
//!
//! # Bounds
//!
//! The inner service must be `Clone` (each retry is sent through a clone, readied again);
//! request bodies must implement [`TryCloneBody`](crate::replay::TryCloneBody) (wrap a
//! streaming body in `ReplayBody`); response bodies must be `Send + 'static` (drained in
//! the background of the wait). The error type is [`tower::BoxError`], so transport errors
//! can be inspected; they come back as the inner service produced them.

mod classify;
mod decide;
mod future;
mod layer;
mod pacing;
mod policy;
mod rate_state;
mod service;
mod stats;
mod tower_policy;

pub use crate::hints::{
    parse_ratelimit_reset, parse_retry_after, server_delay, DelaySource, ININ_RATELIMIT_RESET,
    RATELIMIT_RESET, X_RATELIMIT_RESET,
};
pub use classify::{is_timeout_error, is_transport_error, RetrySafe};
pub use future::ResponseFuture;
pub use layer::BackoffLayer;
pub use pacing::{LocalRateState, Pacing};
pub use policy::BackoffPolicy;
pub use rate_state::{GateWait, RateState};
pub use service::Backoff;
pub use stats::BackoffStats;
pub use tower::retry::budget::{Budget, TpsBudget};
pub use tower_policy::RetryPolicy;

#[cfg(test)]
mod tests;
