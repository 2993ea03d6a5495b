use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{BoxError, Service};

use super::{BearerLayer, ResponseFuture};
use crate::auth::{Origin, TokenCache};

/// Middleware that sets `Authorization: Bearer …` (marked sensitive) on requests for its
/// [`Origin`], with a token from a [`TokenCache`].
///
/// - A request whose URI is relative, or whose scheme, host and port are the origin's, gets
///   the current token; an `Authorization` header the caller set is replaced, since this
///   layer owns that header for its origin.
/// - A request for any other origin is passed on unchanged: no token is attached, and
///   nothing the caller set is removed.
/// - The [`TokenId`](crate::auth::TokenId) of the token sent is put into the extensions of a
///   `401 Unauthorized` response, for [`RefreshOn401`](crate::auth::RefreshOn401); other
///   responses are returned untouched.
///
/// Place redirect-following *outside* this layer, so a redirect is a new request that is
/// checked against the origin again.
///
/// # Errors
///
/// `Error = BoxError`: a failure to get a token is a [`TokenError`](crate::auth::TokenError)
/// (find it with `downcast_ref`); errors of the inner service are passed on boxed.
#[derive(Debug, Clone)]
pub struct Bearer<S> {
    inner: S,
    tokens: TokenCache,
    origin: Arc<Origin>,
}

impl<S> Bearer<S> {
    /// Wraps `inner`, attaching tokens from `tokens` to requests for `origin`.
    pub fn new(inner: S, tokens: TokenCache, origin: Origin) -> Self {
        Bearer::from_parts(inner, tokens, Arc::new(origin))
    }

    pub(super) fn from_parts(inner: S, tokens: TokenCache, origin: Arc<Origin>) -> Self {
        Bearer {
            inner,
            tokens,
            origin,
        }
    }

    /// Returns a [`BearerLayer`] for `origin`.
    pub fn layer(tokens: TokenCache, origin: Origin) -> BearerLayer {
        BearerLayer::new(tokens, origin)
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

impl<S, B, ResB> Service<Request<B>> for Bearer<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if !self.origin.matches(req.uri()) {
            tracing::trace!(origin = %self.origin, "request for another origin; no token attached");
            return ResponseFuture::called(self.inner.call(req), None);
        }
        let cached = self
            .tokens
            .with_cached(|token| (token.header_value().clone(), token.id()));
        if let Some((value, id)) = cached {
            req.headers_mut().insert(AUTHORIZATION, value);
            return ResponseFuture::called(self.inner.call(req), Some(id));
        }
        // NOTE: the ready service goes into the future; a clone (not yet ready) stays behind.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let tokens = self.tokens.clone();
        ResponseFuture::fetching(Box::pin(async move { tokens.token().await }), ready, req)
    }
}
