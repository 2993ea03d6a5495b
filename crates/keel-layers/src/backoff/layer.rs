use std::sync::Arc;

use tower::Layer;

use super::{Backoff, BackoffPolicy, BackoffStats};

/// Layer that applies [`Backoff`]: retries 429/503 after the wait the server asks for.
///
/// # Clone
///
/// Every service this layer makes, and every clone of those, shares the policy's retry
/// budget, pacing gate and stats (see [`BackoffPolicy`]).
#[derive(Clone, Debug)]
pub struct BackoffLayer {
    policy: Arc<BackoffPolicy>,
}

impl BackoffLayer {
    /// A layer with this policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        BackoffLayer {
            policy: Arc::new(policy),
        }
    }

    /// The counters shared by every service made by this layer.
    pub fn stats(&self) -> BackoffStats {
        self.policy.stats()
    }
}

impl<S> Layer<S> for BackoffLayer {
    type Service = Backoff<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Backoff::from_shared(inner, self.policy.clone())
    }
}
