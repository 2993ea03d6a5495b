//! [`PageStream`]: pages from a fetch function, in order, with bounded prefetch.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::{FuturesOrdered, StreamExt};

use crate::future::FetchFuture;
use crate::{Cursors, Fetched, Items, NextLinks, Page, PageError, PageNumbers, Step, Strategy};

/// A [`Stream`] of [`Page`]s fetched by calling `fetch(position)`, yielded strictly in page
/// order.
///
/// Built with [`page_numbers`](PageStream::page_numbers), [`cursors`](PageStream::cursors),
/// [`next_links`](PageStream::next_links) or [`with_strategy`](PageStream::with_strategy),
/// then configured with [`prefetch`](PageStream::prefetch),
/// [`resume_from`](PageStream::resume_from) / [`resume_after`](PageStream::resume_after) and
/// [`max_pages`](PageStream::max_pages) before it is first polled.
///
/// # Prefetch
///
/// At most `n` pages are outstanding at any time (fetching, or fetched and waiting for their
/// turn), so memory holds at most `n` pages besides the one the consumer has. As soon as a
/// page is handed out, the next fetches are started (and polled once) so they run while the
/// consumer processes it. The fetch futures only make progress while the stream is polled,
/// like any future: a fetch function that must progress while the consumer is busy
/// elsewhere can spawn its request on the runtime.
///
/// # Errors
///
/// A failed fetch is yielded as [`PageError::Fetch`] after every page before it; then the
/// stream ends (it is fused). A cursor or link that repeats ends the stream with
/// [`PageError::Repeated`], more pages than [`max_pages`](PageStream::max_pages) with
/// [`PageError::TooManyPages`], each after the page that announced it.
///
/// # Cancellation
///
/// Dropping the stream drops, and so cancels, every fetch in flight. Fetches beyond the last
/// page (a total that shrank, an empty page) are dropped as soon as the last page is known.
#[must_use = "streams do nothing unless polled"]
pub struct PageStream<S: Strategy, F, Fut: Future> {
    strategy: S,
    fetch: F,
    in_flight: FuturesOrdered<FetchFuture<Fut, S::Position>>,
    /// A page that completed while kicking off the next fetches; it is the next to yield.
    ready: Option<(S::Position, Fut::Output)>,
    /// The next position to fetch, if known.
    frontier: Option<S::Position>,
    last_issued: Option<S::Position>,
    prefetch: usize,
    max_pages: Option<u64>,
    issued: u64,
    yielded: u64,
    /// 1 when the first fetched page is only fetched to find its successor.
    skip: u64,
    skip_pending: bool,
    stop: Option<Stop>,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Repeated { index: u64 },
    TooManyPages { limit: u64 },
}

impl Stop {
    fn into_error<E>(self) -> PageError<E> {
        match self {
            Stop::Repeated { index } => PageError::Repeated { index },
            Stop::TooManyPages { limit } => PageError::TooManyPages { limit },
        }
    }
}

// NOTE: no field is ever pinned: fetch futures live in `FuturesOrdered`, which boxes them.
impl<S: Strategy, F, Fut: Future> Unpin for PageStream<S, F, Fut> {}

impl<F, Fut, T, E> PageStream<PageNumbers, F, Fut>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Fetched<T>, E>>,
{
    /// Pages numbered from 1, `page_size` items each; `fetch(page_number)` reports the items
    /// and the total (see [`PageNumbers`] for when the stream ends). Once a page reported a
    /// total, the following pages up to it are fetched `prefetch` at a time.
    ///
    /// # Panics
    ///
    /// If `page_size` is 0.
    pub fn page_numbers(page_size: u64, fetch: F) -> Self {
        Self::with_strategy(PageNumbers::new(page_size), 1, fetch)
    }
}

impl<C, F, Fut, T, E> PageStream<Cursors<C>, F, Fut>
where
    C: Clone + Eq + Hash,
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Fetched<T, C>, E>>,
{
    /// Pages chained by opaque cursors: `fetch(None)` for the first page, then
    /// `fetch(Some(cursor))` with the cursor the previous page reported, until a page reports
    /// none (see [`Cursors`]).
    pub fn cursors(fetch: F) -> Self {
        Self::with_strategy(Cursors::new(), None, fetch)
    }
}

