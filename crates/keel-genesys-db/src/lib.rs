//! Database destinations for Genesys Cloud exports: SQLite and PostgreSQL [`PageSink`](keel_genesys::PageSink)s.
//!
//! A data team wants conversations in a database it can query, kept current by a job that
//! runs every few minutes. These sinks make that exactly-once: each page's rows *and* the
//! export's resume point are written in one transaction, so however the job dies, every
//! conversation is stored once and a re-run is harmless (rows are upserted by conversation id,
//! their child rows replaced).
//!
//! What is stored (schema version [`SCHEMA_VERSION`], created on first use, checked on every
//! open):
//! - `conversations`: id, start, end, `start_day` / `start_hour` (UTC, for grouping without
//!   date functions), duration, originating direction, media types and division ids
//!   (comma-separated), the record exactly as sent (`jsonb` in PostgreSQL, JSON text in
//!   SQLite), when and by which run it was written;
//! - `participants`, `sessions` (with the first queue of their segments), `segments`,
//!   `session_metrics`: flattened, keyed by conversation id and position (PostgreSQL: `uuid`
//!   ids, child rows found by a hash index on the id);
//! - `keel_exports` (per export definition: resume point, resolved query, watermark) and
//!   `keel_in_progress` (conversations stored without an end, to fetch again).
//!
//! `docs/SQL.md` has analyst queries that run unchanged on both databases.
//!
//! The PostgreSQL sink pipelines: it writes pages on two connections in turn and returns from
//! [`commit`](keel_genesys::PageSink::commit) once a page is handed over (or held to go with
//! the next pages in one transaction, while both connections are busy or until the held
//! pages are as large as the transaction in flight); pages still
//! become durable in order, and [`flush`](keel_genesys::PageSink::flush) or
//! [`close`](keel_genesys::PageSink::close) wait for them (see `PostgresSink`).
//!
//! One run at a time per destination: PostgreSQL holds an advisory lock on a connection of its
//! own for the whole run, SQLite an exclusive lock on `PATH.lock`; a second run gets
//! [`DbError::Locked`].
//!
//! # Example
//!
//! ```no_run
//! use keel_genesys::PageSink;
//! use keel_genesys_db::{DbSink, Destination, ExportSpec};
//!
//! # async fn run() -> Result<(), keel_genesys_db::DbError> {
//! let dest = Destination::parse("sqlite:cx.db")?;
//! let spec = ExportSpec::new("mypurecloud.ie/voice-inbound", serde_json::json!({"interval": "…"}));
//! let mut sink = DbSink::connect(&dest, spec).await?; // lock, schema check: before any fetch
//! let state = sink.open().await?;
//! if state.resume.is_some() {
//!     let _query = sink.resume_query(); // the query the interrupted run resolved
//! }
//! // … the export engine commits pages …
//! sink.close().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
// NOTE: without a database feature only the destination and error types remain; the schema and
// flattening code is then unused by design.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

mod destination;
mod error;
mod flatten;
mod schema;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sink;
mod spec;
mod sql;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use destination::{Destination, PgUrl};
pub use error::DbError;
pub use schema::SCHEMA_VERSION;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sink::DbSink;
pub use spec::ExportSpec;

#[cfg(feature = "postgres")]
pub use postgres::PostgresSink;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteSink;
