//! [`DbSink`]: whichever database a [`Destination`] names, behind one type.

use std::collections::HashSet;

use keel_genesys::sink::{Commit, PageSink, SinkState};
use keel_genesys::Interval;
use time::OffsetDateTime;

use crate::destination::Destination;
use crate::error::DbError;
use crate::spec::ExportSpec;

/// A database sink chosen by its [`Destination`]: what a program's `--out` maps to.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbSink {
    /// An SQLite file.
    #[cfg(feature = "sqlite")]
    Sqlite(crate::SqliteSink),
    /// A PostgreSQL server.
    #[cfg(feature = "postgres")]
    Postgres(crate::PostgresSink),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            DbSink::Sqlite($s) => $e,
            #[cfg(feature = "postgres")]
            DbSink::Postgres($s) => $e,
        }
    };
}

impl DbSink {
    /// Connects to `destination`, takes its run lock and creates or checks the schema.
    ///
    /// # Errors
    /// As [`SqliteSink::connect`](crate::SqliteSink::connect) and
    /// [`PostgresSink::connect`](crate::PostgresSink::connect); [`DbError::Destination`]
    /// for a kind of destination not compiled in.
    pub async fn connect(destination: &Destination, spec: ExportSpec) -> Result<Self, DbError> {
        match destination {
            #[cfg(feature = "sqlite")]
            Destination::Sqlite(path) => Ok(DbSink::Sqlite(
                crate::SqliteSink::connect(path, spec).await?,
            )),
            #[cfg(feature = "postgres")]
            Destination::Postgres(url) => Ok(DbSink::Postgres(
                crate::PostgresSink::connect(url, spec).await?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(DbError::Destination(format!(
                "{other}: support for this database is not compiled in"
            ))),
        }
    }

    /// The query stored with the resume point that [`open`](PageSink::open) reported.
    pub fn resume_query(&self) -> Option<&serde_json::Value> {
        each!(self, s => s.resume_query())
    }

    /// The export definition's watermark: where its last completed run ended.
    ///
    /// # Errors
    /// [`DbError::Database`], [`DbError::State`].
    pub async fn watermark(&mut self) -> Result<Option<OffsetDateTime>, DbError> {
        each!(self, s => s.watermark().await)
    }

    /// Moves the watermark to `at` when [`close`](PageSink::close) completes the export.
    pub fn watermark_on_close(&mut self, at: OffsetDateTime) {
        each!(self, s => s.watermark_on_close(at))
    }

    /// See [`SqliteSink::hold_lock_on_close`](crate::SqliteSink::hold_lock_on_close).
    pub fn hold_lock_on_close(&mut self, hold: bool) {
        each!(self, s => s.hold_lock_on_close(hold))
    }

    /// See [`SqliteSink::next_export`](crate::SqliteSink::next_export).
    pub fn next_export(&mut self, query: serde_json::Value) {
        each!(self, s => s.next_export(query))
    }

    /// Releases the run lock (after a [`close`](PageSink::close) that held it).
    ///
    /// # Errors
    /// [`DbError::Database`].
    pub async fn release(&mut self) -> Result<(), DbError> {
        each!(self, s => s.release().await)
    }

    /// Conversations this export definition stored without an end, with their start, earliest
    /// first.
    ///
    /// # Errors
    /// [`DbError::Database`].
    pub async fn in_progress(&mut self) -> Result<Vec<(String, OffsetDateTime)>, DbError> {
        each!(self, s => s.in_progress().await)
    }

    /// The API pages and records accepted that the last failure leaves unconfirmed (see
    /// [`PostgresSink::unconfirmed`](crate::PostgresSink::unconfirmed)).
    pub fn unconfirmed(&self) -> (u64, u64) {
        each!(self, s => s.unconfirmed())
    }

    /// Stops fetching the conversations `ids` again (see
    /// [`SqliteSink::forget_in_progress`](crate::SqliteSink::forget_in_progress)).
    ///
    /// # Errors
    /// [`DbError::Database`].
    pub async fn forget_in_progress(&mut self, ids: &[String]) -> Result<(), DbError> {
        each!(self, s => s.forget_in_progress(ids).await)
    }
}

impl PageSink for DbSink {
    type Error = DbError;

    async fn open(&mut self) -> Result<SinkState, DbError> {
        each!(self, s => s.open().await)
    }

    async fn commit(&mut self, page: Commit<'_>) -> Result<(), DbError> {
        each!(self, s => s.commit(page).await)
    }

    async fn flush(&mut self) -> Result<(), DbError> {
        each!(self, s => s.flush().await)
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, DbError> {
        each!(self, s => s.committed_ids(part).await)
    }

    async fn close(&mut self) -> Result<(), DbError> {
        each!(self, s => s.close().await)
    }
}
