//! The clients under test, each a [`Target`]: a bare hyper-util legacy client, keel's stack on
//! the same client (its two retrying layers as one retry loop, as
//! `ServiceBuilderExt::refresh_on_401_and_backoff` and keel-genesys build it, and, for
//! comparison, as two stacked layers), and reqwest with reqwest-middleware and reqwest-retry.
//!
//! Every target sends `GET <url>` and drains the response body frame by frame without
//! collecting it, so the figures compare the clients, not body buffering.
//!
//! # Example
//!
//! ```
//! use keel_bench::clients::BareTarget;
//! use keel_bench::load::Target;
//! use keel_bench::server::LoopbackServer;
//!
//! let server = LoopbackServer::start().unwrap();
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut bare = BareTarget::new(&server.url("/ping")).unwrap();
//! bare.call().await.unwrap();
//! # });
//! assert_eq!(server.served(), 1);
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_layers::auth::{
    token_source_fn, Bearer, BearerLayer, Origin, RefreshOn401, RefreshOn401Layer, Token,
    TokenCache,
};
use keel_layers::backoff::{Backoff, BackoffLayer, BackoffPolicy};
use keel_layers::replay::{ReplayBody, ReplayBodyLayer, ReplayBodyService};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

use crate::load::Target;

/// The bare client every stack is compared against.
pub type HyperClient = Client<HttpConnector, Empty<Bytes>>;

/// A hyper-util legacy client with `TCP_NODELAY`, as a production client would configure it.
pub fn hyper_client() -> HyperClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Drains a response body frame by frame; a non-2xx status is an error.
///
/// # Errors
///
/// A non-success status or a body error.
pub async fn drain<B>(res: Response<B>) -> Result<(), BoxError>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    if !res.status().is_success() {
        return Err(format!("unexpected status {}", res.status()).into());
    }
    let mut body = res.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(Into::into)?;
    }
    Ok(())
}

/// `GET url` through a bare [`HyperClient`].
#[derive(Debug, Clone)]
pub struct BareTarget {
    client: HyperClient,
    uri: Uri,
}

impl BareTarget {
    /// A new client for `url`.
    ///
    /// # Errors
    ///
    /// When `url` is not a valid URI.
    pub fn new(url: &str) -> Result<Self, BoxError> {
        Ok(Self {
            client: hyper_client(),
            uri: url.parse()?,
        })
    }
}

impl Target for BareTarget {
    async fn call(&mut self) -> Result<(), BoxError> {
        let req = Request::get(self.uri.clone()).body(Empty::new())?;
        drain(self.client.request(req).await?).await
    }
}

/// `GET url` with `Authorization: Bearer …` through reqwest + reqwest-middleware +
/// reqwest-retry (exponential backoff, 3 retries), the stack a reqwest user would pick.
#[derive(Debug, Clone)]
pub struct ReqwestTarget {
    client: ClientWithMiddleware,
    url: reqwest::Url,
    authorization: HeaderValue,
}

impl ReqwestTarget {
    /// A new client for `url`, sending `token` as a bearer token.
    ///
    /// # Errors
    ///
    /// When `url` or the token is invalid or the client cannot be built.
    pub fn new(url: &str, token: &str) -> Result<Self, BoxError> {
        let inner = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let policy = ExponentialBackoff::builder().build_with_max_retries(3);
        let client = reqwest_middleware::ClientBuilder::new(inner)
            .with(RetryTransientMiddleware::new_with_policy(policy))
            .build();
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))?;
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            url: url.parse()?,
            authorization,
        })
    }
}

impl Target for ReqwestTarget {
    async fn call(&mut self) -> Result<(), BoxError> {
        let mut res = self
            .client
            .get(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("unexpected status {}", res.status()).into());
        }
        while res.chunk().await?.is_some() {}
        Ok(())
    }
}

/// The body keel's stack hands the client: any request body, made replayable.
pub type KeelBody = ReplayBody<Empty<Bytes>>;

