//! Paging one part: pages fetched ahead while its results stand still, in order once they move.
//!
//! A part starts on the fast path: its first page alone (to split it when it is over the
//! limit), then the rest `prefetch` pages at a time, each checked against the `totalHits` of
//! the first. A page that reports another total, or repeats an id, shows the results moved:
//! - they grew (a larger total): pages fetched ahead may have missed records that new ones
//!   pushed forward, so that page and every later one are read again [in order](super::ordered),
//!   one at a time, which over a set that only grows loses nothing;
//! - they shrank (a smaller total, or a repeated id with the same total): records may have
//!   moved back into pages already read, so the part is read again from its first page, in
//!   order, skipping the ids already yielded; up to [`MAX_REREADS`] times, then the part ends
//!   with [`Error::ResultSetChanged`] and an exact restart point.
//!
//! Both need every id yielded from the part; a part resumed mid-way from a page checkpoint
//! does not hold them, so it ends with [`Error::ResultSetChanged`] without a restart point
//! and the caller (the export engine) resumes it with the ids it committed.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::fetch::{fetch_page, map_page, page_stream, Ctx, Got};
use super::merge::Msg;
use super::ordered::{ordered, Part};
use crate::error::Error;
use crate::models::Interval;

/// Re-reads of one part from its first page after its results shrank, before it ends with
/// [`Error::ResultSetChanged`].
pub(super) const MAX_REREADS: u32 = 3;

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
    /// Continue after `after_page` in order (the part's results grew; `skip` is complete).
    pub(super) in_order: bool,
    /// The part's `totalHits` on its first page, when known.
    pub(super) first_total: Option<u64>,
    /// Conversations yielded from this part before, when known.
    pub(super) yielded: Option<u64>,
}

impl PartJob {
    /// A part not started yet.
    pub(super) fn new(interval: Interval) -> Self {
        PartJob {
            interval,
            after_page: 0,
            total_hits: None,
            skip: HashSet::new(),
            complete: true,
            in_order: false,
            first_total: None,
            yielded: Some(0),
        }
    }
}

/// Exports one part into `tx`, ending with [`Msg::Done`], [`Msg::Split`] or [`Msg::Err`].
pub(super) async fn run_part(ctx: Arc<Ctx>, job: PartJob, tx: mpsc::Sender<Msg>) {
    let span = tracing::debug_span!("part", interval = %job.interval, after_page = job.after_page);
    let last = match export_part(ctx, job, &tx).instrument(span).await {
        Ok(Outcome::Done) => Msg::Done,
        Ok(Outcome::Split(a, b)) => Msg::Split(a, b),
        Ok(Outcome::Closed) => return,
        Err(e) => Msg::Err(e),
    };
    let _ = tx.send(last).await;
}

pub(super) enum Outcome {
    Done,
    Split(Box<PartJob>, Box<PartJob>),
    Closed,
}

/// How a way of paging a part ended.
pub(super) enum Step {
    Done(Outcome),
    /// The results grew: read on in order from page `from`; `floor` is the largest total seen.
    Grew {
        from: u64,
        floor: Option<u64>,
        was: u64,
        now: u64,
    },
    /// The results shrank or moved back: read the part again from its first page.
    Shrank {
        was: u64,
        now: u64,
    },
    /// A part resumed without its total turned out over the limit: page it again from the
    /// start, where it is split.
    Oversized {
        total: u64,
    },
}

