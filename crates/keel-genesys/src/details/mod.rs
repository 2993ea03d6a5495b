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
//! # A result set that changes
//!
//! If a later page of a part reports a different `totalHits` than its first page, the data
//! under that part changed while it was being paged and page boundaries may have moved: the
//! stream ends with [`Error::ResultSetChanged`](crate::Error::ResultSetChanged) instead of
//! yielding a page that could repeat or skip records. Every page yielded before it is exact.
//! The error carries a `resume` checkpoint; resuming from it re-exports the changed part from
//! its first page, skipping the conversation ids already yielded from that part (carried in
//! the checkpoint), so nothing is lost or duplicated.

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