/// keel's full stack on a hyper-util legacy client, outermost first:
/// `ReplayBodyLayer → BackoffLayer::replay_on(RefreshOn401Layer) (refresh on 401 and backoff, one retry
/// loop) → BearerLayer → client`.
pub type KeelService = ReplayBodyService<Backoff<Bearer<Client<HttpConnector, KeelBody>>>>;

/// The same stack with the two retrying layers stacked separately:
/// `ReplayBodyLayer → RefreshOn401Layer → BackoffLayer → BearerLayer → client`.
pub type KeelLayersService =
    ReplayBodyService<RefreshOn401<Backoff<Bearer<Client<HttpConnector, KeelBody>>>>>;

/// A [`TokenCache`] that already holds a valid token (an hour left), as in a job's steady
/// state: the stack then never fetches.
///
/// # Errors
///
/// When the token is not a valid header value.
pub async fn warm_tokens(token: &'static str) -> Result<TokenCache, BoxError> {
    let tokens = TokenCache::new(token_source_fn(move || async move {
        Token::bearer(token, Some(Duration::from_secs(3600)))
    }));
    tokens.token().await?;
    Ok(tokens)
}

/// `GET url` through any tower HTTP service taking `Request<Empty<Bytes>>`: keel's stack, or
/// a part of it (the allocation breakdown measures each layer on its own).
#[derive(Debug, Clone)]
pub struct StackTarget<S> {
    service: S,
    uri: Uri,
}

/// `GET url` through keel's full stack on the same kind of client as [`BareTarget`], token
/// cached, no retries.
pub type KeelTarget = StackTarget<KeelService>;

/// [`KeelTarget`] with the retrying layers stacked separately.
pub type KeelLayersTarget = StackTarget<KeelLayersService>;

fn keel_client() -> Client<HttpConnector, KeelBody> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

impl<S> StackTarget<S> {
    /// `service` sending to `url`.
    ///
    /// # Errors
    ///
    /// When `url` is not a valid URI.
    pub fn new(service: S, url: &str) -> Result<Self, BoxError> {
        Ok(Self {
            service,
            uri: url.parse()?,
        })
    }
}

impl StackTarget<KeelService> {
    /// keel's full stack for `url`, taking tokens from `tokens`.
    ///
    /// # Errors
    ///
    /// When `url` is not a valid URI or origin.
    pub fn keel(url: &str, tokens: TokenCache) -> Result<Self, BoxError> {
        Self::keel_with(url, tokens, BackoffPolicy::default())
    }

    /// [`keel`](Self::keel) with the backoff `policy` given (a shared rate state).
    ///
    /// # Errors
    ///
    /// When `url` is not a valid URI or origin.
    pub fn keel_with(
        url: &str,
        tokens: TokenCache,
        policy: BackoffPolicy,
    ) -> Result<Self, BoxError> {
        let refresh = RefreshOn401Layer::new(tokens.clone());
        let service = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(BackoffLayer::new(policy).replay_on(refresh.clone()))
            .layer(BearerLayer::new(tokens, Origin::parse(url)?))
            .service(keel_client());
        Self::new(service, url)
    }
}

impl StackTarget<KeelLayersService> {
    /// keel's full stack for `url` with `RefreshOn401Layer` and `BackoffLayer` stacked
    /// separately, taking tokens from `tokens`.
    ///
    /// # Errors
    ///
    /// When `url` is not a valid URI or origin.
    pub fn keel_layers(url: &str, tokens: TokenCache) -> Result<Self, BoxError> {
        let service = ServiceBuilder::new()
            .layer(ReplayBodyLayer::new(64 * 1024))
            .layer(RefreshOn401Layer::new(tokens.clone()))
            .layer(BackoffLayer::new(BackoffPolicy::default()))
            .layer(BearerLayer::new(tokens, Origin::parse(url)?))
            .service(keel_client());
        Self::new(service, url)
    }
}

