use tower::Layer;

use super::{RefreshOn401, RefreshStats};
use crate::auth::{Refresh, TokenCache};

/// Layer that applies [`RefreshOn401`].
#[derive(Debug, Clone)]
pub struct RefreshOn401Layer {
    tokens: TokenCache,
    max_replays: u32,
    stats: RefreshStats,
}

impl RefreshOn401Layer {
    /// Invalidates rejected tokens in `tokens` and replays each request at most once.
    pub fn new(tokens: TokenCache) -> Self {
        RefreshOn401Layer {
            tokens,
            max_replays: 1,
            stats: RefreshStats::default(),
        }
    }

    /// Replays a request at most `replays` times on repeated 401s (default 1; 0 disables).
    pub fn max_replays(mut self, replays: u32) -> Self {
        self.max_replays = replays;
        self
    }

    /// The counters shared by every service this layer makes.
    pub fn stats(&self) -> RefreshStats {
        self.stats.clone()
    }

    /// What a retry loop needs to refresh on 401 as this layer does, and how many replays.
    pub(crate) fn refresh(&self) -> (Refresh, u32) {
        let refresh = Refresh {
            tokens: self.tokens.clone(),
            stats: self.stats.clone(),
        };
        (refresh, self.max_replays)
    }
}

impl<S> Layer<S> for RefreshOn401Layer {
    type Service = RefreshOn401<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefreshOn401::new(inner, self.tokens.clone())
            .max_replays(self.max_replays)
            .with_stats(self.stats.clone())
    }
}
