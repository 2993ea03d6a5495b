//! A hook that lets one retry loop also replay after responses another layer cares about.
//!
//! Two retrying layers stacked one over the other each keep a backup of the request and a
//! spare inner service, and every request pays for both. When one layer's loop can take the
//! other's decision as a hook, one backup and one spare serve both kinds of retry. The layers
//! stay independent: the loop ([`Backoff`](crate::backoff::Backoff), through
//! [`BackoffLayer::replay_on`](crate::backoff::BackoffLayer::replay_on)) knows only this
//! trait, and the layer that decides (such as
//! [`RefreshOn401Layer`](crate::auth::RefreshOn401Layer), which implements it) knows nothing
//! of the loop.
//!
//! # Example
//!
//! A hook that replays once after a `409 Conflict`, counting its replays:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use bytes::Bytes;
//! use http::{Extensions, Request, Response, StatusCode};
//! use http_body_util::Full;
//! use keel_layers::backoff::{BackoffLayer, BackoffPolicy};
//! use keel_layers::hook::ReplayOnResponse;
//! use tokio::time::Instant;
//! use tower::{service_fn, BoxError, Layer, ServiceExt};
//!
//! #[derive(Debug, Default)]
//! struct OnConflict(AtomicU32);
//!
//! impl ReplayOnResponse for OnConflict {
//!     fn max_replays(&self) -> u32 { 1 }
//!     fn wants_replay(&self, status: StatusCode, _: &Extensions) -> bool {
//!         status == StatusCode::CONFLICT
//!     }
//!     fn replaying(&self, _: StatusCode, _: &Extensions) -> Option<Instant> {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!         None // replay at once
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let calls = std::sync::Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let api = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let status = if n == 0 { StatusCode::CONFLICT } else { StatusCode::OK };
//!         Ok::<_, BoxError>(Response::builder().status(status).body(Full::<Bytes>::default())?)
//!     }
//! });
//! let layer = BackoffLayer::new(BackoffPolicy::default()).replay_on(OnConflict::default());
//! let response = layer.layer(api).oneshot(Request::new(Full::default())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use http::{Extensions, StatusCode};
use tokio::time::Instant;

/// Decides, for a response a retry loop would otherwise return, whether the request is sent
/// again (as a new request to that loop: its own attempts, elapsed time and budget).
///
/// The loop asks [`wants_replay`](Self::wants_replay) with the response's status and
/// extensions; if yes and the request can be replayed it calls
/// [`replaying`](Self::replaying) once, drops the response and sends the request again, at
/// most [`max_replays`](Self::max_replays) times per request. If the request body cannot be
/// replayed it calls [`not_replayable`](Self::not_replayable) and returns the response.
///
/// Implementations are shared by every clone of the loop: keep their state behind `Arc`s
/// or atomics.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a replay hook",
    note = "`BackoffLayer::replay_on` takes a `ReplayOnResponse`, such as a `RefreshOn401Layer`"
)]
pub trait ReplayOnResponse: fmt::Debug + Send + Sync + 'static {
    /// Replays allowed per request (0 turns the hook off).
    fn max_replays(&self) -> u32;

    /// Whether a response with this status and these extensions should be replayed.
    fn wants_replay(&self, status: StatusCode, extensions: &Extensions) -> bool;

    /// The request is about to be sent again after this response; it is sent at once, or
    /// (`Some(t)`) not before `t`.
    fn replaying(&self, status: StatusCode, extensions: &Extensions) -> Option<Instant>;

    /// A replay was wanted but the request body could not be replayed; the response goes
    /// back as it is. The default does nothing.
    fn not_replayable(&self) {}
}