impl<S, ResB> Target for StackTarget<S>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    ResB: Body + Unpin + Send,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    async fn call(&mut self) -> Result<(), BoxError> {
        let req = Request::get(self.uri.clone()).body(Empty::new())?;
        let svc = self.service.ready().await.map_err(Into::into)?;
        drain(svc.call(req).await.map_err(Into::into)?).await
    }
}

/// Any of the clients under test, so a bench can hold them in one list.
// NOTE: unboxed on purpose: a contender is cloned once per caller, and boxing would add a
// pointer chase to every measured request of some contenders and not others.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AnyTarget {
    /// The bare hyper-util client.
    Bare(BareTarget),
    /// keel's stack on the bare client.
    Keel(KeelTarget),
    /// keel's stack with the retrying layers stacked separately.
    KeelLayers(KeelLayersTarget),
    /// reqwest + reqwest-middleware + reqwest-retry.
    Reqwest(ReqwestTarget),
    /// A conversation-details page from keel-sim, through a bare client.
    SimPage(crate::sim::SimPageTarget),
}

impl Target for AnyTarget {
    async fn call(&mut self) -> Result<(), BoxError> {
        match self {
            AnyTarget::Bare(t) => t.call().await,
            AnyTarget::Keel(t) => t.call().await,
            AnyTarget::KeelLayers(t) => t.call().await,
            AnyTarget::Reqwest(t) => t.call().await,
            AnyTarget::SimPage(t) => t.call().await,
        }
    }
}

/// The sizes of the response futures of the bare client and of keel's stack, layer by layer:
/// a response future is moved by value through every layer, so its size is copying work.
pub fn future_sizes() -> String {
    fn size<S: Service<R>, R>(_: &S) -> usize {
        std::mem::size_of::<S::Future>()
    }
    fn tokens() -> TokenCache {
        TokenCache::new(token_source_fn(|| async { Token::bearer("t", None) }))
    }
    let origin = Origin::parse("http://127.0.0.1").expect("a valid origin");
    let client = || -> Client<HttpConnector, KeelBody> {
        Client::builder(TokioExecutor::new()).build_http()
    };
    let bearer = BearerLayer::new(tokens(), origin);
    let b = ServiceBuilder::new()
        .layer(bearer.clone())
        .service(client());
    let bo = ServiceBuilder::new()
        .layer(BackoffLayer::new(BackoffPolicy::default()))
        .layer(bearer.clone())
        .service(client());
    let r = ServiceBuilder::new()
        .layer(RefreshOn401Layer::new(tokens()))
        .layer(BackoffLayer::new(BackoffPolicy::default()))
        .layer(bearer.clone())
        .service(client());
    let one_loop = ServiceBuilder::new()
        .layer(
            BackoffLayer::new(BackoffPolicy::default()).replay_on(RefreshOn401Layer::new(tokens())),
        )
        .layer(bearer.clone())
        .service(client());
    let full = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(RefreshOn401Layer::new(tokens()))
        .layer(BackoffLayer::new(BackoffPolicy::default()))
        .layer(bearer)
        .service(client());
    format!(
        "response future bytes: client {}, +Bearer {}, +Backoff {}, +RefreshOn401 {}, +ReplayBody {}; \
         Backoff with refresh_on_401 (one loop) over Bearer {}; Request<KeelBody> {}, client {}",
        size::<_, Request<KeelBody>>(&client()),
        size::<_, Request<KeelBody>>(&b),
        size::<_, Request<KeelBody>>(&bo),
        size::<_, Request<KeelBody>>(&r),
        size::<_, Request<Empty<Bytes>>>(&full),
        size::<_, Request<KeelBody>>(&one_loop),
        std::mem::size_of::<Request<KeelBody>>(),
        std::mem::size_of::<Client<HttpConnector, KeelBody>>(),
    )
}
