//! [`KeelLayer`]: the whole client stack, in the one order that works, as one layer.
//!
//! keel's layers only work in one order: replay outermost (so any body can be sent again),
//! then refresh-on-401 and backoff (which replay), then bearer next to the client (so each
//! attempt carries the current token). Stacked by hand, a misordered chain compiles and runs
//! but never refreshes. `KeelLayer` assembles replay → refresh-on-401 + backoff (one retry
//! loop, [`BackoffLayer::replay_on`]) → bearer itself, and its service has a short name,
//! [`KeelService<S>`], to store in a struct or an axum `State`.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use keel::auth::{token_source_fn, Origin, Token, TokenCache};
//! use keel::body::{Bytes, Full};
//! use keel::http::{Request, Response, StatusCode};
//! use keel::{KeelLayer, KeelService};
//! use tower::{service_fn, BoxError, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let issued = Arc::new(AtomicU32::new(0));
//! let tokens = TokenCache::new(token_source_fn(move || {
//!     let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move { Token::bearer(&format!("token-{n}"), None) }
//! }));
//! // The API refuses the first token, then rate-limits once.
//! let calls = Arc::new(AtomicU32::new(0));
//! let api = service_fn(move |req: Request<_>| {
//!     let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move {
//!         let response = match (call, req.headers()["authorization"].to_str()?) {
//!             (_, "Bearer token-1") => Response::builder().status(401),
//!             (2, _) => Response::builder().status(429).header("retry-after", "2"),
//!             _ => Response::builder(),
//!         };
//!         Ok::<_, BoxError>(response.body(Full::new(Bytes::new()))?)
//!     }
//! });
//!
//! let layer = KeelLayer::new(tokens.clone(), Origin::parse("https://api.example.com")?);
//! let client: KeelService<_> = layer.layer(api);
//!
//! let request = Request::post("https://api.example.com/api/v2/query")
//!     .body(Full::new(Bytes::from_static(b"{}")))?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(tokens.stats().fetches, 2);
//! # Ok(())
//! # }
//! ```

use keel_layers::auth::{Bearer, BearerLayer, Origin, RefreshOn401Layer, RefreshStats, TokenCache};
use keel_layers::backoff::{Backoff, BackoffLayer, BackoffPolicy};
use keel_layers::replay::{ReplayBodyLayer, ReplayBodyService};
use tower::Layer;

/// The service [`KeelLayer`] makes around an HTTP client `S`: replay → refresh-on-401 and
/// backoff in one retry loop → bearer → `S`.
///
/// Requests take any body `B` (wrapped in a [`ReplayBody<B>`](crate::replay::ReplayBody) on
/// the way down), so `S` must accept `Request<ReplayBody<B>>`: for a hyper-util client,
/// `Client<C, ReplayBody<B>>`.
pub type KeelService<S> = ReplayBodyService<Backoff<Bearer<S>>>;

/// Layer that applies the whole keel client stack in the right order, making a
/// [`KeelService`].
///
/// Defaults: request bodies kept for replays up to 1 MiB ([`replay_cap`](Self::replay_cap)),
/// [`BackoffPolicy::default`] ([`backoff`](Self::backoff)), one replay after a 401
/// ([`max_refresh_replays`](Self::max_refresh_replays)); the token goes to `origin` only.
///
/// # Clone
///
/// Every service this layer makes shares the token cache, the backoff policy's budget, gate
/// and counters, and the refresh counters.
#[derive(Clone, Debug)]
pub struct KeelLayer {
    tokens: TokenCache,
    origin: Origin,
    replay_cap: usize,
    refresh: RefreshOn401Layer,
    policy: BackoffPolicy,
}

impl KeelLayer {
    /// The stack that puts `tokens`' bearer token on requests for `origin`.
    pub fn new(tokens: TokenCache, origin: Origin) -> Self {
        KeelLayer {
            refresh: RefreshOn401Layer::new(tokens.clone()),
            tokens,
            origin,
            replay_cap: 1024 * 1024,
            policy: BackoffPolicy::default(),
        }
    }

    /// Bytes of each request body kept for replays; a larger body is sent once and its
    /// response returned as it is.
    pub fn replay_cap(mut self, bytes: usize) -> Self {
        self.replay_cap = bytes;
        self
    }

    /// The 429/503 retry policy (keep [`BackoffPolicy::stats`] before passing it to read the
    /// counters).
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replays after a 401, each with a freshly fetched token (default 1).
    pub fn max_refresh_replays(mut self, replays: u32) -> Self {
        self.refresh = RefreshOn401Layer::new(self.tokens.clone()).max_replays(replays);
        self
    }

    /// The refresh-on-401 counters, shared by every service this layer makes.
    pub fn refresh_stats(&self) -> RefreshStats {
        self.refresh.stats()
    }
}

impl<S> Layer<S> for KeelLayer {
    type Service = KeelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let bearer = BearerLayer::new(self.tokens.clone(), self.origin.clone()).layer(inner);
        let retry = BackoffLayer::new(self.policy.clone()).replay_on(self.refresh.clone());
        ReplayBodyLayer::new(self.replay_cap).layer(retry.layer(bearer))
    }
}
