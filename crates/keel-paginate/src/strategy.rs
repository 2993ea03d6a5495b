//! How a [`PageStream`](crate::PageStream) finds the next page: page numbers, cursors or links.

use std::collections::HashSet;
use std::hash::Hash;

/// What a [`Strategy`] decided after a page, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<P> {
    /// The next page is at this position.
    Next(P),
    /// This was the last page.
    Last,
    /// The next position repeats an earlier one: pagination would loop.
    Repeated,
}

/// How to find the page after a page, and which pages may be fetched ahead.
///
/// keel provides [`PageNumbers`], [`Cursors`] and [`NextLinks`]; a custom strategy only
/// needs these three methods.
pub trait Strategy {
    /// Where a page is: a page number, a cursor, a link.
    type Position: Clone;
    /// What [`Fetched::next`](crate::Fetched::next) holds for this strategy.
    type Token;

    /// Decides what follows the page at `position`, from what its fetch reported.
    /// Called once per page, in page order.
    fn follow(
        &mut self,
        position: &Self::Position,
        items: usize,
        total: Option<u64>,
        next: Option<Self::Token>,
    ) -> Step<Self::Position>;

    /// A position that may be fetched right after `issued` was, before the pages in between
    /// arrived (prefetch); `None` when it is not known yet.
    fn ahead(&self, issued: &Self::Position) -> Option<Self::Position>;

    /// The position directly after `position`, if it can be computed without fetching.
    fn successor(&self, position: &Self::Position) -> Option<Self::Position>;
}

/// Page numbers from 1 with a page size and a reported total (Genesys details query:
/// `paging.pageNumber`, `paging.pageSize`, `totalHits`).
///
/// Page `k` is the last when it comes back without items, or when `k * page_size` reaches
/// the total that page reported. Once a page reported a total, the pages up to that total
/// can be fetched ahead; without a total, one page at a time.
#[derive(Debug, Clone)]
pub struct PageNumbers {
    page_size: u64,
    /// Highest page number that may be issued, from the latest total seen in order.
    limit: u64,
}

impl PageNumbers {
    pub(crate) fn new(page_size: u64) -> Self {
        assert!(page_size > 0, "page size must be at least 1");
        Self {
            page_size,
            limit: 0,
        }
    }
}

impl Strategy for PageNumbers {
    type Position = u64;
    type Token = ();

    fn follow(&mut self, page: &u64, items: usize, total: Option<u64>, _: Option<()>) -> Step<u64> {
        if items == 0 {
            return Step::Last;
        }
        let Some(next) = page.checked_add(1) else {
            return Step::Last;
        };
        match total {
            Some(total) => {
                let last = total.div_ceil(self.page_size);
                if *page >= last {
                    return Step::Last;
                }
                self.limit = last;
            }
            None => self.limit = next,
        }
        Step::Next(next)
    }

    fn ahead(&self, issued: &u64) -> Option<u64> {
        issued.checked_add(1).filter(|next| *next <= self.limit)
    }

    fn successor(&self, page: &u64) -> Option<u64> {
        page.checked_add(1)
    }
}

/// Opaque cursors (Genesys async job results: `cursor` present or not). The first page is
/// fetched with `None`; the stream ends at a page without a next cursor. Strictly sequential.
///
/// A cursor seen before ends the stream with [`PageError::Repeated`](crate::PageError::Repeated);
/// the cursors seen are kept for that (memory grows with the number of pages).
#[derive(Debug, Clone)]
pub struct Cursors<C> {
    seen: HashSet<C>,
}

impl<C> Cursors<C> {
    pub(crate) fn new() -> Self {
        Self {
            seen: HashSet::new(),
        }
    }
}

impl<C: Clone + Eq + Hash> Strategy for Cursors<C> {
    type Position = Option<C>;
    type Token = C;

    fn follow(
        &mut self,
        position: &Option<C>,
        _: usize,
        _: Option<u64>,
        next: Option<C>,
    ) -> Step<Option<C>> {
        if let Some(current) = position {
            self.seen.insert(current.clone());
        }
        match next {
            None => Step::Last,
            Some(next) if !self.seen.insert(next.clone()) => Step::Repeated,
            Some(next) => Step::Next(Some(next)),
        }
    }

    fn ahead(&self, _: &Option<C>) -> Option<Option<C>> {
        None
    }

    fn successor(&self, _: &Option<C>) -> Option<Option<C>> {
        None
    }
}

/// Next links (`nextUri` in most Genesys list APIs). The first page is fetched at the link
/// given to [`PageStream::next_links`](crate::PageStream::next_links); the stream ends at a
/// page without a next link. Strictly sequential.
///
/// A link seen before ends the stream with [`PageError::Repeated`](crate::PageError::Repeated);
/// the links seen are kept for that (memory grows with the number of pages).
#[derive(Debug, Clone)]
pub struct NextLinks<L> {
    seen: HashSet<L>,
}

impl<L> NextLinks<L> {
    pub(crate) fn new() -> Self {
        Self {
            seen: HashSet::new(),
        }
    }
}

impl<L: Clone + Eq + Hash> Strategy for NextLinks<L> {
    type Position = L;
    type Token = L;

    fn follow(&mut self, position: &L, _: usize, _: Option<u64>, next: Option<L>) -> Step<L> {
        self.seen.insert(position.clone());
        match next {
            None => Step::Last,
            Some(next) if !self.seen.insert(next.clone()) => Step::Repeated,
            Some(next) => Step::Next(next),
        }
    }

    fn ahead(&self, _: &L) -> Option<L> {
        None
    }

    fn successor(&self, _: &L) -> Option<L> {
        None
    }
}
