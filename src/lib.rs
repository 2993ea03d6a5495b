//! keel: tower middleware for long batch jobs against token-protected, rate-limited,
//! paginated HTTP APIs.

pub use keel_layers::{auth, backoff, replay};
pub use keel_paginate as paginate;
pub use keel_genesys as genesys;
