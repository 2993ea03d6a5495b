//! The export engine: every page of a details export committed to a [`PageSink`], exactly once.
//!
//! An export that must survive a kill, a revoked token or an API whose results move while they
//! are paged needs one place that decides where to start, what each page's resume point is,
//! and what to do when a part of the interval changes under it. That place is [`run`]: it opens
//! the sink, resumes after the sink's last committed resume point, commits every page's
//! records together with the resume point after them, and owns the restart policy for every
//! sink. A part whose results grow while it is paged is read on in order by the details
//! export itself (see [`crate::details`]); the engine steps in when a part that an earlier
//! run began changes: it takes the ids that run committed from [`PageSink::committed_ids`]
//! and reads the part on in order after its last committed page (the part grew), or again
//! from its first page (the part shrank). A part that keeps shrinking
//! ([`Error::ResultSetChanged`] with a resume point) is restarted from its first page,
//! skipping the ids already committed, up to [`ExportJob::max_restarts`] times; growth is
//! never a restart. A sink only stores; it never decides.
//!
//! The engine takes a plain [`ExportJob`] (no argv), prints nothing and never exits: progress
//! goes to an [`Observer`], failures come back as an [`ExportError`] that keeps the client's
//! [`Error`] (and its [`ErrorKind`](crate::ErrorKind)) apart from the sink's own.
//!
//! # Example
//!
//! An export of a simulated interval into a `Vec`, through a sink that cannot fail:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashSet;
//! use std::convert::Infallible;
//! use keel_genesys::export::{self, ExportJob, Mode};
//! use keel_genesys::sink::{Commit, PageSink, SinkState};
//! use keel_genesys::{Client, ConversationQuery, Credentials, Environment, Interval};
//! use secrecy::SecretString;
//!
//! #[derive(Debug, Default)]
//! struct Ids(Vec<String>, SinkState);
//!
//! impl PageSink for Ids {
//!     type Error = Infallible;
//!     async fn open(&mut self) -> Result<SinkState, Infallible> { Ok(self.1.clone()) }
//!     async fn commit(&mut self, page: Commit<'_>) -> Result<(), Infallible> {
//!         self.0.extend(page.records.iter().map(|r| r.id.clone()));
//!         self.1.resume = Some(page.resume.clone());
//!         Ok(())
//!     }
//!     async fn committed_ids(&mut self, _: Interval) -> Result<HashSet<String>, Infallible> {
//!         Ok(self.0.iter().cloned().collect()) // a real sink filters by the part
//!     }
//!     async fn close(&mut self) -> Result<(), Infallible> { Ok(()) }
//! }
//!
//! let sim = keel_sim::Simulator::builder().conversations(150).start().await?;
//! let env = Environment::custom(&sim.base_url(), &sim.base_url())?;
//! let creds = Credentials::new("sim-client", SecretString::from("sim-secret"));
//! let client = Client::builder(env, creds).build()?;
//! let query = ConversationQuery::new("2026-01-01T00:00:00Z/2026-01-08T00:00:00Z".parse()?);
//!
//! let mut sink = Ids::default();
//! let done = export::run(&client, &ExportJob::new(query, Mode::Query), &mut sink, &mut ()).await?;
//! assert_eq!((done.conversations, sink.0.len()), (150, 150));
//! # Ok(())
//! # }
//! ```

mod engine;
mod job;
mod observer;

pub use engine::{run, ExportError};
pub use job::{ExportJob, Mode, ParseModeError, MAX_RESULT_SET_RESTARTS};
pub use observer::{Observer, Progress};

#[cfg(doc)]
use crate::{error::Error, sink::PageSink};

#[cfg(test)]
mod tests;
