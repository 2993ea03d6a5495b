//! Forward requests through a keel stack: an API gateway that holds the credentials.
//!
//! Internal tools, scripts and vendor SDKs each need the API's credentials, and each must
//! get token refresh and rate-limit backoff right. A gateway in front of the API can do it
//! once for all of them: callers send plain requests to it, without credentials, and it
//! forwards them with the current token, refreshing it on a 401 and waiting out 429s. The
//! official Genesys Cloud SDKs can be pointed at such a gateway by their host (or gateway)
//! setting, given any placeholder access token.
//!
//! [`Gateway`] is the forwarding step, as a tower service to put in front of a keel stack
//! over an HTTP client: it rewrites the URI and `Host` for its [`Upstream`], removes
//! hop-by-hop headers both ways, streams bodies through, and turns failures into `502`/`504`
//! responses (its error type is [`Infallible`](std::convert::Infallible), so it mounts
//! directly with axum's `Router::route_service`). Put a
//! [`ReplayBodyLayer`](crate::replay::ReplayBodyLayer) under it so request bodies stream and
//! can still be replayed, up to a cap.
//!
//! # Headers
//!
//! | direction | removed |
//! |---|---|
//! | both ways | hop-by-hop headers ([`remove_hop_by_hop`]): `Connection` and every header it names, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, every `Proxy-*` header (`Proxy-Authorization`, `Proxy-Authenticate`, `Proxy-Connection`, …) |
//! | caller → upstream | the caller's `Authorization` and `Cookie`: the keel stack's [`Bearer`](crate::auth::Bearer) layer is the only source of credentials, and with no token for the upstream's origin the upstream gets no `Authorization` at all |
//! | upstream → caller | `Set-Cookie` (and the obsolete `Set-Cookie2`): cookies the upstream sets belong to the gateway's own session with it, which callers must neither see nor replay |
//!
//! The gateway changes no other header but `Host` (set to the upstream's); the stack under
//! it adds its own, such as the bearer token.
//!
//! See `examples/axum_gateway.rs` for a complete gateway.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use keel::auth::{token_source_fn, Origin, Token, TokenCache};
//! use keel::backoff::BackoffPolicy;
//! use keel::gateway::{GatewayLayer, Upstream};
//! use keel::ServiceBuilderExt as _;
//! use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let api = "https://api.example.com";
//! let tokens = TokenCache::new(token_source_fn(|| async { Token::bearer("real-token", None) }));
//! // Stands in for a hyper client: echoes what reached the API.
//! let http = service_fn(|req: Request<_>| async move {
//!     let header = |name: &str| req.headers()[name].to_str().map(str::to_owned);
//!     let seen = format!("{} {} {}", req.uri(), header("host")?, header("authorization")?);
//!     Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(seen))))
//! });
//!
//! let gateway = ServiceBuilder::new()
//!     .layer(GatewayLayer::new(Upstream::new(&api.parse()?)?))
//!     .replay_body(1024 * 1024)
//!     .refresh_on_401(tokens.clone())
//!     .backoff(BackoffPolicy::default())
//!     .bearer(tokens, Origin::parse(api)?)
//!     .service(http);
//!
//! let request = Request::get("http://gateway.internal/api/v2/users?pageSize=10")
//!     .header("authorization", "Bearer anything")
//!     .body(Full::new(Bytes::new()))?;
//! let response = gateway.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let seen = response.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     seen,
//!     "https://api.example.com/api/v2/users?pageSize=10 api.example.com Bearer real-token"
//! );
//! # Ok(())
//! # }
//! ```

mod future;
mod headers;
mod layer;
mod service;
mod upstream;

pub use future::ResponseFuture;
pub use headers::remove_hop_by_hop;
pub use layer::GatewayLayer;
pub use service::Gateway;
pub use upstream::{Upstream, UpstreamError};

/// The response body of a [`Gateway`]: the upstream's body streamed through, or the
/// gateway's own error body.
pub type GatewayBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, tower::BoxError>;

#[cfg(test)]
mod tests;
