//! Resumable exports of analytics conversation details, page by page, in order.
//!
//! [`Client::conversation_details`](crate::Client::conversation_details) pages the synchronous
//! details query; [`Client::conversation_details_job`](crate::Client::conversation_details_job)
//! pages the results of an asynchronous job by cursor. Both give a [`DetailsExport`]: a
//! [`Stream`](futures_util::Stream) of [`DetailsPage`]s whose conversations are exactly the JSON bytes the API sent.
//! Each page carries a [`Checkpoint`]; a job that persists it after writing the page can later
//! call [`DetailsExport::resume_after`] and continue with the next page, so the output holds
//! every record exactly once.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::TryStreamExt;
//! use keel_genesys::{Checkpoint, Client, ConversationQuery, Credentials, Environment};
//! use secrecy::SecretString;
//!
//! let sim = keel_sim::Simulator::builder().conversations(250).start().await?;
//! let env = Environment::custom(&sim.base_url(), &sim.base_url())?;
//! let creds = Credentials::new("sim-client", SecretString::from("sim-secret"));
//! let client = Client::builder(env, creds).build()?;
//! let query = ConversationQuery::new("2026-01-01T00:00:00Z/2026-01-08T00:00:00Z".parse()?);
//!
//! let mut export = client.conversation_details(query.clone());
//! let mut written = 0;
//! let mut saved = String::new();
//! while let Some(page) = export.try_next().await? {
//!     written += page.conversations.len(); // write `c.get()` for each, then:
//!     saved = serde_json::to_string(&page.checkpoint)?;
//!     if written >= 100 {
//!         break; // as if the job were killed here
//!     }
//! }
//! let checkpoint: Checkpoint = serde_json::from_str(&saved)?;
//! let mut rest = client.conversation_details(query).resume_after(checkpoint);
//! while let Some(page) = rest.try_next().await? {
//!     written += page.conversations.len();
//! }
//! assert_eq!(written, 250);
//! # Ok(())
//! # }
//! ```
//!
//! # Splitting
//!
//! The details query cannot page past 100,000 results, and small intervals page faster. The
//! query interval is therefore cut into parts ([`SplitPolicy`]): first into pieces of at most
//! `max_part` (a day by default), then any part whose first page reports more than
//! `max_results` hits ([`PART_RESULTS`], 20,000, by default, which also bounds the ids an
//! export keeps for the part in progress) is halved, recursively, until each part fits. Parts are half-open and
//! conversations belong to the part holding their `conversationStart`, so the parts add up to
//! exactly the whole. Up to `max_parallel_parts` parts are fetched at once; pages are still
//! yielded strictly in interval order, part after part, ascending by `conversationStart`.
//!
//! # A result set that changes (live intervals)
//!
//! An interval that ends now keeps gaining conversations while it is paged, anywhere in the
//! sort order (analytics data arrives late). Each part is paged fast (pages fetched ahead,
//! parts in parallel) while every page reports the `totalHits` of its first; a page that
//! reports more, or repeats an id, shows the part moved, and the part falls back to paging in
//! order, one page at a time, from that page on: over a set that only grows that loses
//! nothing, and the ids it has yielded already are dropped before they are yielded again. A
//! part that grows therefore completes with every conversation it held at its first page
//! exactly once, and each late arrival it met at most once
//! ([`QueryCheckpoint::late_arrivals`] counts them).
//!
//! A part whose total drops (conversations removed, which can move records back into pages
//! already read) is read again from its first page in order, skipping the ids yielded, up to
//! three times; a part that keeps shrinking ends the stream with
//! [`Error::ResultSetChanged`](crate::Error::ResultSetChanged), whose `resume` checkpoint
//! reads the part again from its first page, skipping every id yielded from it. A removal
//! offset by an insertion between two page requests leaves the total unchanged and shows on
//! no page; no paging by page number can see it.
//!
//! A part resumed mid-way from a page checkpoint does not know the ids yielded before the
//! checkpoint: when it changes, the stream ends with that error and no `resume`; the export
//! engine ([`crate::export::run`]) then takes the ids from its sink and reads on.

mod checkpoint;
mod export;
mod fetch;
pub mod jobs;
mod merge;
mod ordered;
mod part;
mod split;

pub use checkpoint::{Checkpoint, JobCheckpoint, QueryCheckpoint};
pub use export::{DetailsExport, DetailsPage};
pub use split::{plan_parts, SplitPolicy, MAX_RESULTS, PART_RESULTS};

pub(crate) use fetch::{task_failed, DETAILS_PATH};
pub(crate) use jobs::JOBS_PATH;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_changing;
#[cfg(test)]
mod tests_submit;
