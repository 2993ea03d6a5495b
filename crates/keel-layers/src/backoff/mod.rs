//! Rate-limit backoff: `Retry-After`, jittered exponential backoff, budgets and cooperative pacing.

mod classify;
mod future;
mod headers;
mod layer;
mod pacing;
mod policy;
mod service;
mod stats;

pub use classify::{is_transport_error, RetrySafe};
pub use future::ResponseFuture;
pub use headers::{
    parse_ratelimit_reset, parse_retry_after, server_delay, DelaySource, ININ_RATELIMIT_RESET,
    RATELIMIT_RESET, X_RATELIMIT_RESET,
};
pub use layer::BackoffLayer;
pub use pacing::Pacing;
pub use policy::BackoffPolicy;
pub use service::Backoff;
pub use stats::BackoffStats;
pub use tower::retry::budget::{Budget, TpsBudget};

#[cfg(test)]
mod tests;
