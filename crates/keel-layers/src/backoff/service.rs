use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower::{BoxError, Service};

use super::future::ResponseFuture;
use super::{BackoffLayer, BackoffPolicy, BackoffStats, RetrySafe};
use crate::hook::ReplayOnResponse;
use crate::replay::{try_clone_request, TryCloneBody};
use crate::spare::Spare;

/// Middleware that retries 429 and 503 responses (and, opted in, 502, 504 and transport
/// failures) after the wait the server asks for, pacing every clone through one shared gate.
///
/// The error type is [`BoxError`]: the inner service's error, converted, so transport
/// failures can be inspected; this layer adds no errors of its own.
///
/// # Clone
///
/// Clones share the policy's budget, pacing gate and stats through one `Arc`, and with them
/// the one clone of the inner service that retries are sent through: it is made on the first
/// request that could be retried, and each retry clones it again. A request that is not
/// retried clones nothing; the first attempt is sent through this service's own `inner`.
#[derive(Clone, Debug)]
pub struct Backoff<S> {
    inner: S,
    shared: Arc<Shared<S>>,
}

/// What every clone of one [`Backoff`] and their response futures share: the policy (whose
/// budget, gate and stats are shared further, see [`BackoffPolicy`]) and the spare service
/// retries are sent through.
#[derive(Debug)]
pub(super) struct Shared<S> {
    pub(super) policy: BackoffPolicy,
    pub(super) spare: Spare<S>,
    /// Replays decided by a hook, done in the same loop (see [`BackoffLayer::replay_on`]).
    pub(super) hook: Option<Arc<dyn ReplayOnResponse>>,
    /// Replays per request the hook allows (0 without a hook).
    pub(super) max_replays: u32,
}

impl<S> Backoff<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: BackoffPolicy) -> Self {
        Self::from_shared(inner, Arc::new(policy), None)
    }

    pub(super) fn from_shared(
        inner: S,
        policy: Arc<BackoffPolicy>,
        hook: Option<Arc<dyn ReplayOnResponse>>,
    ) -> Self {
        let policy = Arc::unwrap_or_clone(policy);
        let max_replays = hook.as_ref().map_or(0, |hook| hook.max_replays());
        Backoff {
            inner,
            shared: Arc::new(Shared {
                policy,
                spare: Spare::new(),
                hook,
                max_replays,
            }),
        }
    }

    /// A [`BackoffLayer`] with `policy`.
    pub fn layer(policy: BackoffPolicy) -> BackoffLayer {
        BackoffLayer::new(policy)
    }

    /// The counters shared by every clone.
    pub fn stats(&self) -> BackoffStats {
        self.shared.policy.stats()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for Backoff<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: TryCloneBody,
    ResB: http_body::Body + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        let now = Instant::now();
        let shared = &self.shared;
        let policy = &shared.policy;
        policy.budget.deposit();
        let retry_safe = req.extensions().get::<RetrySafe>().is_some();
        match policy.rate.try_acquire(now) {
            Ok(()) => {
                let backup = if policy.max_attempts > 1 || shared.max_replays > 0 {
                    try_clone_request(&req)
                } else {
                    None
                };
                // NOTE: without a backup no retry can follow, and no spare is needed.
                if backup.is_some() {
                    shared.spare.keep(&self.inner);
                }
                let future = self.inner.call(req);
                ResponseFuture::called(future, backup, Arc::clone(shared), retry_safe, now)
            }
            // NOTE: the first attempt goes through the spare after the wait; the backup is
            // taken when the request is sent.
            Err(until) => {
                shared.spare.keep(&self.inner);
                ResponseFuture::paced(req, until, Arc::clone(shared), retry_safe, now)
            }
        }
    }
}
