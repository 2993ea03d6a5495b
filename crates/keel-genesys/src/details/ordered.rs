//! Paging a part whose results move: in order, one page at a time, skipping the ids yielded.
//!
//! Offset paging over a result set that only grows never loses a record when each page is
//! requested after the one before it was answered: an insertion moves the records after it
//! forward, so a record not read yet stays at or after the next page's first position (it
//! reappears, it does not vanish). The records pushed back into view are the ones already
//! yielded; [`Part`] remembers every id yielded from the part and drops them before they
//! reach the caller. A page whose `totalHits` is lower than one before it shows records
//! were removed (records may have moved back into pages already read): the pass stops and
//! the part is read again from its first page.
//!
//! A removal offset by an insertion between two page requests leaves `totalHits` as it was
//! and shows on no page: no paging by page number can see it.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::fetch::{fetch_page, Conversation, Ctx};
use super::merge::Msg;
use super::part::{Outcome, PartJob, Step};
use super::{Checkpoint, DetailsPage, QueryCheckpoint};
use crate::error::Error;
use crate::models::Interval;

/// What a worker knows of its part: the ids it must not yield again, and its counts.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) ctx: Arc<Ctx>,
    pub(super) interval: Interval,
    /// Ids yielded before the current pass (every one of them when `complete`).
    before: HashSet<String>,
    /// Ids yielded in the current pass.
    this_pass: HashSet<String>,
    complete: bool,
    first_total: Option<u64>,
    /// Conversations yielded from the part before this worker, when known.
    prior: Option<u64>,
    /// Conversations this worker yielded.
    yielded: u64,
}

impl Part {
    pub(super) fn new(ctx: Arc<Ctx>, job: PartJob) -> Self {
        Part {
            ctx,
            interval: job.interval,
            before: job.skip,
            this_pass: HashSet::new(),
            complete: job.complete,
            first_total: job.first_total,
            prior: job.yielded,
            yielded: 0,
        }
    }

    /// Whether every id yielded from the part is known.
    pub(super) fn complete(&self) -> bool {
        self.complete
    }

    /// Whether this pass reads pages whose records were yielded before.
    pub(super) fn rereading(&self) -> bool {
        !self.before.is_empty()
    }

    /// Records the total of the part's first page, unless an earlier pass did.
    pub(super) fn first_page(&mut self, total: Option<u64>) {
        if self.first_total.is_none() {
            self.first_total = total;
        }
    }

    /// The halves of a part over the limit, each skipping what this part skips.
    pub(super) fn halves(&self, a: Interval, b: Interval) -> (PartJob, PartJob) {
        // NOTE: the ids yielded are not known per half, so neither half counts late arrivals.
        let half = |interval| PartJob {
            interval,
            skip: self.before.clone(),
            complete: self.complete,
            yielded: self.before.is_empty().then_some(0),
            ..PartJob::new(interval)
        };
        (half(a), half(b))
    }

    /// Whether `items` repeat an id of this pass (among themselves, or one yielded before).
    pub(super) fn repeats(&self, items: &[Conversation]) -> bool {
        let mut in_page = HashSet::with_capacity(items.len());
        items.iter().any(|c| {
            !self.before.contains(&c.id)
                && (self.this_pass.contains(&c.id) || !in_page.insert(&c.id))
        })
    }

    /// The conversations of `items` not yielded yet, now counted as yielded.
    pub(super) fn take(&mut self, items: Vec<Conversation>) -> Vec<Box<RawValue>> {
        let mut out = Vec::with_capacity(items.len());
        for c in items {
            if self.before.contains(&c.id) || !self.this_pass.insert(c.id) {
                continue;
            }
            out.push(c.raw);
        }
        self.yielded += out.len() as u64;
        out
    }

    fn count(&self) -> Option<u64> {
        self.prior.map(|p| p + self.yielded)
    }

    fn checkpoint(&self, page_number: u32, total_hits: Option<u64>) -> QueryCheckpoint {
        QueryCheckpoint {
            query_interval: self.ctx.query.interval,
            part: self.interval,
            part_index: 0,
            page_number,
            page_size: self.ctx.page_size,
            total_hits,
            skip_ids: Vec::new(),
            first_total_hits: self.first_total,
            yielded: self.count(),
            in_order: false,
        }
    }

    /// A resume point that reads the part again from its first page, skipping every id
    /// yielded from it.
    fn restart_point(&self) -> Checkpoint {
        let mut ids: Vec<String> = self.before.iter().chain(&self.this_pass).cloned().collect();
        ids.sort_unstable();
        Checkpoint::Query(QueryCheckpoint {
            skip_ids: ids,
            ..self.checkpoint(0, None)
        })
    }

    /// The error that ends a part whose results moved: with a restart point when every id
    /// yielded from it is known.
    pub(super) fn changed(&self, was: u64, now: u64) -> Error {
        Error::ResultSetChanged {
            interval: self.interval,
            expected: was,
            actual: now,
            resume: self.complete.then(|| Box::new(self.restart_point())),
        }
    }

    /// Starts a pass from the first page: yields the restart point (so that a crash during
    /// the pass resumes it exactly) and counts this pass's ids as yielded before it. `false`
    /// when the receiver is gone.
    pub(super) async fn restart(&mut self, total: u64, tx: &mpsc::Sender<Msg>) -> bool {
        let page = DetailsPage {
            checkpoint: self.restart_point(),
            conversations: Vec::new(),
            total_hits: Some(total),
        };
        self.before.extend(self.this_pass.drain());
        tx.send(Msg::Page(page)).await.is_ok()
    }

    /// Sends page `number` with `conversations`; `false` when the receiver is gone.
    pub(super) async fn send(
        &self,
        number: u64,
        total: Option<u64>,
        conversations: Vec<Box<RawValue>>,
        tx: &mpsc::Sender<Msg>,
    ) -> bool {
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        let page = DetailsPage {
            checkpoint: Checkpoint::Query(self.checkpoint(number, total)),
            conversations,
            total_hits: total,
        };
        tx.send(Msg::Page(page)).await.is_ok()
    }
}

/// Pages `part` from page `from` to its end, each page requested once the one before it was
/// answered; `floor` is the largest total seen before (a lower one means records were
/// removed).
pub(super) async fn ordered(
    part: &mut Part,
    from: u64,
    mut floor: Option<u64>,
    tx: &mpsc::Sender<Msg>,
) -> Result<Step, Error> {
    let page_size = u64::from(part.ctx.page_size.max(1));
    let mut number = from;
    loop {
        let got = fetch_page(part.ctx.clone(), part.interval, number).await?;
        if let (Some(was), Some(now)) = (floor, got.total) {
            if now < was {
                return Ok(Step::Shrank { was, now });
            }
        }
        floor = floor.max(got.total);
        if number == 1 {
            part.first_page(got.total);
        }
        // NOTE: as the fast path's page stream: a page without items ends the part, and so
        // does the page that reaches the total it reports.
        let last =
            got.items.is_empty() || got.total.is_some_and(|t| number >= t.div_ceil(page_size));
        let conversations = part.take(got.items);
        if (!conversations.is_empty() || last)
            && !part.send(number, got.total, conversations, tx).await
        {
            return Ok(Step::Done(Outcome::Closed));
        }
        if last {
            return Ok(Step::Done(Outcome::Done));
        }
        number += 1;
    }
}
