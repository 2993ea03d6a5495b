//! [`ServiceBuilderExt`]: one `ServiceBuilder` method per keel layer.

use crate::auth::{BearerLayer, Origin, RefreshOn401Layer, TokenCache};
use crate::backoff::{BackoffLayer, BackoffPolicy};
use crate::replay::ReplayBodyLayer;
use tower::layer::util::Stack;
use tower::ServiceBuilder;

mod sealed {
    #[allow(unreachable_pub)]
    pub trait Sealed<T> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Extension trait that adds a method per keel layer to [`tower::ServiceBuilder`], so a whole
/// client stack reads as one chain.
///
/// Layers apply outermost first, as with [`ServiceBuilder::layer`]. The order keel's layers
/// are meant to go in is the order of the methods below: [`replay_body`] (so any body can be
/// sent again), [`refresh_on_401`] (replays once with a new token), [`backoff`] (waits out
/// 429/503 and replays), then [`bearer`] (puts the current token on each attempt) next to
/// the HTTP client.
///
/// [`refresh_on_401_and_backoff`] is the two retrying layers in one retry loop, the cheaper
/// way to stack them.
///
/// Each other method is the same as `.layer(FooLayer::new(..))`. To read a layer's counters, keep
/// a handle first: [`BackoffPolicy::stats`] before passing the policy, or build a
/// [`RefreshOn401Layer`] yourself and use its [`stats`](RefreshOn401Layer::stats).
///
/// This trait is sealed: it is implemented for `ServiceBuilder` only. It has the same name
/// as `tower_http::ServiceBuilderExt`; import both `as _` to use both sets of methods
/// (through the facade: `use keel::ServiceBuilderExt as _;`).
///
/// [`replay_body`]: ServiceBuilderExt::replay_body
/// [`refresh_on_401`]: ServiceBuilderExt::refresh_on_401
/// [`backoff`]: ServiceBuilderExt::backoff
/// [`bearer`]: ServiceBuilderExt::bearer
/// [`refresh_on_401_and_backoff`]: ServiceBuilderExt::refresh_on_401_and_backoff
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use keel_layers::auth::{token_source_fn, Origin, Token, TokenCache};
/// use keel_layers::backoff::BackoffPolicy;
/// // `as _`: the methods without the name, which tower_http::ServiceBuilderExt also uses.
/// use keel_layers::ServiceBuilderExt as _;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let tokens = TokenCache::new(token_source_fn(|| async { Token::bearer("t-1", None) }));
/// let http = service_fn(|req: Request<_>| async move {
///     assert_eq!(req.headers()["authorization"], "Bearer t-1");
///     Ok::<_, tower::BoxError>(Response::new(Full::new(Bytes::from("ok"))))
/// });
///
/// let client = ServiceBuilder::new()
///     .replay_body(64 * 1024)
///     .refresh_on_401(tokens.clone())
///     .backoff(BackoffPolicy::default())
///     .bearer(tokens, Origin::parse("https://api.example.com")?)
///     .service(http);
///
/// let request = Request::get("https://api.example.com/v2/users").body(Full::new(Bytes::new()))?;
/// let response = client.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Wraps each request body in a [`ReplayBody`](crate::replay::ReplayBody) that keeps up
    /// to `cap` bytes, so the retrying layers below can send it again
    /// ([`ReplayBodyLayer`]).
    fn replay_body(self, cap: usize) -> ServiceBuilder<Stack<ReplayBodyLayer, L>>;

    /// On a 401, invalidates the token that was sent and replays the request once with a new
    /// one ([`RefreshOn401Layer`]).
    fn refresh_on_401(self, tokens: TokenCache) -> ServiceBuilder<Stack<RefreshOn401Layer, L>>;

    /// Retries 429 and 503 after the wait the server asks for, within `policy`'s limits
    /// ([`BackoffLayer`]).
    fn backoff(self, policy: BackoffPolicy) -> ServiceBuilder<Stack<BackoffLayer, L>>;

