//! keel: tower middleware for long batch jobs against token-protected, rate-limited,
//! paginated HTTP APIs.
//!
//! A batch export runs for hours. Its access token expires or is revoked half way, the API
//! answers 429 with a `Retry-After`, pages arrive slowly, and the job must still end with
//! every record exactly once. Vendor SDKs tend to leave that to the caller (the official
//! Genesys Cloud Python SDK fetches a client-credentials token once and does not refresh it
//! on a 401, nor retry a `POST` that got a 429). keel is that missing part, as ordinary
//! [`tower`] layers for any hyper, axum or tower HTTP client:
//!
//! | module | what it does |
//! |---|---|
//! | [`replay`] | makes any request body replayable, up to a byte cap ([`ReplayBody`](replay::ReplayBody)) |
//! | [`auth`] | a single-flight [`TokenCache`](auth::TokenCache), the OAuth client-credentials grant, bearer injection for one origin, refresh-and-replay on 401 |
//! | [`backoff`] | 429/503 retries that wait what `Retry-After` says, jittered exponential backoff, retry budgets, a pacing gate shared by clones |
//! | [`paginate`] | a `Stream` of pages (page numbers, cursors, next links) with bounded prefetch and resume |
//! | `genesys` | the Genesys Cloud client, resumable conversation-details exports and the export engine (feature `genesys`; the `genesys-export` program is its own package) |
//! | `gateway` | forwards requests through a keel stack: an API gateway that holds the credentials (feature `gateway`) |
//! | `sim` | a Genesys Cloud simulator with token expiry, revocation, 429s and faults (feature `sim`) |
//!
//! The examples show the three ways keel is used: stacked onto an existing client
//! (`examples/hyper_client.rs`), embedded in a gateway (`examples/axum_gateway.rs`) and
//! unit-tested with mocks (`examples/mock_service.rs`); `examples/batch_export.rs` is the
//! export job from library calls.
//!
//! [`KeelLayer`] is the whole stack as one layer, in the order that works, and its service
//! has a short name ([`KeelService<S>`]) to keep in a struct. [`ServiceBuilderExt`] adds one
//! [`ServiceBuilder`](tower::ServiceBuilder) method per layer, for stacks of your own,
//! outermost first:
//!
//! ```text
//!  request ─▶ replay_body ─▶ refresh_on_401 ─▶ backoff ─▶ bearer ─▶ HTTP client ─▶ API
//!             (keep ≤ cap     (401: drop the     (429/503:   (Authorization:
//!              bytes for       rejected token,    wait, then  Bearer <token>,
//!              replays)        replay once)       replay)     one origin only)
//! ```
//!
//! # Example
//!
//! A token that the API revokes after its first use, and an API that is rate limited once:
//! the caller sees neither.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use keel::auth::{token_source_fn, Origin, Token, TokenCache};
//! use keel::body::{Bytes, Full};
//! use keel::http::{Request, Response, StatusCode};
//! use keel::backoff::BackoffPolicy;
//! use keel::ServiceBuilderExt as _;
//! use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let issued = Arc::new(AtomicU32::new(0));
//! let tokens = TokenCache::new(token_source_fn(move || {
//!     let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move { Token::bearer(&format!("token-{n}"), None) }
//! }));
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
//! let client = ServiceBuilder::new()
//!     .replay_body(64 * 1024)
//!     .refresh_on_401(tokens.clone())
//!     .backoff(BackoffPolicy::default())
//!     .bearer(tokens.clone(), Origin::parse("https://api.example.com")?)
//!     .service(api);
//!
//! let body = Full::new(Bytes::from(r#"{"paging":{"pageNumber":1}}"#));
//! let request = Request::post("https://api.example.com/api/v2/query").body(body)?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(tokens.stats().fetches, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! The layers ([`auth`], [`backoff`], [`replay`]), [`paginate`], [`KeelLayer`] and
//! [`ServiceBuilderExt`] are always available; nothing else is on by default, so a
//! layers-only user compiles the layers and the pager alone.
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `genesys` | no | `keel::genesys` (the `keel-genesys` crate): the Genesys Cloud client, models and exports |
//! | `gateway` | no | `keel::gateway` (the `keel-gateway` crate): `Gateway`, forwarding through a keel stack that refuses dot-segment paths and removes hop-by-hop, credential and forwarding headers |
//! | `sim` | no | `keel::sim` (the `keel-sim` crate): the Genesys Cloud simulator |
//! | `full` | no | all of the above |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod stack;

pub use keel_layers::ServiceBuilderExt;
pub use keel_layers::{error_chain, hook, metrics};
pub use stack::{KeelLayer, KeelService};

/// The `http` crate, whose `Request`, `Response` and headers every keel layer takes.
pub use http;

