use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::decide::Refresh;
use super::{RefreshOn401Layer, ResponseFuture};
use crate::auth::TokenCache;
use crate::replay::{try_clone_request, TryCloneBody};
use crate::spare::Spare;

/// Middleware that answers a 401 by invalidating the token that was sent and replaying the
/// request with a fresh one.
///
/// The rejected token is the [`TokenId`](crate::auth::TokenId) found in the 401 response's
/// extensions, put there by [`Bearer`](crate::auth::Bearer) further in; the cache drops it only
/// if it is still current, so a burst of 401s for one token causes one refresh. Then the
/// 401's body is dropped and the request is sent again, at most
/// [`max_replays`](RefreshOn401::max_replays) times (default once). The response is returned
/// as it is when:
///
/// - a 401 comes back after the last replay (never loops),
/// - the response carries no `TokenId` (no token from this stack was sent),
/// - the request body cannot be replayed (see [`TryCloneBody`]; a `tracing` event says so).
///
/// Directly above another retry loop that takes a
/// [`ReplayOnResponse`](crate::hook::ReplayOnResponse) hook, the two can run as one loop
/// instead: [`RefreshOn401Layer`] is such a hook.
///
/// # Clone
///
/// Clones share the [`RefreshStats`] counters (and the [`TokenCache`]) through one `Arc`, and
/// with them the one clone of the inner service that replays are sent through: it is made on
/// the first request that could be replayed, and each replay clones it again. A request that
/// is not replayed clones nothing; the first attempt is sent through this service's own
/// `inner`.
///
/// # Differences from `tower::retry::Retry`
///
/// The loop is the same (keep a backup, call, decide, call the ready clone again), but
/// `tower::retry` never shows the policy a response whose request could not be cloned up
/// front, and does not ask the backup again after the attempt. `RefreshOn401` does both, so
/// a body that outgrew its replay cap *during* the first attempt is caught, counted in
/// [`RefreshStats::not_replayable`] and reported with a `tracing` event, and the response
/// is returned as is instead of being replayed with an empty or partial body.
#[derive(Debug, Clone)]
pub struct RefreshOn401<S> {
    inner: S,
    max_replays: u32,
    shared: Arc<Shared<S>>,
}

/// What every clone of one [`RefreshOn401`] and their response futures share.
#[derive(Debug)]
pub(super) struct Shared<S> {
    pub(super) refresh: Refresh,
    /// The service replays are sent through (see [`Spare`]).
    pub(super) spare: Spare<S>,
}

impl<S> Shared<S> {
    fn new(refresh: Refresh) -> Arc<Self> {
        Arc::new(Shared {
            refresh,
            spare: Spare::new(),
        })
    }
}

/// Counters of [`RefreshOn401`], shared by all clones of one layer or service.
#[derive(Debug, Clone, Default)]
pub struct RefreshStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    replays: AtomicU64,
    not_replayable: AtomicU64,
}

impl RefreshStats {
    /// Requests sent again after a 401.
    pub fn replays(&self) -> u64 {
        self.0.replays.load(Ordering::Relaxed)
    }

    /// 401s returned as is because the request body could not be replayed.
    pub fn not_replayable(&self) -> u64 {
        self.0.not_replayable.load(Ordering::Relaxed)
    }

    pub(crate) fn record_replay(&self) {
        self.0.replays.fetch_add(1, Ordering::Relaxed);
        crate::metrics::count(crate::metrics::REPLAYS_401);
    }

    pub(crate) fn record_not_replayable(&self) {
        self.0.not_replayable.fetch_add(1, Ordering::Relaxed);
    }
}

impl<S> RefreshOn401<S> {
    /// Wraps `inner`, invalidating rejected tokens in `tokens`.
    pub fn new(inner: S, tokens: TokenCache) -> Self {
        Self::from_refresh(inner, Refresh::new(tokens, RefreshStats::default()), 1)
    }

    pub(super) fn from_refresh(inner: S, refresh: Refresh, max_replays: u32) -> Self {
        RefreshOn401 {
            inner,
            max_replays,
            shared: Shared::new(refresh),
        }
    }

    /// Returns a [`RefreshOn401Layer`].
    pub fn layer(tokens: TokenCache) -> RefreshOn401Layer {
        RefreshOn401Layer::new(tokens)
    }

    /// Replays a request at most `replays` times on repeated 401s (default 1; 0 disables).
    pub fn max_replays(mut self, replays: u32) -> Self {
        self.max_replays = replays;
        self
    }

    /// The counters, shared with every clone.
    pub fn stats(&self) -> RefreshStats {
        self.shared.refresh.stats.clone()
    }

    /// Gets a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for RefreshOn401<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    B: TryCloneBody,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let backup = if self.max_replays > 0 {
            try_clone_request(&req)
        } else {
            None
        };
        // NOTE: without a backup no replay can follow, and no spare is needed.
        if backup.is_some() {
            self.shared.spare.keep(&self.inner);
        }
        let future = self.inner.call(req);
        ResponseFuture::new(future, backup, self.max_replays, Arc::clone(&self.shared))
    }
}
