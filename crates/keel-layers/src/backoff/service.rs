use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower::{BoxError, Service};

use super::future::ResponseFuture;
use super::{BackoffLayer, BackoffPolicy, BackoffStats, RetrySafe};
use crate::replay::{try_clone_request, TryCloneBody};

/// Middleware that retries 429 and 503 responses (and, opted in, 502, 504 and transport
/// failures) after the wait the server asks for, pacing every clone through one shared gate.
///
/// The error type is [`BoxError`]: the inner service's error, converted, so transport
/// failures can be inspected; this layer adds no errors of its own.
///
/// # Clone
///
/// Clones share the policy's budget, pacing gate and stats through one `Arc`.
#[derive(Clone, Debug)]
pub struct Backoff<S> {
    inner: S,
    policy: Arc<BackoffPolicy>,
}

impl<S> Backoff<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: BackoffPolicy) -> Self {
        Self::from_shared(inner, Arc::new(policy))
    }

    pub(super) fn from_shared(inner: S, policy: Arc<BackoffPolicy>) -> Self {
        Backoff { inner, policy }
    }

    /// A [`BackoffLayer`] with `policy`.
    pub fn layer(policy: BackoffPolicy) -> BackoffLayer {
        BackoffLayer::new(policy)
    }

    /// The counters shared by every clone.
    pub fn stats(&self) -> BackoffStats {
        self.policy.stats()
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let now = Instant::now();
        let policy = &self.policy;
        policy.budget.deposit();
        let retry_safe = req.extensions().get::<RetrySafe>().is_some();
        match policy.pacer.try_acquire(now) {
            Ok(()) => {
                let backup = if policy.max_attempts > 1 {
                    try_clone_request(&req)
                } else {
                    None
                };
                // NOTE: without a backup no retry can follow: the ready service is called in
                // place and nothing is cloned. Otherwise the ready service goes to the future
                // (for the retries) and a fresh clone stays here.
                let (future, service) = if backup.is_some() {
                    let clone = self.inner.clone();
                    let mut ready = std::mem::replace(&mut self.inner, clone);
                    (ready.call(req), Some(ready))
                } else {
                    (self.inner.call(req), None)
                };
                ResponseFuture::called(future, service, backup, policy.clone(), retry_safe, now)
            }
            // NOTE: the backup is taken when the request is sent, after the wait.
            Err(until) => {
                let clone = self.inner.clone();
                ResponseFuture::paced(clone, req, until, policy.clone(), retry_safe, now)
            }
        }
    }
}
