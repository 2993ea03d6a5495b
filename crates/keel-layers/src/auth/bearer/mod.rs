//! Bearer-token injection for one origin.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::BearerLayer;
pub use service::Bearer;
