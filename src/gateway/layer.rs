use std::sync::Arc;

use tower::Layer;

use super::{Gateway, Upstream};

/// Layer that applies [`Gateway`], forwarding every request to one [`Upstream`].
#[derive(Debug, Clone)]
pub struct GatewayLayer {
    upstream: Arc<Upstream>,
}

impl GatewayLayer {
    /// Forwards requests to `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        GatewayLayer {
            upstream: Arc::new(upstream),
        }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gateway::from_parts(inner, Arc::clone(&self.upstream))
    }
}
