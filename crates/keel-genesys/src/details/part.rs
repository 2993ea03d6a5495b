//! Paging one part: halving it when it is over the limit, restarting it when it changes.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::fetch::{fetch_page, map_page, page_stream, Ctx, Got};
use super::merge::Msg;
use super::{Checkpoint, DetailsPage, QueryCheckpoint};
use crate::error::Error;
use crate::models::Interval;

/// Restarts of one part after its results changed, before giving up.
const MAX_RESTARTS: u32 = 3;

/// One part to export.
#[derive(Debug)]
pub(super) struct PartJob {
    pub(super) interval: Interval,
    /// Pages of this part already yielded (0: none).
    pub(super) after_page: u32,
    /// `totalHits` of the part as of `after_page`.
    pub(super) total_hits: Option<u64>,
    /// Ids already yielded from this part, not to yield again.
    pub(super) skip: HashSet<String>,
    /// Whether `skip` holds every id ever yielded from this part.
    pub(super) complete: bool,
}

/// Exports one part into `tx`, ending with [`Msg::Done`], [`Msg::Split`] or [`Msg::Err`].
pub(super) async fn run_part(ctx: Arc<Ctx>, job: PartJob, tx: mpsc::Sender<Msg>) {
    let span = tracing::debug_span!("part", interval = %job.interval, after_page = job.after_page);
    let last = match export_part(&ctx, job, &tx).instrument(span).await {
        Ok(Outcome::Done) => Msg::Done,
        Ok(Outcome::Split(a, b)) => Msg::Split(a, b),
        Ok(Outcome::Closed) => return,
        Err(e) => Msg::Err(e),
    };
    let _ = tx.send(last).await;
}

enum Outcome {
    Done,
    Split(Box<PartJob>, Box<PartJob>),
    Closed,
}

/// Pages one part in order into `tx`; see the module docs of [`crate::details`].
async fn export_part(
    ctx: &Arc<Ctx>,
    job: PartJob,
    tx: &mpsc::Sender<Msg>,
) -> Result<Outcome, Error> {
    let PartJob {
        interval,
        mut after_page,
        total_hits,
        mut skip,
        complete,
    } = job;
    let page_size = u64::from(ctx.page_size);
    // Every id yielded from this part that we know of.
    let mut yielded: HashSet<String> = skip.clone();
    let mut expected: Option<Option<u64>> = (after_page > 0).then_some(total_hits);
    let mut restarts = 0;
    'pass: loop {
        let repass = !skip.is_empty();
        let mut pages: BoxStream<'static, Result<Got, Error>> = if after_page == 0 {
            let first = fetch_page(ctx.clone(), interval, 1).await?;
            let total = first.total.unwrap_or(0);
            if total > ctx.max_results {
                let Some((a, b)) = interval.halves() else {
                    return Err(Error::TooManyResults {
                        interval,
                        total_hits: total,
                    });
                };
                tracing::debug!(%interval, total, "splitting part over the result limit");
                let half = |interval| {
                    Box::new(PartJob {
                        interval,
                        after_page: 0,
                        total_hits: None,
                        skip: skip.clone(),
                        complete,
                    })
                };
                return Ok(Outcome::Split(half(a), half(b)));
            }
            let last = first.items.is_empty() || first.total.is_some_and(|t| t <= page_size);
            let head = stream::once(async move {
                Ok(Got {
                    number: 1,
                    total: first.total,
                    items: first.items,
                    last,
                })
            });
            if last {
                Box::pin(head)
            } else {
                Box::pin(head.chain(page_stream(ctx, interval).resume_from(2).map(map_page)))
            }
        } else {
            Box::pin(
                page_stream(ctx, interval)
                    .resume_after(u64::from(after_page))
                    .map(map_page),
            )
        };
        let mut first_of_pass = true;
        while let Some(got) = pages.next().await {
            let got = got?;
            let changed_total = match expected {
                None => {
                    expected = Some(got.total);
                    got.total.is_some_and(|t| t > ctx.max_results)
                }
                Some(e) => e != got.total,
            };
            // NOTE: check the whole page before touching any state: a page that shows the
            // result set moved is not yielded at all.
            let mut in_page = HashSet::with_capacity(got.items.len());
            let duplicate = got.items.iter().any(|c| {
                !skip.contains(&c.id) && (yielded.contains(&c.id) || !in_page.insert(&c.id))
            });
            if changed_total || duplicate {
                let was = expected.flatten().unwrap_or(0);
                let now = got.total.unwrap_or(0);
                drop(pages);
                if complete && restarts < MAX_RESTARTS {
                    restarts += 1;
                    tracing::warn!(%interval, was, now, duplicate, "results changed while paging; restarting the part");
                    skip = yielded.clone();
                    after_page = 0;
                    expected = None;
                    continue 'pass;
                }
                let resume = complete.then(|| {
                    Box::new(Checkpoint::Query(QueryCheckpoint {
                        query_interval: ctx.query.interval,
                        part: interval,
                        part_index: 0,
                        page_number: 0,
                        page_size: ctx.page_size,
                        total_hits: None,
                        skip_ids: sorted(&yielded),
                    }))
                });
                return Err(Error::ResultSetChanged {
                    interval,
                    expected: was,
                    actual: now,
                    resume,
                });
            }
            let mut conversations = Vec::with_capacity(got.items.len());
            for c in got.items {
                if skip.remove(&c.id) {
                    continue;
                }
                yielded.insert(c.id);
                conversations.push(c.raw);
            }
            let show = !repass || first_of_pass || got.last || !conversations.is_empty();
            first_of_pass = false;
            if !show {
                continue;
            }
            let page = DetailsPage {
                checkpoint: Checkpoint::Query(QueryCheckpoint {
                    query_interval: ctx.query.interval,
                    part: interval,
                    part_index: 0,
                    page_number: u32::try_from(got.number).unwrap_or(u32::MAX),
                    page_size: ctx.page_size,
                    total_hits: got.total,
                    skip_ids: sorted(&skip),
                }),
                conversations,
                total_hits: got.total,
            };
            if tx.send(Msg::Page(page)).await.is_err() {
                return Ok(Outcome::Closed);
            }
        }
        return Ok(Outcome::Done);
    }
}

fn sorted(ids: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().cloned().collect();
    v.sort_unstable();
    v
}
