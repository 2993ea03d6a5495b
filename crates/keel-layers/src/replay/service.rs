use std::task::{Context, Poll};

use http::Request;
use http_body::Body;
use tower::Service;

use super::{ReplayBody, ReplayBodyLayer};

/// Middleware that turns each `Request<B>` into a `Request<ReplayBody<B>>`, so retrying layers
/// below it can send the request again (up to the byte cap).
#[derive(Debug, Clone)]
pub struct ReplayBodyService<S> {
    inner: S,
    cap: usize,
}

impl<S> ReplayBodyService<S> {
    /// Wraps `inner`, keeping up to `cap` bytes of each request body.
    pub fn new(inner: S, cap: usize) -> Self {
        ReplayBodyService { inner, cap }
    }

    /// Returns a [`ReplayBodyLayer`] with the given cap.
    pub fn layer(cap: usize) -> ReplayBodyLayer {
        ReplayBodyLayer::new(cap)
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

impl<S, B> Service<Request<B>> for ReplayBodyService<S>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: Request<B>) -> Self::Future {
        let cap = self.cap;
        self.inner.call(req.map(|body| ReplayBody::new(body, cap)))
    }
}
