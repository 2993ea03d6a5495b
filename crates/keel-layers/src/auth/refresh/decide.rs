//! The refresh-on-401 decision, shared by [`RefreshOn401`](super::RefreshOn401) and by any
//! retry loop that takes a [`ReplayOnResponse`] hook (implemented by
//! [`RefreshOn401Layer`](super::RefreshOn401Layer)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Extensions, StatusCode};
use tokio::time::Instant;

use super::{RefreshOn401Layer, RefreshStats};
use crate::auth::{TokenCache, TokenId};
use crate::hook::ReplayOnResponse;

/// What a refresh-on-401 loop shares: the cache to invalidate rejected tokens in, and the
/// counters.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub(crate) tokens: TokenCache,
    pub(crate) stats: RefreshStats,
    /// Set once the misordered-stack warning was logged (once per layer and its services).
    pub(crate) warned: Arc<AtomicBool>,
}

impl Refresh {
    pub(crate) fn new(tokens: TokenCache, stats: RefreshStats) -> Self {
        Refresh {
            tokens,
            stats,
            warned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The token a response rejected: `Some` for a 401 that carries the [`TokenId`] of a token
    /// this stack sent, `None` for any other response (returned as is).
    pub(crate) fn rejected(&self, status: StatusCode, extensions: &Extensions) -> Option<TokenId> {
        if status != StatusCode::UNAUTHORIZED {
            return None;
        }
        let rejected = extensions.get::<TokenId>().copied();
        if rejected.is_none() {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "401 without the id of a token this stack sent: returned as is, no refresh; \
                     is the bearer layer above refresh_on_401 (it must be below it)?"
                );
            } else {
                tracing::trace!("401 for a request sent without a cached token; returned as is");
            }
        }
        rejected
    }

    /// Counts and logs a 401 that could not be replayed.
    pub(crate) fn not_replayable(&self) {
        self.stats.record_not_replayable();
        tracing::debug!("401 returned as is: the request body cannot be replayed");
    }

    /// Invalidates `rejected` (if still current) and counts the replay about to be sent;
    /// returns when it may be sent (`Some` while the cache's invalidation floor holds the
    /// rejected token in service).
    pub(crate) fn replaying(&self, rejected: TokenId) -> Option<Instant> {
        self.tokens.invalidate(rejected);
        self.stats.record_replay();
        let not_before = self.tokens.replay_not_before(rejected);
        tracing::debug!(token = ?rejected, ?not_before, "401: replaying the request with a fresh token");
        not_before
    }
}

impl ReplayOnResponse for RefreshOn401Layer {
    fn max_replays(&self) -> u32 {
        self.max_replays
    }

    fn wants_replay(&self, status: StatusCode, extensions: &Extensions) -> bool {
        self.refresh.rejected(status, extensions).is_some()
    }

    fn replaying(&self, status: StatusCode, extensions: &Extensions) -> Option<Instant> {
        let rejected = self.refresh.rejected(status, extensions)?;
        self.refresh.replaying(rejected)
    }

    fn not_replayable(&self) {
        self.refresh.not_replayable();
    }
}
