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
//! let tokens = TokenCache::new(shared.clone());
//! let token = tokens.token().await?;
//! // On a 401 for `token`: drop it locally and for the fleet, then fetch again.
//! tokens.invalidate(&token);
//! shared.invalidate(&token).await;
//! # Ok(())
//! # }
//! ```

//! # Wiring into keel-layers
//!
//! - Token store: [`RedisTokenSource`] is a [`TokenSource`](keel_layers::auth::TokenSource).
//!   Its [`invalidate`](RedisTokenSource::invalidate) (`&Token` → `BoxFuture<'static, ()>`)
//!   is what `TokenCache` calls on a 401, before its next fetch.
//! - Rate state: [`RedisRateState`] offers what the backoff layer's gate and pacing need:
//!   [`close_until`](RedisRateState::close_until) (atomic max, fleet-wide),
//!   [`closed_until`](RedisRateState::closed_until) (local, no round trip),
//!   [`wait_open`](RedisRateState::wait_open) (woken, never polling) and
//!   [`acquire`](RedisRateState::acquire) (gate, then a permit from a batch).

pub mod config;
mod conn;
pub mod rate;
pub mod token;

pub use config::{ConfigError, RedisConfig};
pub use conn::{RedisConnection, RedisStoreError};
pub use rate::RedisRateState;
pub use token::{RedisTokenSource, RedisTokenStats};
