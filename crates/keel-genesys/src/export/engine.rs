//! The engine's loop: open, resume, commit page by page, restart changed parts, close.

use std::borrow::Cow;
use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{ExportJob, Mode, Observer, Progress};
use crate::client::Client;
use crate::details::{Checkpoint, DetailsPage, QueryCheckpoint};
use crate::error::Error;
use crate::models::Interval;
use crate::sink::{Commit, PageSink, Record};

/// Why an export stopped. Whatever was committed before stays committed: running the same
/// export into the same sink again resumes after it.
#[derive(Debug, thiserror::Error)]
pub enum ExportError<E> {
    /// The client failed (credentials, API after retries, transport, a result set that kept
    /// changing, …): [`Error::kind`] says which class.
    #[error(transparent)]
    Client(#[from] Error),
    /// The sink failed to open, commit, read back or close.
    #[error("the export's destination failed")]
    Sink(#[source] E),
}

/// Runs `job` with `client` into `sink`, telling `observer` as pages are committed.
///
/// Opens the sink and resumes after its resume point (from the beginning when it has none),
/// commits each page's records with the page's resume point in one
/// [`commit`](PageSink::commit), and closes the sink when the last page is committed. A part
/// whose results change while it is paged is read on in order or read again, without
/// committing any record twice (see [the module docs](super)).
///
/// Dropping the returned future between two commits is like a crash: the sink holds whole
/// pages and the matching resume point, and a later run resumes exactly.
///
/// # Errors
/// [`ExportError::Client`] for a client error (the resume point of a restart is committed
/// first, so resuming continues exactly; pages the sink accepted are flushed before it is
/// returned), [`ExportError::Sink`] for a sink error.
pub async fn run<S, O>(
    client: &Client,
    job: &ExportJob,
    sink: &mut S,
    observer: &mut O,
) -> Result<Progress, ExportError<S::Error>>
where
    S: PageSink,
    O: Observer + ?Sized,
{
    match pages(client, job, sink, observer).await {
        // NOTE: a sink that pipelines its commits may hold accepted pages that are not
        // durable yet; they are stored (or their failure reported) before the client's
        // error ends the export, so that what the observer was told is what is stored.
        Err(ExportError::Client(e)) => {
            sink.flush().await.map_err(ExportError::Sink)?;
            Err(ExportError::Client(e))
        }
        out => out,
    }
}

async fn pages<S, O>(
    client: &Client,
    job: &ExportJob,
    sink: &mut S,
    observer: &mut O,
) -> Result<Progress, ExportError<S::Error>>
where
    S: PageSink,
    O: Observer + ?Sized,
{
    let state = sink.open().await.map_err(ExportError::Sink)?;
    observer.opened(&state);
    let mut progress = Progress {
        pages: state.pages,
        conversations: state.conversations,
        resumed_conversations: state.conversations,
        ..Progress::default()
    };
    let mut resume = state.resume;
    // NOTE: the resume point of the last commit: where a part an earlier run began stands.
    let mut last = resume.clone();
    let mut late = Late::default();
    if let Some(cp) = &last {
        late.observe(cp);
    }
    let mut part_totals = BTreeMap::new();
    let mut restarted: Option<(Interval, u32)> = None;
    let mut continued: Option<Interval> = None;
    loop {
        let export = match job.mode {
            Mode::Query => client.conversation_details(job.query.clone()),
            Mode::Jobs => client.conversation_details_job(job.query.clone()),
        };
        let export = match resume.take() {
            Some(cp) => export.resume_after(cp),
            None => export,
        };
        let mut export = std::pin::pin!(export);
        let failure = loop {
            match export.next().await {
                None => break None,
                Some(Ok(page)) => {
                    if let (Checkpoint::Query(q), Some(t)) = (&page.checkpoint, page.total_hits) {
                        part_totals.insert(q.part_index, t);
                        progress.total_hits = Some(part_totals.values().sum());
                    }
                    let DetailsPage {
                        checkpoint,
                        conversations,
                        ..
                    } = page;
                    let records = records(conversations, job.mode)?;
                    // NOTE: a restart point (page 0) only moves the resume point.
                    let restart_point =
                        matches!(&checkpoint, Checkpoint::Query(q) if q.page_number == 0);
                    let commit = Commit {
                        records: &records,
                        resume: &checkpoint,
                        pages: u64::from(!restart_point),
                    };
                    sink.commit(commit).await.map_err(ExportError::Sink)?;
                    progress.pages += commit.pages;
                    progress.conversations += records.len() as u64;
                    progress.late_arrivals += late.observe(&checkpoint);
                    observer.committed(&progress);
                    last = Some(checkpoint);
                }
                Some(Err(e)) => break Some(e),
            }
        };
        let Some(e) = failure else {
            sink.close().await.map_err(ExportError::Sink)?;
            return Ok(progress);
        };
        let (restart, part) = match &e {
            Error::ResultSetChanged {
                resume: Some(cp),
                interval,
                ..
            } => ((**cp).clone(), *interval),
            // NOTE: the part was begun by an earlier run: the ids it committed are in the sink.
            Error::ResultSetChanged {
                resume: None,
                interval,
                expected,
                actual,
            } if job.mode == Mode::Query => {
                let ids = sink
                    .committed_ids(*interval)
                    .await
                    .map_err(ExportError::Sink)?;
                let mut ids: Vec<String> = ids.into_iter().collect();
                ids.sort_unstable();
                let begun = last_of_part(last.as_ref(), *interval);
                if let Some(cp) = begun.filter(|cp| actual > expected && cp.page_number > 0) {
                    if continued != Some(*interval) {
                        // NOTE: the results only grew: reading on in order from the last page
                        // committed loses nothing. Growth is not a restart, and not bounded.
                        continued = Some(*interval);
                        tracing::info!(part = %interval, was = expected, now = actual, "results of a part begun by an earlier run grew: reading it on in order, skipping the records already committed");
                        resume = Some(in_order_after(cp, ids));
                        continue;
                    }
                }
                let page_size = job
                    .query
                    .paging
                    .map_or(client.inner.settings.page_size, |p| p.page_size);
                let restart = restart_part(job.query.interval, *interval, page_size, ids, begun);
                (restart, *interval)
            }
            _ => return Err(e.into()),
        };
        // NOTE: the restart point supersedes the last page's resume point: resuming after the
        // last page of a part whose results moved back could skip records.
        let commit = Commit {
            records: &[],
            resume: &restart,
            pages: 0,
        };
        sink.commit(commit).await.map_err(ExportError::Sink)?;
        last = Some(restart.clone());
        let times = match &mut restarted {
            Some((p, n)) if *p == part => {
                *n += 1;
                *n
            }
            _ => restarted.insert((part, 1)).1,
        };
        if times > job.max_restarts {
            return Err(e.into());
        }
        progress.restarts += 1;
        tracing::info!(error = %e, "re-exporting the changed part, skipping the records already committed");
        observer.restarting(&e);
        resume = Some(restart);
    }
}

/// Late arrivals counted so far for the part of the last checkpoint seen.
#[derive(Debug, Default)]
struct Late {
    part: Option<Interval>,
    counted: u64,
}

impl Late {
    /// The late arrivals `cp` adds to those counted for its part.
    fn observe(&mut self, cp: &Checkpoint) -> u64 {
        let Checkpoint::Query(q) = cp else {
            return 0;
        };
        let before = if self.part == Some(q.part) {
            self.counted
        } else {
            0
        };
        self.part = Some(q.part);
        self.counted = q.late_arrivals();
        self.counted.saturating_sub(before)
    }
}

/// The query checkpoint `last`, if it is of `part`.
fn last_of_part(last: Option<&Checkpoint>, part: Interval) -> Option<&QueryCheckpoint> {
    match last {
        Some(Checkpoint::Query(q)) if q.part == part => Some(q),
        _ => None,
    }
}

/// A resume point that reads `part` on in order after the page of `cp`, skipping `ids` (every
/// id committed from the part, sorted).
fn in_order_after(cp: &QueryCheckpoint, ids: Vec<String>) -> Checkpoint {
    Checkpoint::Query(QueryCheckpoint {
        yielded: Some(ids.len() as u64),
        skip_ids: ids,
        in_order: true,
        ..cp.clone()
    })
}

/// A resume point that re-exports `part` of `query_interval` from its first page, skipping
/// `ids` (sorted); `begun` is the part's last checkpoint, if any.
fn restart_part(
    query_interval: Interval,
    part: Interval,
    page_size: u32,
    ids: Vec<String>,
    begun: Option<&QueryCheckpoint>,
) -> Checkpoint {
    Checkpoint::Query(QueryCheckpoint {
        query_interval,
        part,
        part_index: begun.map_or(0, |b| b.part_index),
        page_number: 0,
        page_size,
        total_hits: None,
        yielded: Some(ids.len() as u64),
        skip_ids: ids,
        first_total_hits: begun.and_then(|b| b.first_total_hits),
        in_order: false,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdAndStart<'a> {
    #[serde(borrow)]
    conversation_id: Cow<'a, str>,
    #[serde(borrow, default)]
    conversation_start: Option<Cow<'a, str>>,
}

/// The page's conversations as records, each id and start parsed once.
fn records(conversations: Vec<Box<RawValue>>, mode: Mode) -> Result<Vec<Record>, Error> {
    let endpoint = match mode {
        Mode::Query => crate::details::DETAILS_PATH,
        Mode::Jobs => crate::details::JOBS_PATH,
    };
    conversations
        .into_iter()
        .map(|raw| {
            let head: IdAndStart<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                Error::decode(
                    endpoint,
                    format!("conversation without a conversationId: {e}"),
                )
            })?;
            let start = head
                .conversation_start
                .as_deref()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
                .ok_or_else(|| {
                    Error::decode(
                        endpoint,
                        format!(
                            "conversation {:?} has no conversationStart",
                            head.conversation_id
                        ),
                    )
                })?;
            let id = head.conversation_id.into_owned();
            Ok(Record { id, start, raw })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn records_carry_their_id_start_and_exact_bytes() {
        let text =
            r#"{"conversationStart":"2026-01-01T10:00:00.5Z", "conversationId":"a\"b","x":[1.50]}"#;
        let r = records(vec![raw(text)], Mode::Query).unwrap();
        assert_eq!(r[0].id, "a\"b");
        assert_eq!(
            r[0].start,
            time::macros::datetime!(2026-01-01 10:00:00.5 UTC)
        );
        assert_eq!(r[0].raw.get(), text);
    }

    #[test]
    fn the_restart_point_starts_the_part_before_its_first_page_skipping_the_ids() {
        let whole: Interval = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z".parse().unwrap();
        let part: Interval = "2026-01-01T12:00:00Z/2026-01-02T00:00:00Z".parse().unwrap();
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let Checkpoint::Query(q) = restart_part(whole, part, 50, ids, None) else {
            panic!("a query checkpoint")
        };
        assert_eq!(
            (
                q.query_interval,
                q.part,
                q.page_number,
                q.page_size,
                q.skip_ids
            ),
            (whole, part, 0, 50, vec!["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn a_conversation_without_id_or_start_is_a_decode_error() {
        for bad in [
            r#"{"conversationStart":"2026-01-01T10:00:00Z"}"#,
            r#"{"conversationId":"a"}"#,
            r#"{"conversationId":"a","conversationStart":"noon"}"#,
            "[1]",
        ] {
            let e = records(vec![raw(bad)], Mode::Jobs).unwrap_err();
            assert!(matches!(e, Error::Decode { .. }), "{bad}: {e:?}");
        }
    }
}
