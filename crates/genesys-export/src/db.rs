//! Database outputs: `--out sqlite:PATH | postgres://… | postgresql://…` through keel-genesys-db.
//!
//! A database keeps its own resume point, in the same transaction as each page's rows, so a
//! database run always continues an interrupted run of the same export (with or without
//! `--resume`), and re-running a completed export upserts the same rows again. The run lock
//! (an advisory lock in PostgreSQL, `PATH.lock` beside an SQLite file) and the schema check are
//! taken before anything is fetched.
//!
//! `--incremental` runs, under one lock: the export an earlier run left unfinished, if any;
//! the window from the watermark minus `--overlap` up to now, which moves the watermark when
//! its last page is committed; then the conversations stored while in progress, fetched again
//! by id (batches of [`IDS_PER_QUERY`]) until they have ended. One that such a query no longer
//! returns (the API deleted it) is not asked for again; its row stays as last stored.

use std::collections::HashSet;
use std::time::Duration;

use keel_genesys::export::{self, ExportError as EngineError, ExportJob};
use keel_genesys::models::{Filter, Interval};
use keel_genesys::sink::{Commit, SinkState};
use keel_genesys::{Client, ConversationQuery, PageSink};
use keel_genesys_db::{DbError, DbSink, Destination, ExportSpec};
use time::OffsetDateTime;

use crate::cli::Args;
use crate::error::ExportError;
use crate::progress::Progress;

/// Conversation ids per details query when conversations in progress are fetched again.
pub(crate) const IDS_PER_QUERY: usize = 100;

/// The counters of a database run, all its exports together.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) pages: u64,
    pub(crate) conversations: u64,
    pub(crate) resumed_conversations: u64,
}

/// The database `--out` names, if it names one (`None`: a file or stdout).
///
/// # Errors
/// [`ExportError::Database`] for a malformed database URL (never echoing its password).
pub(crate) fn destination(args: &Args) -> Result<Option<Destination>, ExportError> {
    let Some(text) = args.out.as_deref().and_then(|p| p.to_str()) else {
        return Ok(None);
    };
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return Ok(None);
    }
    if args.format == crate::cli::Format::Csv {
        return Err(ExportError::Usage(
            "--format csv is for files; a database stores the records and flattened tables".into(),
        ));
    }
    Ok(Some(Destination::parse(text)?))
}

/// The line printed once when the URL carries a password.
pub(crate) fn password_warning(dest: &Destination) -> Option<String> {
    dest.has_password_in_url().then(|| {
        format!(
            "genesys-export: warning: the --out URL carries a password ({dest}), which `ps` and shell history show; prefer PGPASSWORD or ~/.pgpass"
        )
    })
}

/// The export definition a run's state is stored under: the API and the filters, plus, for a
/// plain run, the window and page size (each window is its own export), or `incremental`.
fn definition(args: &Args, api: &str) -> String {
    let media = args.media_type.as_deref().unwrap_or("*");
    if args.incremental {
        format!(
            "incremental; api {api}; mode {}; media type {media}",
            args.mode
        )
    } else {
        let window = match (&args.interval, &args.since) {
            (Some(i), _) => format!("interval {i}"),
            (None, Some(d)) => format!("since {}s", d.as_secs()),
            (None, None) => "since 86400s".to_owned(),
        };
        format!(
            "{window}; api {api}; mode {}; media type {media}; page size {}",
            args.mode, args.page_size
        )
    }
}

/// The query of `args` over `interval` (filters and page size, no window).
fn query_over(args: &Args, interval: Interval) -> ConversationQuery {
    let mut q = ConversationQuery::new(interval).page_size(args.page_size);
    if let Some(m) = &args.media_type {
        q = q.media_type(m.clone());
    }
    q
}

/// `conversationId` is one of `ids`.
fn ids_filter(ids: &[String]) -> Result<Filter, ExportError> {
    let predicates: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"dimension": "conversationId", "value": id}))
        .collect();
    serde_json::from_value(serde_json::json!({"type": "or", "predicates": predicates}))
        .map_err(|e| ExportError::Usage(format!("cannot build an id filter: {e}")))
}

fn window(start: OffsetDateTime, end: OffsetDateTime) -> Result<Interval, ExportError> {
    Interval::new(start, end).map_err(|e| ExportError::Usage(format!("bad window: {e}")))
}

/// `t` without its sub-millisecond part (the API's precision).
fn whole_ms(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
}

fn to_json(q: &ConversationQuery) -> Result<serde_json::Value, ExportError> {
    serde_json::to_value(q).map_err(|e| ExportError::Usage(format!("query cannot be encoded: {e}")))
}

