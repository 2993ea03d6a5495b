//! Access tokens: a single-flight cache, the client-credentials grant, bearer injection and
//! refresh-on-401 replay.
//!
//! A batch job that runs for hours outlives its access token, and its token can be revoked
//! at any time. These pieces keep it authenticated without a thundering herd: a
//! [`TokenCache`] fetches once for any number of concurrent callers and refreshes ahead of
//! expiry; [`ClientCredentials`] is the usual [`TokenSource`] (OAuth 2.0 client credentials,
//! over any tower HTTP service, with bounded retries of transient failures); [`BearerLayer`]
//! attaches the token, only to the [`Origin`] it was issued for; and [`RefreshOn401Layer`]
//! answers a 401 by invalidating exactly the token that was rejected and replaying the request
//! once. Secrets and tokens never reach `Debug` output, error messages or logs.
//!
//! A token shared by many processes goes through the token-store seam: a [`TokenSource`] is
//! told [`invalidate`](TokenSource::invalidate) when the cache drops a rejected token, and the
//! cache's next fetch waits for it, so a store shared by a fleet (Redis) drops exactly the
//! rejected token before anyone fetches again. A store wraps the grant and is a
//! `TokenSource` itself; see the trait's docs for an example.
//!
//! Outermost first, the stack is `RefreshOn401Layer` → (backoff) → `BearerLayer` → client, with
//! a [`ReplayBodyLayer`](crate::replay::ReplayBodyLayer) on top when request bodies are not
//! in memory.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{header::AUTHORIZATION, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use keel_layers::auth::{BearerLayer, ClientCredentials, Origin, RefreshOn401Layer, TokenCache};
//! use secrecy::SecretString;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // A stand-in for an HTTP client: the token endpoint hands out token-1, token-2, …
//! let issued = Arc::new(AtomicU32::new(0));
//! let http = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move {
//!         let body = format!(r#"{{"access_token":"token-{n}","token_type":"bearer","expires_in":3600}}"#);
//!         Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from(body))))
//!     }
//! });
//! let tokens = TokenCache::new(ClientCredentials::new(
//!     "https://login.example.com/oauth/token".parse()?,
//!     "my-client",
//!     SecretString::from("my-secret"),
//!     http,
//! ));
//!
//! // The API has revoked token-1: it answers 401 to it.
//! let api = service_fn(|req: Request<Full<Bytes>>| async move {
//!     let status = match req.headers()[AUTHORIZATION].to_str()? {
//!         "Bearer token-1" => StatusCode::UNAUTHORIZED,
//!         _ => StatusCode::OK,
//!     };
//!     let mut response = Response::new(Full::new(Bytes::new()));
//!     *response.status_mut() = status;
//!     Ok::<_, tower::BoxError>(response)
//! });
//!
//! let refresh = RefreshOn401Layer::new(tokens.clone());
//! let replays = refresh.stats();
//! let client = ServiceBuilder::new()
//!     .layer(refresh)
//!     .layer(BearerLayer::new(tokens.clone(), Origin::parse("https://api.example.com")?))
//!     .service(api);
//!
//! let request = Request::get("https://api.example.com/v2/users").body(Full::new(Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(replays.replays(), 1);
//! assert_eq!(tokens.stats().fetches, 2);
//! # Ok(())
//! # }
//! ```

mod bearer;
mod cache;
#[cfg(feature = "client-credentials")]
mod client_credentials;
mod origin;
mod refresh;
mod source;
mod token;

#[cfg(test)]
mod tests;

pub use bearer::{Bearer, BearerLayer, ResponseFuture as BearerResponseFuture};
pub use cache::{TokenCache, TokenCacheStats};
#[cfg(feature = "client-credentials")]
#[cfg_attr(docsrs, doc(cfg(feature = "client-credentials")))]
pub use client_credentials::ClientCredentials;
pub use origin::{Origin, OriginError};
pub(crate) use refresh::Refresh;
pub use refresh::{
    RefreshOn401, RefreshOn401Layer, RefreshStats, ResponseFuture as RefreshOn401ResponseFuture,
};
pub use source::{token_source_fn, FetchFuture, InvalidateFuture, TokenSource, TokenSourceFn};
pub use token::{Token, TokenError, TokenId};
