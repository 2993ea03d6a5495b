use std::sync::Arc;

use tower::Layer;

use super::{Backoff, BackoffPolicy, BackoffStats};
use crate::auth::{Refresh, RefreshOn401Layer};

/// Layer that applies [`Backoff`]: retries 429/503 after the wait the server asks for.
///
/// # Clone
///
/// Every service this layer makes, and every clone of those, shares the policy's retry
/// budget, pacing gate and stats (see [`BackoffPolicy`]).
#[derive(Clone, Debug)]
pub struct BackoffLayer {
    policy: Arc<BackoffPolicy>,
    refresh: Option<(Refresh, u32)>,
}

impl BackoffLayer {
    /// A layer with this policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        BackoffLayer {
            policy: Arc::new(policy),
            refresh: None,
        }
    }

    /// Also does what `refresh` would do stacked directly above this layer, in the same retry
    /// loop: a final 401 (one this layer does not retry) invalidates the token that was sent
    /// and the request is sent again, as a new request to this layer (its own attempts,
    /// elapsed time, budget deposit and pacing), at most `refresh`'s `max_replays` times.
    ///
    /// `ServiceBuilder::new().layer(refresh).layer(backoff)` and
    /// `ServiceBuilder::new().layer(backoff.refresh_on_401(&refresh))` behave the same and
    /// count into the same [`RefreshStats`](crate::auth::RefreshStats) and
    /// [`BackoffStats`]; the second keeps one request backup and one spare service for both
    /// kinds of retry, and its response future is one retry loop instead of two nested ones,
    /// which is what a request that is not retried pays for.
    ///
    /// ```
    /// use keel_layers::auth::{token_source_fn, RefreshOn401Layer, Token, TokenCache};
    /// use keel_layers::backoff::{BackoffLayer, BackoffPolicy};
    ///
    /// let tokens = TokenCache::new(token_source_fn(|| async { Token::bearer("t", None) }));
    /// let refresh = RefreshOn401Layer::new(tokens);
    /// let replays = refresh.stats();
    /// let backoff = BackoffLayer::new(BackoffPolicy::default()).refresh_on_401(&refresh);
    /// # let _ = (backoff, replays);
    /// ```
    pub fn refresh_on_401(mut self, refresh: &RefreshOn401Layer) -> Self {
        self.refresh = Some(refresh.refresh());
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
        Backoff::from_shared(inner, self.policy.clone(), self.refresh.clone())
    }
}
