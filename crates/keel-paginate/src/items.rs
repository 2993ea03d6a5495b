//! [`Items`]: a page stream flattened into its records, with the last completed page's
//! position at hand for checkpointing.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};

use crate::Page;

/// The records of a page stream, one by one, in order ([`PageStream::items`](crate::PageStream::items)).
///
/// [`completed`](Items::completed) is the position of the last page all of whose records
/// have been yielded: store the records, then checkpoint it, and a restart with
/// [`resume_after(position)`](crate::PageStream::resume_after) neither loses nor repeats one.
/// The first error ends the stream, as with the pages.
///
/// ```
/// use futures_util::TryStreamExt;
/// use keel_paginate::{Fetched, PageStream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keel_paginate::PageError<std::io::Error>> {
/// let mut items = PageStream::cursors(|cursor: Option<u32>| async move {
///     let (records, next) = match cursor {
///         None => (vec!["a", "b"], Some(2)),
///         Some(_) => (vec!["c"], None),
///     };
///     Ok::<_, std::io::Error>(Fetched::new(records).with_next(next))
/// })
/// .items();
/// assert_eq!(items.try_next().await?, Some("a"));
/// assert_eq!(items.completed(), None, "page 1 still has a record to yield");
/// assert_eq!(items.try_next().await?, Some("b"));
/// assert_eq!(items.completed(), Some(&None), "page 1 (cursor `None`) is done");
/// assert_eq!(items.try_next().await?, Some("c"));
/// assert_eq!(items.completed(), Some(&Some(2)));
/// assert_eq!(items.try_next().await?, None);
/// # Ok(())
/// # }
/// ```
pub struct Items<St, T, P> {
    pages: St,
    current: std::vec::IntoIter<T>,
    current_position: Option<P>,
    completed: Option<P>,
}

// NOTE: nothing in `Items` is structurally pinned; only `pages` is polled, through `Unpin`.
impl<St: Unpin, T, P> Unpin for Items<St, T, P> {}

impl<St, T, P> Items<St, T, P> {
    pub(crate) fn new(pages: St) -> Self {
        Items {
            pages,
            current: Vec::new().into_iter(),
            current_position: None,
            completed: None,
        }
    }

    /// The position of the last page whose records have all been yielded, `None` before
    /// the first such page.
    pub fn completed(&self) -> Option<&P> {
        self.completed.as_ref()
    }

    /// The page stream (its `pages_yielded` counts the pages taken so far).
    pub fn get_ref(&self) -> &St {
        &self.pages
    }

    /// Whether `self.current` is exhausted; if so, the page it came from is complete.
    fn finish_page(&mut self) {
        if self.current.len() == 0 {
            if let Some(position) = self.current_position.take() {
                self.completed = Some(position);
            }
        }
    }
}

impl<St, T, P, E> Stream for Items<St, T, P>
where
    St: Stream<Item = Result<Page<T, P>, E>> + Unpin,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.current.next() {
                this.finish_page();
                return Poll::Ready(Some(Ok(item)));
            }
            match ready!(Pin::new(&mut this.pages).poll_next(cx)) {
                Some(Ok(page)) => {
                    this.current = page.items.into_iter();
                    this.current_position = Some(page.position);
                    // NOTE: an empty page is complete as soon as it arrives.
                    this.finish_page();
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<St, T, P, E> FusedStream for Items<St, T, P>
where
    St: FusedStream<Item = Result<Page<T, P>, E>> + Unpin,
{
    fn is_terminated(&self) -> bool {
        self.current.len() == 0 && self.pages.is_terminated()
    }
}

impl<St: fmt::Debug, T, P: fmt::Debug> fmt::Debug for Items<St, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items")
            .field("pages", &self.pages)
            .field("buffered", &self.current.len())
            .field("completed", &self.completed)
            .finish()
    }
}