pub mod auth {
    //! Access tokens: a single-flight cache, the client-credentials grant, bearer injection and
    //! refresh-on-401 replay.
    //!
    //! A batch job outlives its access token, and the token can be revoked at any time. A
    //! [`TokenCache`] fetches once for any number of concurrent callers and refreshes ahead of
    //! expiry; [`ClientCredentials`] is the OAuth 2.0 client-credentials grant over any tower
    //! HTTP service; [`BearerLayer`] attaches the token to its [`Origin`] only; and
    //! [`RefreshOn401Layer`] answers a 401 by invalidating exactly the rejected token and
    //! replaying the request once. The client secret is a [`SecretString`] (re-exported from
    //! `secrecy`), never shown by `Debug`, errors or logs.
    //!
    //! # Example
    //!
    //! ```
    //! use std::sync::atomic::{AtomicU32, Ordering};
    //! use std::sync::Arc;
    //! use keel::auth::{ClientCredentials, Origin, SecretString, TokenCache};
    //! use keel::body::{Bytes, Full};
    //! use keel::http::{header::AUTHORIZATION, Request, Response, StatusCode};
    //! use keel::KeelLayer;
    //! use tower::{service_fn, BoxError, Layer, ServiceExt};
    //!
    //! # #[tokio::main(flavor = "current_thread")]
    //! # async fn main() -> Result<(), BoxError> {
    //! // A stand-in for the token endpoint: it hands out token-1, token-2, …
    //! let issued = Arc::new(AtomicU32::new(0));
    //! let login = service_fn(move |_req: Request<Full<Bytes>>| {
    //!     let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
    //!     async move {
    //!         let body = format!(r#"{{"access_token":"token-{n}","token_type":"bearer","expires_in":3600}}"#);
    //!         Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(body))))
    //!     }
    //! });
    //! let grant = ClientCredentials::try_new(
    //!     "https://login.example.com/oauth/token".parse()?,
    //!     "my-client",
    //!     SecretString::from("my-secret"),
    //!     login,
    //! )?;
    //! let tokens = TokenCache::new(grant);
    //!
    //! // The API has revoked token-1.
    //! let api = service_fn(|req: Request<_>| async move {
    //!     let status = match req.headers()[AUTHORIZATION].to_str()? {
    //!         "Bearer token-1" => StatusCode::UNAUTHORIZED,
    //!         _ => StatusCode::OK,
    //!     };
    //!     Ok::<_, BoxError>(Response::builder().status(status).body(Full::new(Bytes::new()))?)
    //! });
    //! let client = KeelLayer::new(tokens.clone(), Origin::parse("https://api.example.com")?).layer(api);
    //!
    //! let request = Request::get("https://api.example.com/v2/users").body(Full::new(Bytes::new()))?;
    //! assert_eq!(client.oneshot(request).await?.status(), StatusCode::OK);
    //! assert_eq!(tokens.stats().fetches, 2);
    //! # Ok(())
    //! # }
    //! ```
    pub use keel_layers::auth::*;
    pub use secrecy::{ExposeSecret, SecretString};
}

pub mod backoff {
    //! Rate-limit backoff: retry 429/503 after the wait the server asks for, within budgets,
    //! pacing every clone of the client through one shared gate.
    //!
    //! The server usually says how long to wait (`Retry-After`, `inin-ratelimit-reset`,
    //! `ratelimit-reset`); [`Backoff`] waits exactly that, once, then replays the request,
    //! and falls back to jittered exponential backoff without a hint. After a 429, every clone
    //! holds new requests at a shared gate until the reset, then releases them at the rate the
    //! server advertised rather than all at once, lifting that pace once 429s stop. Limits: attempts, elapsed time, the longest
    //! single wait and a retry budget ([`BackoffPolicy`]).
    //!
    //! # Example
    //!
    //! A server over its limit for the next 30 seconds, which says so: one wait, exactly 30 s.
    //!
    //! ```
    //! use std::sync::atomic::{AtomicU32, Ordering};
    //! use std::sync::Arc;
    //! use std::time::Duration;
    //! use keel::backoff::{BackoffLayer, BackoffPolicy};
    //! use keel::body::{Bytes, Full};
    //! use keel::http::{Request, Response, StatusCode};
    //! use tower::{service_fn, BoxError, Layer, ServiceExt};
    //!
    //! # #[tokio::main(flavor = "current_thread", start_paused = true)]
    //! # async fn main() -> Result<(), BoxError> {
    //! let calls = Arc::new(AtomicU32::new(0));
    //! let api = service_fn(move |_req: Request<Full<Bytes>>| {
    //!     let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
    //!     async move {
    //!         let response = match first {
    //!             true => Response::builder().status(429).header("retry-after", "30"),
    //!             false => Response::builder(),
    //!         };
    //!         Ok::<_, BoxError>(response.body(Full::new(Bytes::new()))?)
    //!     }
    //! });
    //! let policy = BackoffPolicy::default();
    //! let stats = policy.stats();
    //! let client = BackoffLayer::new(policy).layer(api);
    //!
    //! let started = tokio::time::Instant::now();
    //! let request = Request::get("https://api.example.com/v2/users").body(Full::new(Bytes::new()))?;
    //! assert_eq!(client.oneshot(request).await?.status(), StatusCode::OK);
    //! assert_eq!(started.elapsed(), Duration::from_secs(30));
    //! assert_eq!(stats.throttled_waits(), 1);
    //! # Ok(())
    //! # }
    //! ```
    pub use keel_layers::backoff::*;
}

