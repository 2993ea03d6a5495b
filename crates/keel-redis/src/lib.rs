//! One access token and one rate budget for a fleet of keel clients, shared through Redis.
//!
//! Several processes often share one OAuth client: gateway replicas, export workers, a cron
//! job next to a service. Each with its own [`TokenCache`](keel_layers::auth::TokenCache)
//! fetches its own token, and each discovers the API's rate limit alone, with its own 429s.
//! This crate makes the fleet behave like one client through a Redis server:
//!
//! - [`RedisTokenSource`]: a shared token store under each process's `TokenCache`; one fetch
//!   per token lifetime (plus one per revocation) for the whole fleet.
//! - [`RedisRateState`]: a 429 closes the gate for every process until the server's reset
//!   time, and optional fleet-wide pacing keeps all processes together under one rate.
//!
//! Redis is an optimisation, never a single point of failure: when it cannot be reached each
//! process carries on in-process (one warning per outage) and uses Redis again once it
//! answers, unless configured [fail-closed](RedisConfig::fail_closed). Every Redis call is
//! bounded by a timeout.
//!
//! # Security
//!
//! Redis holds a live access token. The instance must be access-controlled: an ACL user and
//! password (from [`KEEL_REDIS_URL`](config::URL_ENV) / [`KEEL_REDIS_PASSWORD`](config::PASSWORD_ENV),
//! never argv), TLS (`rediss://`, feature `tls`) when it is not on the same host, and no
//! other tenant. Key names hash their configuration and never hold a token; no key's value is
//! ever logged, and `Debug` output and errors never show the URL or the password.
//!
//! # Example
//!
//! ```no_run
//! use keel_layers::auth::{token_source_fn, Token, TokenCache};
//! use keel_redis::{RedisConfig, RedisTokenSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let Some(config) = RedisConfig::from_env()? else { return Ok(()) };
//! let conn = config.connect()?;
//! let oauth = token_source_fn(|| async { Token::bearer("t", None) });
//! let shared = RedisTokenSource::new(oauth, conn, "my-client-id@login.example.com");
//! let tokens = TokenCache::new(shared);
//! let token = tokens.token().await?;
//! // On a 401 for `token`: the cache drops it, the shared store drops it for the fleet
//! // (if it is still the stored one), and the next fetch waits for that.
//! tokens.invalidate(&token);
//! # Ok(())
//! # }
//! ```

//! # Wiring into keel-layers
//!
//! - Token store: [`RedisTokenSource`] is a [`TokenSource`](keel_layers::auth::TokenSource):
//!   put it under a `TokenCache`; its `invalidate` (compare-and-delete in Redis) is what the
//!   cache calls when it drops a rejected token, before its next fetch.
//! - Rate state: [`RedisRateState`] is a [`RateState`](keel_layers::backoff::RateState):
//!   plug it into a `BackoffPolicy` with
//!   [`rate_state`](keel_layers::backoff::BackoffPolicy::rate_state). `try_acquire` reads the
//!   local mirror of the fleet's gate and the locally held permits (no Redis round trip);
//!   `wait` is woken by the gate's changes and by refills; `close_until_paced` closes the
//!   local gate at once and the fleet's in the background, passing on the rate the 429
//!   advertised for each process's release (see the [`rate`] module). The inherent
//!   [`acquire`](RedisRateState::acquire) and [`close_until`](RedisRateState::close_until)
//!   serve callers outside a backoff layer.

pub mod config;
mod conn;
pub mod rate;
pub mod token;

pub use config::{ConfigError, RedisConfig};
pub use conn::{RedisConnection, RedisStoreError};
pub use rate::RedisRateState;
pub use token::{RedisTokenSource, RedisTokenStats};
