use std::sync::Arc;

use tower::Layer;

use super::Bearer;
use crate::auth::{Origin, TokenCache};

/// Layer that applies [`Bearer`], attaching tokens from a [`TokenCache`] to requests for one
/// [`Origin`].
#[derive(Debug, Clone)]
pub struct BearerLayer {
    tokens: TokenCache,
    origin: Arc<Origin>,
}

impl BearerLayer {
    /// Attaches tokens from `tokens` to requests whose URI is relative or has this `origin`.
    pub fn new(tokens: TokenCache, origin: Origin) -> Self {
        BearerLayer {
            tokens,
            origin: Arc::new(origin),
        }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer::from_parts(inner, self.tokens.clone(), Arc::clone(&self.origin))
    }
}