pub mod replay {
    //! Replayable request bodies, so the retrying layers can send a request again.
    //!
    //! A retry needs the request a second time, but a streaming body is consumed as it is sent.
    //! In-memory bodies (`Full`, `Empty`, `String`) can always be cloned; any other body can
    //! once [`ReplayBodyLayer`] wraps it in a [`ReplayBody`], which keeps what it sent up to a
    //! byte cap. A body over the cap is sent once and never replayed as an empty or partial
    //! body: the response goes back as it is.
    //!
    //! # Example
    //!
    //! ```
    //! use keel::body::{BodyExt, Bytes, Full, ReplayBody};
    //! use keel::http::{Request, Response};
    //! use keel::replay::{ReplayBodyLayer, TryCloneBody};
    //! use tower::{service_fn, BoxError, Layer, ServiceExt};
    //!
    //! # #[tokio::main(flavor = "current_thread")]
    //! # async fn main() -> Result<(), BoxError> {
    //! let svc = ReplayBodyLayer::new(64 * 1024).layer(service_fn(|req: Request<ReplayBody<_>>| async move {
    //!     // A retrying layer keeps a backup before the first attempt, and replays it.
    //!     let backup = req.body().try_clone_body().expect("under the cap");
    //!     let first = req.into_body().collect().await?.to_bytes();
    //!     let again = backup.collect().await?.to_bytes();
    //!     assert_eq!(first, again);
    //!     Ok::<_, BoxError>(Response::new(Full::new(again)))
    //! }));
    //!
    //! let request = Request::post("https://api.example.com/upload")
    //!     .body(Full::new(Bytes::from_static(b"hello")))?;
    //! let response = svc.oneshot(request).await?;
    //! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
    //! # Ok(())
    //! # }
    //! ```
    pub use keel_layers::replay::*;
}

pub mod paginate {
    //! A `Stream` of pages from a fetch function (page numbers, cursors or next links), with
    //! bounded prefetch and resume, and of their records ([`PageStream::items`]).
    //!
    //! [`PageStream`] calls your `fetch(position)`, yields each [`Page`] in order with its
    //! position so a job can checkpoint it, fetches ahead where the strategy allows it, and
    //! ends on the last page, on the first error, or on a server that loops. With a fetch
    //! that fails with a `BoxError`, declare its error type as [`FetchError`]: then `?`
    //! converts both inside the fetch and on the stream's errors.
    //!
    //! # Example
    //!
    //! ```
    //! use futures_util::TryStreamExt;
    //! use keel::paginate::{BoxError, FetchError, Fetched, PageStream};
    //!
    //! async fn fetch_page(page: u64) -> Result<(Vec<u64>, u64), BoxError> {
    //!     // a real fetch sends `{"paging": {"pageNumber": page, "pageSize": 10}}`
    //!     let records = (1..=25).skip(((page - 1) * 10) as usize).take(10).collect();
    //!     Ok((records, 25))
    //! }
    //!
    //! async fn export(checkpoint: Option<u64>) -> Result<(Vec<u64>, Option<u64>), BoxError> {
    //!     let mut pages = PageStream::page_numbers(10, |page| async move {
    //!         let (records, total) = fetch_page(page).await?;
    //!         Ok::<_, FetchError>(Fetched::new(records).with_total(Some(total)))
    //!     })
    //!     .prefetch(4);
    //!     if let Some(page) = checkpoint {
    //!         pages = pages.resume_after(page);
    //!     }
    //!     let mut items = pages.items();
    //!     let mut stored = Vec::new();
    //!     while let Some(record) = items.try_next().await? {
    //!         stored.push(record); // store it, then checkpoint `items.completed()`
    //!     }
    //!     Ok((stored, items.completed().copied()))
    //! }
    //!
    //! # #[tokio::main(flavor = "current_thread")]
    //! # async fn main() -> Result<(), BoxError> {
    //! let (records, last_page) = export(Some(1)).await?;
    //! assert_eq!(records, (11..=25).collect::<Vec<_>>());
    //! assert_eq!(last_page, Some(3));
    //! # Ok(())
    //! # }
    //! ```
    pub use keel_paginate::*;
}

pub mod body {
    //! The body types a keel user names: [`Bytes`], `http-body-util`'s [`Full`], [`Empty`] and
    //! [`BodyExt`], and keel's [`ReplayBody`].
    //!
    //! The token endpoint's client sends in-memory bodies (`Full<Bytes>`, the default of
    //! [`ClientCredentials`](crate::auth::ClientCredentials)); a client under a
    //! [`KeelLayer`](crate::KeelLayer) receives `ReplayBody<B>` bodies.
    pub use bytes::Bytes;
    pub use http_body_util::{BodyExt, Empty, Full, Limited};
    pub use keel_layers::replay::ReplayBody;
}

#[cfg(feature = "gateway")]
#[doc(inline)]
pub use keel_gateway as gateway;

#[cfg(feature = "genesys")]
#[doc(inline)]
pub use keel_genesys as genesys;

#[cfg(feature = "sim")]
#[doc(inline)]
pub use keel_sim as sim;

/// The README's Rust snippets, compiled as doctests against this crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