impl<L, F, Fut, T, E> PageStream<NextLinks<L>, F, Fut>
where
    L: Clone + Eq + Hash,
    F: FnMut(L) -> Fut,
    Fut: Future<Output = Result<Fetched<T, L>, E>>,
{
    /// Pages chained by next links: `fetch(first)`, then `fetch(link)` with the link the
    /// previous page reported, until a page reports none (see [`NextLinks`]).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use keel_paginate::{Fetched, PageStream};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pages = PageStream::next_links("/api/v2/users?pageNumber=1".to_string(), |uri: String| async move {
    ///     // a real fetch GETs `uri` and reads `entities` and `nextUri`
    ///     let next = uri.ends_with("=1").then(|| "/api/v2/users?pageNumber=2".to_string());
    ///     Ok::<_, std::io::Error>(Fetched::new(vec![uri]).with_next(next))
    /// });
    /// let links: Vec<String> = pages.map(|page| page.unwrap().position).collect().await;
    /// assert_eq!(links, ["/api/v2/users?pageNumber=1", "/api/v2/users?pageNumber=2"]);
    /// # }
    /// ```
    pub fn next_links(first: L, fetch: F) -> Self {
        Self::with_strategy(NextLinks::new(), first, fetch)
    }
}

impl<S, F, Fut, T, E> PageStream<S, F, Fut>
where
    S: Strategy,
    F: FnMut(S::Position) -> Fut,
    Fut: Future<Output = Result<Fetched<T, S::Token>, E>>,
{
    /// Pages found by a custom [`Strategy`], starting at `first`.
    pub fn with_strategy(strategy: S, first: S::Position, fetch: F) -> Self {
        Self {
            strategy,
            fetch,
            in_flight: FuturesOrdered::new(),
            ready: None,
            frontier: Some(first),
            last_issued: None,
            prefetch: 1,
            max_pages: None,
            issued: 0,
            yielded: 0,
            skip: 0,
            skip_pending: false,
            stop: None,
            done: false,
        }
    }

    /// Keeps up to `n` pages outstanding (default 1: the next page is fetched while the
    /// consumer processes the current one). `0` fetches only on demand, when the stream is
    /// polled. Cursors and next links are never more than one page ahead: the next position
    /// is only known from the page before.
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// Starts at `position`: the first page fetched and yielded is the one at `position`
    /// (e.g. the [`next`](Page::next) of the last page a previous run stored). Page numbers
    /// start at 1.
    pub fn resume_from(mut self, position: S::Position) -> Self {
        self.frontier = Some(position);
        self.skip = 0;
        self.skip_pending = false;
        self
    }

    /// Starts after the page at `position` (e.g. the [`position`](Page::position) of the last
    /// page a previous run stored): that page is not yielded again.
    ///
    /// With page numbers the stream starts at `position + 1`. Cursors and links cannot be
    /// computed, so the page at `position` is fetched again to learn its successor and is
    /// not yielded; if it was the last page the stream yields nothing.
    pub fn resume_after(mut self, position: S::Position) -> Self {
        match self.strategy.successor(&position) {
            Some(next) => {
                self.frontier = Some(next);
                self.skip = 0;
                self.skip_pending = false;
            }
            None => {
                self.frontier = Some(position);
                self.skip = 1;
                self.skip_pending = true;
            }
        }
        self
    }

    /// Ends the stream with [`PageError::TooManyPages`] instead of yielding more than
    /// `limit` pages: a guard against a server that never says it is done. Pages past the
    /// limit are never fetched.
    pub fn max_pages(mut self, limit: u64) -> Self {
        self.max_pages = Some(limit);
        self
    }

    /// Number of pages yielded so far.
    pub fn pages_yielded(&self) -> u64 {
        self.yielded
    }

    /// The records of the pages, one by one, with the position of the last completed page
    /// at hand for checkpointing ([`Items::completed`]).
    pub fn items(self) -> Items<Self, T, S::Position> {
        Items::new(self)
    }

    fn outstanding(&self) -> usize {
        self.in_flight.len() + usize::from(self.ready.is_some())
    }

    /// Starts fetches until `cap` pages are outstanding or no further position is known.
    fn refill(&mut self, cap: usize) {
        while self.outstanding() < cap {
            if let Some(limit) = self.max_pages {
                if self.issued >= limit.saturating_add(self.skip) {
                    break;
                }
            }
            let Some(position) = self.frontier.take() else {
                break;
            };
            self.frontier = self.strategy.ahead(&position);
            self.last_issued = Some(position.clone());
            // NOTE: the page a resume_after refetches only to find its successor is index 0.
            let index = (self.issued + 1).saturating_sub(self.skip);
            let span = tracing::debug_span!("page", index);
            let fetch = span.in_scope(|| (self.fetch)(position.clone()));
            self.in_flight
                .push_back(FetchFuture::new(fetch, position, span));
            self.issued += 1;
        }
    }

    /// Drops every outstanding fetch: no page after the current one will be yielded.
    fn finish(&mut self) {
        self.in_flight = FuturesOrdered::new();
        self.ready = None;
        self.frontier = None;
    }
}

