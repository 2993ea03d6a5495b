//! Replayable request bodies, so retrying layers can send a request again.
//!
//! Retrying layers in keel ([`RefreshOn401`](crate::auth), [`Backoff`](crate::backoff)) are
//! generic over any body that implements [`TryCloneBody`]: plain in-memory bodies always can,
//! a streaming body can once it is wrapped in a `ReplayBody` (up to a byte cap).

mod clone;

pub use clone::{try_clone_request, TryCloneBody};
