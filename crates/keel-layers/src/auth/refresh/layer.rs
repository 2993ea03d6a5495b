use tower::Layer;

use super::{RefreshOn401, RefreshStats};
use crate::auth::{Refresh, TokenCache};

/// Layer that applies [`RefreshOn401`].
///
/// It is also a [`ReplayOnResponse`](crate::hook::ReplayOnResponse) hook, so a retry loop
/// below it that takes such a hook can do its work in the same loop (see [`crate::hook`]).
#[derive(Debug, Clone)]
pub struct RefreshOn401Layer {
    pub(super) refresh: Refresh,
    pub(super) max_replays: u32,
}

impl RefreshOn401Layer {
    /// Invalidates rejected tokens in `tokens` and replays each request at most once.
    pub fn new(tokens: TokenCache) -> Self {
        RefreshOn401Layer {
            refresh: Refresh::new(tokens, RefreshStats::default()),
            max_replays: 1,
        }
    }

    /// Replays a request at most `replays` times on repeated 401s (default 1; 0 disables).
    pub fn max_replays(mut self, replays: u32) -> Self {
        self.max_replays = replays;
        self
    }

    /// The counters shared by every service this layer makes.
    pub fn stats(&self) -> RefreshStats {
        self.refresh.stats.clone()
    }
}

impl<S> Layer<S> for RefreshOn401Layer {
    type Service = RefreshOn401<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefreshOn401::from_refresh(inner, self.refresh.clone(), self.max_replays)
    }
}
