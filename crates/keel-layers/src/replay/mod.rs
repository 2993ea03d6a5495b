//! Replayable request bodies, so retrying layers can send a request again.
//!
//! A retry needs the request a second time, but an `http_body::Body` is a stream that is
//! consumed as it is sent. Retrying layers in keel ([`RefreshOn401`](crate::auth::RefreshOn401),
//! [`backoff`](crate::backoff)) therefore work with any body that implements [`TryCloneBody`]:
//! in-memory bodies (`Full`, `Empty`, `String`) always can, and any other body can once
//! [`ReplayBodyLayer`] wraps it in a [`ReplayBody`]. `ReplayBody` streams the original on the
//! first attempt and keeps the chunks it passed on (shared [`Bytes`](bytes::Bytes), not
//! copies), up to a byte cap; a replay yields those chunks and then the rest of the original
//! if the first attempt stopped early (for instance because the server answered before the
//! whole body was sent). A body that outgrows the cap is sent once and never replayed as an
//! empty or partial body: its clones answer `None`, and the retrying layers hand the
//! response back as it is.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full, StreamBody};
//! use keel_layers::replay::{ReplayBody, ReplayBodyLayer, TryCloneBody};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! // A streaming body: two chunks that are produced once and cannot be rewound.
//! let chunks = futures_util::stream::iter(["hello ", "world"].map(|s| {
//!     Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))
//! }));
//! let request = Request::post("https://api.example.com/upload").body(StreamBody::new(chunks))?;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(ReplayBodyLayer::new(64 * 1024))
//!     .service(service_fn(|req: Request<ReplayBody<_>>| async move {
//!         // A retrying layer keeps a backup before the first attempt ...
//!         let backup = req.body().try_clone_body().expect("under the cap");
//!         let first = req.into_body().collect().await?.to_bytes();
//!         // ... and replays it: the same bytes again.
//!         let again = backup.collect().await?.to_bytes();
//!         assert_eq!(first, again);
//!         Ok::<_, tower::BoxError>(Response::new(Full::new(again)))
//!     }));
//!
//! let response = svc.oneshot(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello world");
//! # Ok(())
//! # }
//! ```

mod body;
mod clone;
mod layer;
mod service;
#[cfg(test)]
mod tests;

pub use body::{ReplayBody, ReplayError};
pub use clone::{try_clone_request, TryCloneBody};
pub use layer::ReplayBodyLayer;
pub use service::ReplayBodyService;
