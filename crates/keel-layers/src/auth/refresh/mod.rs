//! Refresh-on-401: invalidate the rejected token and replay the request with a fresh one.

mod decide;
mod future;
mod layer;
mod service;

pub(crate) use decide::Refresh;
pub use future::ResponseFuture;
pub use layer::RefreshOn401Layer;
pub use service::{RefreshOn401, RefreshStats};