/// Runs the export of `args` into the database `dest`.
///
/// # Errors
/// The engine's errors, the sink's as [`ExportError::Database`].
pub(crate) async fn export(
    args: &Args,
    dest: &Destination,
    api: &str,
    client: &Client,
    progress: &mut Progress,
    totals: &mut Totals,
) -> Result<(), EngineError<ExportError>> {
    let now = whole_ms(args.now.unwrap_or_else(OffsetDateTime::now_utc));
    let since = args.since.unwrap_or(Duration::from_secs(86_400));
    let first = match args.interval {
        Some(i) => i,
        None => window(now - since, now)?,
    };
    let base = query_over(args, first);
    base.validate()
        .map_err(|e| ExportError::Usage(format!("bad query: {e}")))?;
    let spec = ExportSpec::new(definition(args, api), to_json(&base)?);
    let mut sink = DbSink::connect(dest, spec).await.map_err(sink_err)?;

    sink.hold_lock_on_close(args.incremental);
    sink.open().await.map_err(sink_err)?;
    let pending = sink.resume_query().cloned();
    let resumed = match pending {
        Some(q) => {
            let q: ConversationQuery = serde_json::from_value(q)
                .map_err(|e| ExportError::Usage(format!("{dest}: stored query unreadable: {e}")))?;
            progress.note(&format!(
                "genesys-export: continuing the interrupted export {} in {dest}",
                q.interval
            ));
            if args.incremental {
                // NOTE: an incremental run's window and id batches all end at its `now`.
                sink.watermark_on_close(q.interval.end());
            }
            phase(client, args, q, &mut sink, progress, totals).await?;
            true
        }
        None => false,
    };
    if !args.incremental {
        if !resumed {
            phase(client, args, base, &mut sink, progress, totals).await?;
        }
        return Ok(());
    }

    let watermark = sink.watermark().await.map_err(sink_err)?;
    let start = match watermark {
        Some(w) => w - args.overlap,
        None => first.start(),
    };
    if start < now {
        let q = query_over(args, window(start, now)?);
        sink.next_export(to_json(&q)?);
        sink.watermark_on_close(now);
        phase(client, args, q, &mut sink, progress, totals).await?;
    }

    // NOTE: earliest start first, so each batch's query interval runs from its own earliest
    // start: a conversation in progress for weeks (an open message thread) is still found.
    let in_progress = sink.in_progress().await.map_err(sink_err)?;
    for batch in in_progress.chunks(IDS_PER_QUERY) {
        let from = batch[0].1.min(now - Duration::from_millis(1));
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let q = query_over(args, window(from, now)?).conversation_filter(ids_filter(&ids)?);
        sink.next_export(to_json(&q)?);
        let mut noting = Noting::new(&mut sink);
        phase(client, args, q, &mut noting, progress, totals).await?;
        let Some(seen) = noting.seen() else { continue };
        let gone: Vec<String> = ids.into_iter().filter(|id| !seen.contains(id)).collect();
        if !gone.is_empty() {
            progress.note(&format!(
                "genesys-export: {} conversation(s) stored in progress are no longer returned \
                 by the API (deleted?): they are not fetched again, their rows stay as last \
                 stored",
                gone.len()
            ));
            sink.forget_in_progress(&gone).await.map_err(sink_err)?;
        }
    }
    sink.release().await.map_err(sink_err)?;
    Ok(())
}

/// A sink that notes the ids of the conversations committed through it: which of the
/// conversations in progress asked for by id the API still returns.
struct Noting<'a> {
    sink: &'a mut DbSink,
    seen: HashSet<String>,
    /// Set when the engine asked for the ids already committed (a part restarted): it then
    /// skips those it finds stored, so what it commits is not all the API returned.
    restarted: bool,
}

impl<'a> Noting<'a> {
    fn new(sink: &'a mut DbSink) -> Self {
        Noting {
            sink,
            seen: HashSet::new(),
            restarted: false,
        }
    }

    /// The ids committed, unless a restart may have skipped some.
    fn seen(self) -> Option<HashSet<String>> {
        (!self.restarted).then_some(self.seen)
    }
}

impl PageSink for Noting<'_> {
    type Error = DbError;

    async fn open(&mut self) -> Result<SinkState, DbError> {
        self.sink.open().await
    }

    async fn commit(&mut self, page: Commit<'_>) -> Result<(), DbError> {
        self.seen.extend(page.records.iter().map(|r| r.id.clone()));
        self.sink.commit(page).await
    }

    async fn flush(&mut self) -> Result<(), DbError> {
        self.sink.flush().await
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, DbError> {
        self.restarted = true;
        self.sink.committed_ids(part).await
    }

    async fn close(&mut self) -> Result<(), DbError> {
        self.sink.close().await
    }
}