/// Pages one part in order into `tx`; see the module docs.
async fn export_part(
    ctx: Arc<Ctx>,
    job: PartJob,
    tx: &mpsc::Sender<Msg>,
) -> Result<Outcome, Error> {
    let interval = job.interval;
    let mut mode = if job.in_order && job.complete {
        Mode::Ordered {
            from: u64::from(job.after_page) + 1,
            floor: job.total_hits,
        }
    } else {
        Mode::Fast {
            after_page: job.after_page,
            total_hits: job.total_hits,
        }
    };
    let mut part = Part::new(ctx, job);
    let mut rereads = 0;
    loop {
        let step = match mode {
            Mode::Fast {
                after_page,
                total_hits,
            } => fast(&mut part, after_page, total_hits, tx).await?,
            Mode::Ordered { from, floor } => ordered(&mut part, from, floor, tx).await?,
        };
        mode = match step {
            Step::Done(outcome) => return Ok(outcome),
            Step::Grew {
                from,
                floor,
                was,
                now,
            } => {
                if !part.complete() {
                    return Err(part.changed(was, now));
                }
                tracing::info!(
                    part = %interval, was, now, page = from,
                    "results of the part grew while it was paged: reading it on in order from page {from}, one page at a time, skipping the conversations already exported"
                );
                Mode::Ordered { from, floor }
            }
            Step::Shrank { was, now } => {
                if !part.complete() || rereads >= MAX_REREADS {
                    return Err(part.changed(was, now));
                }
                rereads += 1;
                tracing::info!(
                    part = %interval, was, now, reread = rereads,
                    "results of the part shrank while it was paged: reading it again from its first page in order (re-read {rereads} of {MAX_REREADS}), skipping the conversations already exported"
                );
                if !part.restart(now, tx).await {
                    return Ok(Outcome::Closed);
                }
                Mode::Ordered {
                    from: 1,
                    floor: None,
                }
            }
            Step::Oversized { total } => {
                if !part.complete() || rereads >= MAX_REREADS {
                    return Err(part.changed(total, total));
                }
                rereads += 1;
                if !part.restart(total, tx).await {
                    return Ok(Outcome::Closed);
                }
                Mode::Fast {
                    after_page: 0,
                    total_hits: None,
                }
            }
        };
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Fast {
        after_page: u32,
        total_hits: Option<u64>,
    },
    Ordered {
        from: u64,
        floor: Option<u64>,
    },
}

/// The fast path: the first page alone, then the rest with prefetch, each checked against
/// the first page's total (a resumed part's: the checkpoint's).
async fn fast(
    part: &mut Part,
    after_page: u32,
    total_hits: Option<u64>,
    tx: &mpsc::Sender<Msg>,
) -> Result<Step, Error> {
    let ctx = part.ctx.clone();
    let interval = part.interval;
    let page_size = u64::from(ctx.page_size);
    let mut expected: Option<Option<u64>> = (after_page > 0).then_some(total_hits);
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
            let (a, b) = part.halves(a, b);
            return Ok(Step::Done(Outcome::Split(Box::new(a), Box::new(b))));
        }
        part.first_page(first.total);
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
            Box::pin(head.chain(page_stream(&ctx, interval).resume_from(2).map(map_page)))
        }
    } else {
        Box::pin(
            page_stream(&ctx, interval)
                .resume_after(u64::from(after_page))
                .map(map_page),
        )
    };
    while let Some(got) = pages.next().await {
        let got = got?;
        // NOTE: the whole page is checked before any state changes: a page that shows the
        // results moved is not yielded at all (it is read again, or the part is).
        let step = match expected {
            None => {
                expected = Some(got.total);
                got.total
                    .filter(|t| *t > ctx.max_results)
                    .map(|total| Step::Oversized { total })
            }
            Some(e) => moved(e, got.total, part.repeats(&got.items), got.number),
        };
        if let Some(step) = step {
            return Ok(step);
        }
        let conversations = part.take(got.items);
        if conversations.is_empty() && !got.last && part.rereading() {
            continue;
        }
        if !part.send(got.number, got.total, conversations, tx).await {
            return Ok(Step::Done(Outcome::Closed));
        }
    }
    Ok(Step::Done(Outcome::Done))
}

/// Whether, and how, page `number`'s total and ids show the results moved since `expected`.
fn moved(expected: Option<u64>, total: Option<u64>, repeats: bool, number: u64) -> Option<Step> {
    let was = expected.unwrap_or(0);
    let now = total.unwrap_or(0);
    match (expected, total) {
        (Some(e), Some(t)) if t > e => Some(Step::Grew {
            from: number,
            floor: Some(t),
            was,
            now,
        }),
        (Some(e), Some(t)) if t < e => Some(Step::Shrank { was, now }),
        _ if expected != total || repeats => Some(Step::Shrank { was, now }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(step: Option<Step>) -> &'static str {
        match step {
            None => "stable",
            Some(Step::Grew { .. }) => "grew",
            Some(Step::Shrank { .. }) => "shrank",
            Some(Step::Oversized { .. }) => "oversized",
            Some(Step::Done(_)) => "done",
        }
    }

    #[test]
    fn a_larger_total_is_growth_a_smaller_one_or_a_repeated_id_is_not() {
        assert_eq!(kind(moved(Some(10), Some(10), false, 3)), "stable");
        assert_eq!(kind(moved(None, None, false, 3)), "stable");
        assert_eq!(kind(moved(Some(10), Some(12), false, 3)), "grew");
        assert_eq!(kind(moved(Some(10), Some(12), true, 3)), "grew");
        assert_eq!(kind(moved(Some(10), Some(9), false, 3)), "shrank");
        assert_eq!(kind(moved(Some(10), Some(10), true, 3)), "shrank");
        assert_eq!(kind(moved(Some(10), None, false, 3)), "shrank");
        let Some(Step::Grew { from, floor, .. }) = moved(Some(10), Some(12), false, 7) else {
            panic!("growth")
        };
        assert_eq!(
            (from, floor),
            (7, Some(12)),
            "re-read from the page that showed it"
        );
    }
}
