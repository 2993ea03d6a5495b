//! Genesys Cloud CX on keel: environments, OAuth client credentials, analytics models and
//! resumable conversation-details exports.
//!
//! A [`Client`] assembles the whole keel stack (replayable bodies, refresh on 401, backoff,
//! bearer tokens, tracing, timeouts and gzip) over a rustls hyper client, and exposes the two
//! ways Genesys exports analytics conversation details:
//!
//! - [`Client::conversation_details`]: the synchronous details query, paged in the request
//!   body, split into smaller intervals so no part goes past the API's 100,000-result limit.
//! - [`Client::conversation_details_job`]: the asynchronous jobs API, paged by cursor.
//!
//! Both return a [`DetailsExport`]: a stream of [`DetailsPage`]s in order, each carrying a
//! serializable [`Checkpoint`] a job can persist and [`DetailsExport::resume_after`].
//!
//! The export engine ([`export::run`]) drives either into any [`PageSink`]: it commits every
//! page with its resume point, resumes where the sink stands, and rides out parts whose
//! results change while they are paged (a live interval) without committing a record twice. The `genesys-export` program (its own package)
//! is that engine behind a command line, with NDJSON and CSV file sinks.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod details;
pub mod environment;
pub mod error;
pub mod export;
pub mod models;
pub mod sink;

pub use client::{Client, ClientBuilder, ClientStats, Credentials};
pub use details::{Checkpoint, DetailsExport, DetailsPage, JobCheckpoint, QueryCheckpoint};
pub use environment::Environment;
pub use error::{Error, ErrorKind};
pub use export::{ExportJob, Mode};
pub use models::{ConversationQuery, Interval};
pub use sink::{Commit, PageSink, Record, SinkState};
