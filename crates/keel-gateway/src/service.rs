use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::{BoxError, Service, ServiceExt};

use crate::layer::Settings;
use crate::{GatewayBody, GatewayLayer, ResponseFuture, Upstream};

/// Middleware that forwards a caller's request to an [`Upstream`] through the inner service
/// (a keel stack over an HTTP client), and hands the upstream's answer back.
///
/// - A path with a dot segment or an ambiguous encoding ([`check_path`](crate::check_path))
///   is answered `400 Bad Request` (code `gateway.path.rejected`) and not forwarded.
/// - The request goes to the upstream's base URL with the caller's path and query; `Host`
///   is the upstream's. The caller's `Authorization` and `Cookie` are removed, so the inner
///   [`Bearer`](keel_layers::auth::Bearer) layer is the only source of credentials.
/// - The caller's `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are replaced with its
///   peer address, or appended to, or dropped ([`Forwarding`](crate::Forwarding)).
/// - Hop-by-hop headers ([`remove_hop_by_hop`](crate::remove_hop_by_hop)) are removed from
///   the request and from the response, and the upstream's `Set-Cookie` from the response:
///   its cookies belong to the gateway's session with the upstream, not to the caller (see
///   the [crate docs](crate#headers)).
/// - Bodies stream both ways: nothing is buffered here (the inner
///   [`ReplayBody`](keel_layers::replay::ReplayBody) keeps at most its cap for replays).
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
    settings: Arc<Settings>,
}

impl<S> Gateway<S> {
    /// Forwards requests to `upstream` through `inner`, with the defaults of
    /// [`GatewayLayer::new`].
    pub fn new(inner: S, upstream: Upstream) -> Self {
        Gateway::from_settings(inner, Arc::new(Settings::new(upstream)))
    }

    pub(crate) fn from_settings(inner: S, settings: Arc<Settings>) -> Self {
        Gateway { inner, settings }
    }

    /// Returns a [`GatewayLayer`] for `upstream`.
    pub fn layer(upstream: Upstream) -> GatewayLayer {
        GatewayLayer::new(upstream)
    }

    /// The upstream requests go to.
    pub fn upstream(&self) -> &Upstream {
        &self.settings.upstream
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
        let settings = &*self.settings;
        let peer = (settings.peer_addr)(req.extensions()).map(|addr| addr.ip());
        match settings.upstream.rewrite(req) {
            Ok(mut req) => {
                settings.forwarding.apply(req.headers_mut(), peer);
                ResponseFuture::forward(self.inner.clone().oneshot(req))
            }
            Err(err) => ResponseFuture::rejected(err),
        }
    }
}
