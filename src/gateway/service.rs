use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::{BoxError, Service, ServiceExt};

use super::{GatewayBody, GatewayLayer, ResponseFuture, Upstream};

/// Middleware that forwards a caller's request to an [`Upstream`] through the inner service
/// (a keel stack over an HTTP client), and hands the upstream's answer back.
///
/// - The request goes to the upstream's base URL with the caller's path and query; `Host`
///   is the upstream's. The caller's `Authorization` and `Cookie` are removed, so the inner
///   [`Bearer`](crate::auth::Bearer) layer is the only source of credentials.
/// - Hop-by-hop headers ([`remove_hop_by_hop`](super::remove_hop_by_hop)) are removed from
///   the request and from the response, and the upstream's `Set-Cookie` from the response:
///   its cookies belong to the gateway's session with the upstream, not to the caller (see
///   the [module docs](super#headers)).
/// - Bodies stream both ways: nothing is buffered here (the inner
///   [`ReplayBody`](crate::replay::ReplayBody) keeps at most its cap for replays).
/// - A failure of the inner service becomes a response: `504 Gateway Timeout` for a
///   [`tower::timeout`] elapsed error, else `502 Bad Gateway`, with a small JSON body that
///   names the kind of failure (never a token or a secret). So the service's error type is
///   [`Infallible`], as axum's `route_service` wants.
///
/// # Clone
///
/// Each call is sent through a clone of the inner service (`oneshot`), so `poll_ready`
/// always succeeds and backpressure is the inner service's (e.g. the hyper pool's).
#[derive(Debug, Clone)]
pub struct Gateway<S> {
    inner: S,
    upstream: Arc<Upstream>,
}

impl<S> Gateway<S> {
    /// Forwards requests to `upstream` through `inner`.
    pub fn new(inner: S, upstream: Upstream) -> Self {
        Gateway::from_parts(inner, Arc::new(upstream))
    }

    pub(super) fn from_parts(inner: S, upstream: Arc<Upstream>) -> Self {
        Gateway { inner, upstream }
    }

    /// Returns a [`GatewayLayer`] for `upstream`.
    pub fn layer(upstream: Upstream) -> GatewayLayer {
        GatewayLayer::new(upstream)
    }

    /// The upstream requests go to.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
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

impl<S, B, ResB> Service<Request<B>> for Gateway<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = ResponseFuture<tower::util::Oneshot<S, Request<B>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let req = self.upstream.rewrite(req);
        ResponseFuture::new(self.inner.clone().oneshot(req))
    }
}
