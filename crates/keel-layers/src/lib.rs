//! tower layers that keep long batch jobs alive against token-protected, rate-limited HTTP APIs.
//!
//! Each layer is usable on its own and knows nothing of any vendor, nor of the other layers:
//!
//! - [`auth`]: a single-flight [`auth::TokenCache`], the OAuth client-credentials grant,
//!   bearer injection and refresh-on-401 replay.
//! - [`backoff`]: 429/503 retries that honour `Retry-After`, jittered exponential backoff,
//!   retry budgets and a pacing gate shared by clones.
//! - [`replay`]: make any request body replayable, up to a byte cap.
//!
//! What more than one layer needs lives in neutral modules: [`hints`] (`Retry-After` and
//! rate-limit reset parsing), [`error_chain`] (finding a typed error in a source chain) and
//! [`hook`] (one retry loop doing another layer's replays). [`ServiceBuilderExt`] adds one
//! `ServiceBuilder` method per layer.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod backoff;
mod builder;
pub mod error_chain;
pub mod hints;
pub mod hook;
mod jitter;
pub mod metrics;
pub mod replay;
mod spare;

pub use builder::ServiceBuilderExt;

#[cfg(test)]
mod hook_tests;
#[cfg(test)]
mod test_support;
