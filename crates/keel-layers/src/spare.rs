//! The spare inner service that the retrying layers send their retries through.

use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

/// One clone of a retrying layer's inner service, made on the first request that could be
/// retried and shared (behind the layer's `Arc`) by every clone of the layer's service and
/// by their response futures.
///
/// A tower response future cannot reach the service that made it, so a retrying future must
/// own a service to send a retry through. Cloning the inner service into every response
/// future costs a clone and a drop per request (a hyper-util `Client` is 300 bytes of `Arc`s)
/// and makes every future larger, though almost no request is retried. Instead a retry takes
/// its own clone from this spare when it happens; requests that are not retried clone nothing.
///
/// The `Mutex` makes the spare `Sync` for services that are only `Send` (such as
/// `tower::util::BoxCloneService`); it is locked only to clone, on a retry.
pub(crate) struct Spare<S>(OnceLock<Mutex<S>>);

impl<S> Spare<S> {
    pub(crate) fn new() -> Self {
        Spare(OnceLock::new())
    }
}

impl<S: Clone> Spare<S> {
    /// Keeps a clone of `inner` unless one is kept already (one clone per layer service, not
    /// per request).
    pub(crate) fn keep(&self, inner: &S) {
        if self.0.get().is_none() {
            // NOTE: a racing caller may clone too; only one clone is kept.
            self.0.get_or_init(|| Mutex::new(inner.clone()));
        }
    }

    /// A fresh clone (not yet ready) for a retry, if [`keep`](Self::keep) was called.
    pub(crate) fn clone_service(&self) -> Option<S> {
        let spare = self.0.get()?;
        let service = spare.lock().unwrap_or_else(PoisonError::into_inner);
        Some(service.clone())
    }
}

impl<S> fmt::Debug for Spare<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spare")
            .field("kept", &self.0.get().is_some())
            .finish()
    }
}
