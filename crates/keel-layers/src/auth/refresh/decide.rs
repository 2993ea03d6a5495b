//! The refresh-on-401 decision, shared by [`RefreshOn401`](super::RefreshOn401) and by
//! [`Backoff`](crate::backoff::Backoff) when it also refreshes
//! ([`BackoffLayer::refresh_on_401`](crate::backoff::BackoffLayer::refresh_on_401)).

use http::{Request, Response, StatusCode};

use super::RefreshStats;
use crate::auth::{TokenCache, TokenId};
use crate::replay::{try_clone_request, TryCloneBody};

/// What a refresh-on-401 loop shares: the cache to invalidate rejected tokens in, and the
/// counters.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub(crate) tokens: TokenCache,
    pub(crate) stats: RefreshStats,
}

impl Refresh {
    /// For a response to a request that may still be replayed: the token it rejected and the
    /// request to send again, or `None` to return the response as is: not a 401, no
    /// [`TokenId`] (no token from this stack was sent), or a body that cannot be replayed
    /// (counted and logged).
    pub(crate) fn replay_for<ResB, B: TryCloneBody>(
        &self,
        response: &Response<ResB>,
        backup: Option<&Request<B>>,
    ) -> Option<(TokenId, Request<B>)> {
        if response.status() != StatusCode::UNAUTHORIZED {
            return None;
        }
        let Some(&rejected) = response.extensions().get::<TokenId>() else {
            tracing::trace!("401 for a request sent without a cached token; returned as is");
            return None;
        };
        // NOTE: asked again after the attempt: a body may have found out while it was sent
        // that it outgrew its replay cap.
        let Some(replay) = backup.and_then(try_clone_request) else {
            self.stats.record_not_replayable();
            tracing::debug!("401 returned as is: the request body cannot be replayed");
            return None;
        };
        Some((rejected, replay))
    }

    /// Invalidates `rejected` (if still current) and counts the replay about to be sent;
    /// called once the 401 response was dropped.
    pub(crate) fn replaying(&self, rejected: TokenId) {
        self.tokens.invalidate(rejected);
        self.stats.record_replay();
        tracing::debug!(token = ?rejected, "401: replaying the request with a fresh token");
    }
}
