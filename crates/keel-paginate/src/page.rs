//! What a fetch returns ([`Fetched`]) and what the stream yields ([`Page`]).

/// What one call of the fetch function reports: the items of the page and what the
/// strategy needs to find the next page.
///
/// - page numbers: set [`total`](Fetched::total) (e.g. Genesys `totalHits`) when the
///   response has one; `next` is unused (`N = ()`).
/// - cursors and next links: set [`next`](Fetched::next) to the next cursor or link, or
///   `None` when the response has none (the last page).
///
/// ```
/// use keel_paginate::Fetched;
/// let numbered: Fetched<&str> = Fetched::new(vec!["a", "b"]).with_total(Some(2));
/// let linked = Fetched::new(vec!["a"]).with_next(Some("/api/v2/users?page=2".to_string()));
/// assert_eq!(numbered.total, Some(2));
/// assert!(linked.next.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched<T, N = ()> {
    /// The items of the page, in the order the server sent them.
    pub items: Vec<T>,
    /// The total number of items the server reported (page-number strategy).
    pub total: Option<u64>,
    /// The cursor or link of the next page, `None` if there is none.
    pub next: Option<N>,
}

impl<T, N> Fetched<T, N> {
    /// A fetched page with these items, no total and no next cursor or link.
    pub fn new(items: Vec<T>) -> Self {
        Self {
            items,
            total: None,
            next: None,
        }
    }

    /// Sets the total number of items the server reported.
    pub fn with_total(mut self, total: Option<u64>) -> Self {
        self.total = total;
        self
    }

    /// Sets the cursor or link of the next page.
    pub fn with_next(mut self, next: Option<N>) -> Self {
        self.next = next;
        self
    }
}

/// One page yielded by a [`PageStream`](crate::PageStream), in order.
///
/// A job that checkpoints `position` after the page's items are durably stored can restart
/// with [`resume_after(position)`](crate::PageStream::resume_after); or it can checkpoint
/// [`next`](Page::next) and restart with [`resume_from`](crate::PageStream::resume_from).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page<T, P> {
    /// Where this page was fetched: its page number, cursor or link.
    pub position: P,
    /// The items of the page (possibly none: an empty page still reports its total).
    pub items: Vec<T>,
    /// The total this page reported (page-number strategy); it may change from page to
    /// page when the server's data changes during the export.
    pub total: Option<u64>,
    /// Where the following page is, `None` if this is the last page.
    pub next: Option<P>,
}

impl<T, P> Page<T, P> {
    /// Whether this is the last page of the stream.
    pub fn is_last(&self) -> bool {
        self.next.is_none()
    }
}
