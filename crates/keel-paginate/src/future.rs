//! The future of one page fetch, tagged with its position.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// A fetch future that yields its position along with its output, polled inside its
    /// `page` span so the request's own spans nest under it.
    pub(crate) struct FetchFuture<Fut, P> {
        #[pin]
        inner: Fut,
        position: Option<P>,
        span: tracing::Span,
    }
}

impl<Fut, P> FetchFuture<Fut, P> {
    pub(crate) fn new(inner: Fut, position: P, span: tracing::Span) -> Self {
        Self {
            inner,
            position: Some(position),
            span,
        }
    }
}

impl<Fut: Future, P> Future for FetchFuture<Fut, P> {
    type Output = (P, Fut::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let output = std::task::ready!(this.inner.poll(cx));
        // NOTE: FuturesOrdered never polls a future again after it completed.
        let position = this
            .position
            .take()
            .expect("fetch future polled after completion");
        Poll::Ready((position, output))
    }
}