/// A database sink, as [`phase`] sees it.
trait Unconfirmed {
    /// See [`DbSink::unconfirmed`].
    fn unconfirmed(&self) -> (u64, u64);
}

impl Unconfirmed for DbSink {
    fn unconfirmed(&self) -> (u64, u64) {
        DbSink::unconfirmed(self)
    }
}

impl Unconfirmed for Noting<'_> {
    fn unconfirmed(&self) -> (u64, u64) {
        self.sink.unconfirmed()
    }
}

/// One engine run of `query` into `sink`, adding its counters to `totals`: what the database
/// holds (after a failure of the database, without the pages it did not store).
async fn phase<S: PageSink<Error = DbError> + Unconfirmed>(
    client: &Client,
    args: &Args,
    query: ConversationQuery,
    sink: &mut S,
    progress: &mut Progress,
    totals: &mut Totals,
) -> Result<(), EngineError<ExportError>> {
    let job = ExportJob::new(query, args.mode);
    let outcome = export::run(client, &job, sink, progress).await;
    let last = progress.last();
    // NOTE: the engine counts a page once the sink accepts it; the PostgreSQL sink stores it
    // later, and a failure drops those it had not stored yet: the totals say what the
    // database holds.
    let (pages, conversations) = match &outcome {
        Err(EngineError::Sink(_)) => sink.unconfirmed(),
        _ => (0, 0),
    };
    totals.pages += last.pages.saturating_sub(pages);
    totals.conversations += last.conversations.saturating_sub(conversations);
    totals.resumed_conversations += last.resumed_conversations;
    outcome.map(drop).map_err(|e| match e {
        EngineError::Sink(e) => EngineError::Sink(ExportError::Database(e)),
        EngineError::Client(e) => EngineError::Client(e),
    })
}

fn sink_err(e: DbError) -> EngineError<ExportError> {
    EngineError::Sink(ExportError::Database(e))
}

impl From<ExportError> for EngineError<ExportError> {
    fn from(e: ExportError) -> Self {
        EngineError::Sink(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(["genesys-export"].iter().chain(extra)).unwrap()
    }

    #[test]
    fn only_database_forms_are_databases() {
        for file in [&["--out", "x.ndjson"][..], &[], &["--out", "sqlite.ndjson"]] {
            assert!(destination(&args(file)).unwrap().is_none());
        }
        let d = destination(&args(&["--out", "sqlite:cx.db"]))
            .unwrap()
            .unwrap();
        assert_eq!(d, Destination::Sqlite("cx.db".into()));
        let d = destination(&args(&["--out", "postgresql://etl:pw@db/cx"]))
            .unwrap()
            .unwrap();
        let warning = password_warning(&d).unwrap();
        assert!(
            !warning.contains(":pw@") && warning.contains("***"),
            "{warning}"
        );
        let d = destination(&args(&["--out", "postgres://etl@db/cx"]))
            .unwrap()
            .unwrap();
        assert!(password_warning(&d).is_none());
    }

    #[test]
    fn an_incremental_definition_is_its_filters_not_its_window() {
        let a = args(&["--incremental", "--out", "sqlite:x", "--since", "1h"]);
        let b = args(&["--incremental", "--out", "sqlite:x", "--since", "3h"]);
        assert_eq!(definition(&a, "api"), definition(&b, "api"));
        let c = args(&[
            "--incremental",
            "--out",
            "sqlite:x",
            "--media-type",
            "voice",
        ]);
        assert_ne!(definition(&a, "api"), definition(&c, "api"));
        assert_ne!(definition(&a, "api"), definition(&a, "other-api"));
        let plain = args(&["--out", "sqlite:x", "--since", "1h"]);
        let other = args(&["--out", "sqlite:x", "--since", "3h"]);
        assert_ne!(definition(&plain, "api"), definition(&other, "api"));
        assert_ne!(definition(&plain, "api"), definition(&a, "api"));
    }

    #[test]
    fn ids_are_one_or_filter_of_conversation_id_predicates() {
        let f = ids_filter(&["a".into(), "b".into()]).unwrap();
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["type"], "or");
        assert_eq!(json["predicates"][1]["dimension"], "conversationId");
        assert_eq!(json["predicates"][1]["value"], "b");
    }
}
