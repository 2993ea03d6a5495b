//! Where an export's pages go: the [`PageSink`] seam.
//!
//! An export is exactly-once only if the records of a page and the point to resume after them
//! are stored together: a crash between the two either repeats a page or loses one. A sink
//! therefore commits both in one step ([`PageSink::commit`]): a file sink appends the page,
//! fsyncs it, then renames a new checkpoint into place; a database sink upserts the rows and
//! updates its resume point in one transaction. On [`open`](PageSink::open) it reports the last
//! resume point it committed, and on request the ids it already holds of one part of the
//! interval ([`committed_ids`](PageSink::committed_ids)), which is what the export engine needs
//! to restart a part without writing a record twice. The restart and de-duplication policy
//! itself lives in the engine, once, for every sink.
//!
//! # Example
//!
//! A sink that keeps everything in memory, committing a page and its resume point together:
//!
//! ```
//! use std::collections::HashSet;
//! use std::convert::Infallible;
//! use keel_genesys::sink::{Commit, PageSink, SinkState};
//! use keel_genesys::{Checkpoint, Interval};
//!
//! #[derive(Debug, Default)]
//! struct Memory {
//!     records: Vec<(String, time::OffsetDateTime, String)>, // id, start, JSON
//!     state: SinkState,
//!     closed: bool,
//! }
//!
//! impl PageSink for Memory {
//!     type Error = Infallible;
//!
//!     async fn open(&mut self) -> Result<SinkState, Infallible> {
//!         Ok(self.state.clone())
//!     }
//!
//!     async fn commit(&mut self, page: Commit<'_>) -> Result<(), Infallible> {
//!         for r in page.records {
//!             self.records.push((r.id.clone(), r.start, r.raw.get().to_owned()));
//!         }
//!         self.state.resume = Some(page.resume.clone());
//!         self.state.pages += page.pages;
//!         self.state.conversations += page.records.len() as u64;
//!         Ok(())
//!     }
//!
//!     async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, Infallible> {
//!         let ids = self.records.iter().filter(|r| part.contains(r.1));
//!         Ok(ids.map(|r| r.0.clone()).collect())
//!     }
//!
//!     async fn close(&mut self) -> Result<(), Infallible> {
//!         self.closed = true;
//!         Ok(())
//!     }
//! }
//! # let _ = Memory::default();
//! ```

use std::collections::HashSet;
use std::future::Future;

use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::details::Checkpoint;
use crate::models::Interval;

/// Where a sink stands when an export opens it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkState {
    /// The resume point committed with the last page; `None` when nothing was committed (the
    /// export starts at the beginning).
    pub resume: Option<Checkpoint>,
    /// Pages committed so far (for progress and the summary).
    pub pages: u64,
    /// Records committed so far.
    pub conversations: u64,
}

/// One conversation of a page, as the API sent it.
#[derive(Debug)]
pub struct Record {
    /// `conversationId`.
    pub id: String,
    /// `conversationStart`: the part of the interval the record belongs to.
    pub start: OffsetDateTime,
    /// The record, exactly the JSON bytes the API sent.
    pub raw: Box<RawValue>,
}

impl AsRef<RawValue> for Record {
    fn as_ref(&self) -> &RawValue {
        &self.raw
    }
}

/// What [`PageSink::commit`] stores, all or nothing.
///
/// Fields are public to read; new ones may come (it is `#[non_exhaustive]`), so code outside
/// this crate makes one with [`Commit::new`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Commit<'a> {
    /// The page's records, in order, each at most once in the whole export. May be empty: the
    /// engine then only moves the resume point (a part restarted after its results changed).
    pub records: &'a [Record],
    /// Where to resume after these records.
    pub resume: &'a Checkpoint,
    /// Pages of the API this commit completes, for the sink's counters: 1 for a page (even
    /// one left without records), 0 when only the resume point moves.
    pub pages: u64,
}

impl<'a> Commit<'a> {
    /// `records` and the point to resume after them, completing `pages` pages of the API.
    pub fn new(records: &'a [Record], resume: &'a Checkpoint, pages: u64) -> Self {
        Commit {
            records,
            resume,
            pages,
        }
    }
}

/// A destination for an export's pages that commits each page with its resume point.
///
/// The engine calls [`open`](Self::open) once, then [`commit`](Self::commit) for every page in
/// order, [`committed_ids`](Self::committed_ids) when it must restart a part,
/// [`flush`](Self::flush) before it stops on an error that is not the sink's, and
/// [`close`](Self::close) when the export is complete. After an error from any method the
/// engine stops; what was committed before stays committed, and a later run that opens the
/// same destination resumes after it.
///
/// # Errors
/// `Self::Error` is the sink's own (I/O, database). It must not hold secrets (a database
/// password, a token).
pub trait PageSink: Send {
    /// The sink's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reports where the sink stands: the resume point of its last committed page.
    fn open(&mut self) -> impl Future<Output = Result<SinkState, Self::Error>> + Send;

    /// Stores `page.records` and `page.resume` atomically: after a crash either both are
    /// there or neither is.
    ///
    /// A sink may return before the page is durable, to work on it while the engine fetches
    /// the next one (a database sink writing pages on several connections). Such a sink keeps
    /// pages durable in order (a page is never stored without every page before it), returns
    /// a failure of an accepted page from a later call, and returns from
    /// [`flush`](Self::flush) and [`close`](Self::close) only once every accepted page is
    /// durable. A sink that does not pipeline has every page durable when this returns `Ok`.
    fn commit(&mut self, page: Commit<'_>) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Waits until every page accepted by [`commit`](Self::commit) is durable, and reports
    /// the failure of any of them. The engine calls it before it returns an error that is not
    /// the sink's, so that its progress counts only stored pages. The default does nothing
    /// (for sinks whose commits are durable when they return).
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        std::future::ready(Ok(()))
    }

    /// Ids of the committed records whose start lies in `part` (the engine asks when it
    /// restarts a part that an earlier run began, so none of them is written twice).
    fn committed_ids(
        &mut self,
        part: Interval,
    ) -> impl Future<Output = Result<HashSet<String>, Self::Error>> + Send;

    /// The export is complete: flush what is buffered and drop the resume point (a file
    /// sink removes its checkpoint), so that the next run starts afresh.
    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
