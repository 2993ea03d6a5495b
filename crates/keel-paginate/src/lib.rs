//! A [`Stream`](futures_core::Stream) of pages from a fetch function: page numbers, cursors
//! or next links, with bounded prefetch and resume.
//!
//! A batch export reads an API page after page for hours. It must not lose or repeat a page,
//! it must be able to restart where it stopped, and it should not wait for each page before
//! asking for the next when the API allows asking ahead. [`PageStream`] does the paging: it
//! calls your `fetch(position)` (which knows the HTTP and the vendor), yields each
//! [`Page`] in order with its position so the job can checkpoint it, fetches up to
//! [`prefetch`](PageStream::prefetch) pages ahead where the strategy allows it, and ends on the
//! strategy's last page, on the first error, or on a server that loops.
//!
//! | strategy | constructor | position | the fetch reports | ahead |
//! |---|---|---|---|---|
//! | [`PageNumbers`] | [`PageStream::page_numbers`] | `u64` from 1 | items, total | up to `prefetch` once a total is known |
//! | [`Cursors`] | [`PageStream::cursors`] | `Option<C>` (`None` first) | items, next cursor | 1 |
//! | [`NextLinks`] | [`PageStream::next_links`] | `L` (first given) | items, next link | 1 |
//!
//! # Example
//!
//! Page numbers with a total, 4 pages in flight, resumed after page 2 was checkpointed:
//!
//! ```
//! use futures_util::TryStreamExt;
//! use keel_paginate::{Fetched, PageStream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let records: Vec<u32> = (1..=25).collect();
//! let page_size = 10;
//! let fetch = |page: u64| {
//!     // a real fetch sends `{"paging": {"pageNumber": page, "pageSize": 10}}`
//!     let start = ((page - 1) * page_size) as usize;
//!     let items = records.iter().copied().skip(start).take(page_size as usize).collect();
//!     async move { Ok::<_, std::io::Error>(Fetched::new(items).with_total(Some(25))) }
//! };
//! let mut pages = PageStream::page_numbers(page_size, fetch)
//!     .prefetch(4)
//!     .resume_after(1);
//! let mut seen = Vec::new();
//! while let Some(page) = pages.try_next().await? {
//!     seen.extend(page.items);
//!     // store the items, then checkpoint `page.position`
//!     if page.next.is_none() {
//!         assert_eq!(page.position, 3);
//!     }
//! }
//! assert_eq!(seen, (11..=25).collect::<Vec<_>>());
//! # Ok(())
//! # }
//! ```
//!
//! Cursors (e.g. Genesys async job results) end at the first page without a cursor:
//!
//! ```
//! use futures_util::TryStreamExt;
//! use keel_paginate::{Fetched, PageStream};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keel_paginate::PageError<std::io::Error>> {
//! let pages = PageStream::cursors(|cursor: Option<String>| async move {
//!     let (items, next) = match cursor.as_deref() {
//!         None => (vec!["a", "b"], Some("c2".to_string())),
//!         Some("c2") => (vec!["c"], None),
//!         Some(_) => (vec![], None),
//!     };
//!     Ok::<_, std::io::Error>(Fetched::new(items).with_next(next))
//! });
//! let pages: Vec<_> = pages.try_collect().await?;
//! assert_eq!(pages.len(), 2);
//! assert_eq!(pages[1].position.as_deref(), Some("c2"));
//! # Ok(())
//! # }
//! ```

mod error;
mod future;
mod items;
mod page;
mod strategy;
mod stream;

pub use error::{BoxError, FetchError, FetchSource, PageError};
pub use items::Items;
pub use page::{Fetched, Page};
pub use strategy::{Cursors, NextLinks, PageNumbers, Step, Strategy};
pub use stream::PageStream;

#[cfg(test)]
mod tests;
