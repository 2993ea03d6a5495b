use std::sync::Arc;

use tower::Layer;

use super::{Backoff, BackoffPolicy, BackoffStats};
use crate::hook::ReplayOnResponse;

/// Layer that applies [`Backoff`]: retries 429/503 after the wait the server asks for.
///
/// # Clone
///
/// Every service this layer makes, and every clone of those, shares the policy's retry
/// budget, pacing gate and stats (see [`BackoffPolicy`]).
#[derive(Clone, Debug)]
pub struct BackoffLayer {
    policy: Arc<BackoffPolicy>,
    hook: Option<Arc<dyn ReplayOnResponse>>,
}

impl BackoffLayer {
    /// A layer with this policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        BackoffLayer {
            policy: Arc::new(policy),
            hook: None,
        }
    }

    /// Also replays after the responses `hook` asks for, in this layer's retry loop: a final
    /// response (one this layer does not retry) that the hook
    /// [wants replayed](ReplayOnResponse::wants_replay) is dropped and the request is sent
    /// again, as a new request to this layer (its own attempts, elapsed time, budget deposit
    /// and pacing), at most the hook's [`max_replays`](ReplayOnResponse::max_replays) times.
    ///
    /// With a `RefreshOn401Layer` as the hook,
    /// `ServiceBuilder::new().layer(refresh.clone()).layer(backoff)` and
    /// `ServiceBuilder::new().layer(backoff.replay_on(refresh))` behave the same and count
    /// into the same counters; the second keeps one request backup and one spare service for
    /// both kinds of retry, and its response future is one retry loop instead of two nested
    /// ones, which is what a request that is not retried pays for.
    ///
    /// See [`crate::hook`] for an example hook.
    pub fn replay_on(mut self, hook: impl ReplayOnResponse) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The counters shared by every service made by this layer.
    pub fn stats(&self) -> BackoffStats {
        self.policy.stats()
    }
}

impl<S> Layer<S> for BackoffLayer {
    type Service = Backoff<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Backoff::from_shared(inner, self.policy.clone(), self.hook.clone())
    }
}
