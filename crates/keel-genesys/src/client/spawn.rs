//! Requests that make progress while their caller is busy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A future run as its own tokio task, aborted when this handle is dropped.
///
/// Prefetched pages are fetched this way: a page stream only polls its fetches while it is
/// polled itself, and a fetch that sat unpolled while the consumer wrote pages (or while its
/// part waited for earlier parts) would stall mid-body and trip its per-attempt timeout.
#[derive(Debug)]
pub(crate) struct Spawned<T> {
    handle: JoinHandle<T>,
}

impl<T: Send + 'static> Spawned<T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            handle: tokio::spawn(fut),
        }
    }
}

impl<T> Future for Spawned<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn runs_without_being_polled_and_is_aborted_on_drop() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = Spawned::new(async move {
            let _ = tx.send(());
            flag.store(true, Ordering::SeqCst);
            7
        });
        rx.await.unwrap();
        assert_eq!(spawned.await.unwrap(), 7);
        assert!(done.load(Ordering::SeqCst));

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let never = Spawned::new(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
        drop(never);
        assert!(
            rx.await.is_err(),
            "the task was aborted, dropping its sender"
        );
    }
}
