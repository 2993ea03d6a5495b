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
//! [`ServiceBuilderExt`] adds one [`ServiceBuilder`](tower::ServiceBuilder) method per layer,
//! so the whole stack reads as one chain, outermost first:
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
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use keel::auth::{token_source_fn, Origin, Token, TokenCache};
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
//! The layers ([`auth`], [`backoff`], [`replay`]), [`paginate`] and [`ServiceBuilderExt`]
//! are always available.
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `genesys` | yes | `keel::genesys` (the `keel-genesys` crate): the Genesys Cloud client, models and exports |
//! | `gateway` | yes | `keel::gateway` (the `keel-gateway` crate): `Gateway`, forwarding through a keel stack that refuses dot-segment paths and removes hop-by-hop, credential and forwarding headers |
//! | `sim` | no | `keel::sim` (the `keel-sim` crate): the Genesys Cloud simulator |
//! | `full` | no | all of the above |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use keel_layers::ServiceBuilderExt;
pub use keel_layers::{auth, backoff, metrics, replay};
pub use keel_paginate as paginate;

#[cfg(feature = "gateway")]
#[doc(inline)]
pub use keel_gateway as gateway;

#[cfg(feature = "genesys")]
#[doc(inline)]
pub use keel_genesys as genesys;

#[cfg(feature = "sim")]
#[doc(inline)]
pub use keel_sim as sim;