    /// [`refresh_on_401`](ServiceBuilderExt::refresh_on_401) and then
    /// [`backoff`](ServiceBuilderExt::backoff), as one retry loop: the same behaviour and
    /// counters, with one request backup and one spare service for both kinds of retry
    /// instead of two, which every request pays for ([`BackoffLayer::replay_on`]).
    ///
    /// To read the counters, build the layers yourself:
    /// `.layer(BackoffLayer::new(policy).replay_on(refresh.clone()))`, keeping
    /// `refresh.stats()` and `policy.stats()`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use bytes::Bytes;
    /// use http::{Request, Response, StatusCode};
    /// use http_body_util::Full;
    /// use keel_layers::auth::{token_source_fn, Origin, Token, TokenCache};
    /// use keel_layers::backoff::BackoffPolicy;
    /// use keel_layers::ServiceBuilderExt as _;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower::BoxError> {
    /// let issued = Arc::new(AtomicU32::new(0));
    /// let counter = issued.clone();
    /// let tokens = TokenCache::new(token_source_fn(move || {
    ///     let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    ///     async move { Token::bearer(&format!("t-{n}"), None) }
    /// }));
    /// // The first token is refused; the second is accepted.
    /// let http = service_fn(|req: Request<_>| async move {
    ///     let status = match req.headers()["authorization"].to_str()? {
    ///         "Bearer t-1" => StatusCode::UNAUTHORIZED,
    ///         _ => StatusCode::OK,
    ///     };
    ///     let mut response = Response::new(Full::new(Bytes::new()));
    ///     *response.status_mut() = status;
    ///     Ok::<_, tower::BoxError>(response)
    /// });
    ///
    /// let client = ServiceBuilder::new()
    ///     .replay_body(64 * 1024)
    ///     .refresh_on_401_and_backoff(tokens.clone(), BackoffPolicy::default())
    ///     .bearer(tokens, Origin::parse("https://api.example.com")?)
    ///     .service(http);
    ///
    /// let request = Request::get("https://api.example.com/v2/users").body(Full::new(Bytes::new()))?;
    /// let response = client.oneshot(request).await?;
    /// assert_eq!(response.status(), StatusCode::OK);
    /// assert_eq!(issued.load(Ordering::SeqCst), 2, "refreshed once after the 401");
    /// # Ok(())
    /// # }
    /// ```
    fn refresh_on_401_and_backoff(
        self,
        tokens: TokenCache,
        policy: BackoffPolicy,
    ) -> ServiceBuilder<Stack<BackoffLayer, L>>;

    /// Sets `Authorization: Bearer …` from `tokens` on requests for `origin`, and on no
    /// others ([`BearerLayer`]).
    fn bearer(self, tokens: TokenCache, origin: Origin) -> ServiceBuilder<Stack<BearerLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn replay_body(self, cap: usize) -> ServiceBuilder<Stack<ReplayBodyLayer, L>> {
        self.layer(ReplayBodyLayer::new(cap))
    }

    fn refresh_on_401(self, tokens: TokenCache) -> ServiceBuilder<Stack<RefreshOn401Layer, L>> {
        self.layer(RefreshOn401Layer::new(tokens))
    }

    fn backoff(self, policy: BackoffPolicy) -> ServiceBuilder<Stack<BackoffLayer, L>> {
        self.layer(BackoffLayer::new(policy))
    }

    fn refresh_on_401_and_backoff(
        self,
        tokens: TokenCache,
        policy: BackoffPolicy,
    ) -> ServiceBuilder<Stack<BackoffLayer, L>> {
        let refresh = RefreshOn401Layer::new(tokens);
        self.layer(BackoffLayer::new(policy).replay_on(refresh))
    }

    fn bearer(self, tokens: TokenCache, origin: Origin) -> ServiceBuilder<Stack<BearerLayer, L>> {
        self.layer(BearerLayer::new(tokens, origin))
    }
}
