//! tower layers that keep long batch jobs alive against token-protected, rate-limited HTTP APIs.
//!
//! Each layer is usable on its own and knows nothing of any vendor:
//!
//! - [`auth`]: a single-flight [`auth::TokenCache`], the OAuth client-credentials grant,
//!   bearer injection and refresh-on-401 replay.
//! - [`backoff`]: 429/503 retries that honour `Retry-After`, jittered exponential backoff,
//!   retry budgets and a pacing gate shared by clones.
//! - [`replay`]: make any request body replayable, up to a byte cap.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod backoff;
pub mod replay;
mod spare;