impl<S, F, Fut, T, E> Stream for PageStream<S, F, Fut>
where
    S: Strategy,
    F: FnMut(S::Position) -> Fut,
    Fut: Future<Output = Result<Fetched<T, S::Token>, E>>,
{
    type Item = Result<Page<T, S::Position>, PageError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(stop) = this.stop.take() {
                this.done = true;
                return Poll::Ready(Some(Err(stop.into_error())));
            }
            let (position, output) = match this.ready.take() {
                Some(ready) => ready,
                None => {
                    this.refill(this.prefetch.max(1));
                    match std::task::ready!(this.in_flight.poll_next_unpin(cx)) {
                        Some(completed) => completed,
                        None => {
                            this.done = true;
                            return Poll::Ready(None);
                        }
                    }
                }
            };
            let index = this.yielded + 1;
            let Fetched { items, total, next } = match output {
                Ok(fetched) => fetched,
                Err(source) => {
                    tracing::debug!(index, "page fetch failed");
                    this.finish();
                    this.done = true;
                    return Poll::Ready(Some(Err(PageError::Fetch { index, source })));
                }
            };
            let next = match this.strategy.follow(&position, items.len(), total, next) {
                Step::Next(next) => {
                    this.frontier = match (&this.last_issued, this.in_flight.is_empty()) {
                        (Some(last), false) => this.strategy.ahead(last),
                        _ => Some(next.clone()),
                    };
                    Some(next)
                }
                Step::Last => {
                    this.finish();
                    None
                }
                Step::Repeated => {
                    tracing::warn!(index, "pagination loops: a next position repeats");
                    this.finish();
                    this.stop = Some(Stop::Repeated { index });
                    None
                }
            };
            if this.skip_pending {
                this.skip_pending = false;
                continue;
            }
            this.yielded = index;
            tracing::debug!(
                index,
                items = items.len(),
                total,
                last = next.is_none(),
                "page"
            );
            if let (Some(limit), Some(_)) = (this.max_pages, &next) {
                if this.yielded >= limit {
                    this.finish();
                    this.stop = Some(Stop::TooManyPages { limit });
                }
            }
            this.refill(this.prefetch);
            if this.ready.is_none() && !this.in_flight.is_empty() {
                // NOTE: polled once so the next fetches start before the consumer asks.
                if let Poll::Ready(Some(completed)) = this.in_flight.poll_next_unpin(cx) {
                    this.ready = Some(completed);
                }
            }
            return Poll::Ready(Some(Ok(Page {
                position,
                items,
                total,
                next,
            })));
        }
    }
}

impl<S, F, Fut, T, E> FusedStream for PageStream<S, F, Fut>
where
    S: Strategy,
    F: FnMut(S::Position) -> Fut,
    Fut: Future<Output = Result<Fetched<T, S::Token>, E>>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S: Strategy, F, Fut: Future> fmt::Debug for PageStream<S, F, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageStream")
            .field("prefetch", &self.prefetch)
            .field("max_pages", &self.max_pages)
            .field("in_flight", &self.in_flight.len())
            .field("yielded", &self.yielded)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
