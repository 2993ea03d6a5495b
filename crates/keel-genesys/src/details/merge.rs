//! Query mode: the synchronous details query, split into parts, pages prefetched.
//!
//! A [`Merger`] keeps the parts in interval order as slots. It runs a worker (a tokio task,
//! [`run_part`]) for the front part and for up to `max_parallel_parts` parts in all, each
//! paging its part into a bounded channel, and reads the channels strictly in order. A part
//! whose first page reports more hits than the limit comes back as two halves, which take its
//! slot (and may run in parallel); a part whose results change while it is paged is read on
//! in order by its worker, skipping the ids it already yielded (see [`super::part`]).

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream};
use tokio::sync::mpsc;

use super::fetch::{effective_max_results, Ctx, DETAILS_PATH};
use super::part::{run_part, PartJob};
use super::{plan_parts, Checkpoint, DetailsPage};
use crate::client::Client;
use crate::error::Error;
use crate::models::{ConversationQuery, Interval, SortOrder};

/// What a part worker sends, in order: pages, then one of the others.
pub(super) enum Msg {
    Page(DetailsPage),
    /// The part was over the limit before any page of it was sent: export these halves.
    Split(Box<PartJob>, Box<PartJob>),
    Err(Error),
    Done,
}

pub(crate) fn stream(
    client: Client,
    query: ConversationQuery,
    resume: Option<Checkpoint>,
) -> BoxStream<'static, Result<DetailsPage, Error>> {
    match Merger::new(client, query, resume) {
        Ok(merger) => Box::pin(stream::unfold(merger, |mut m| async move {
            m.next().await.map(|item| (item, m))
        })),
        Err(e) => Box::pin(stream::once(async { Err(e) })),
    }
}

struct Running {
    rx: mpsc::Receiver<Msg>,
    task: tokio::task::JoinHandle<()>,
    /// A message taken early, to find a split of a part that is not the front one yet.
    peeked: Option<Msg>,
}

/// A part, in interval order: not started yet, or being exported by a worker.
enum Slot {
    Waiting(PartJob),
    Started(Running),
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Merger {
    ctx: Arc<Ctx>,
    slots: VecDeque<Slot>,
    max_parallel: usize,
    /// 429 waits seen when the last part was started.
    throttled: u64,
    current: Option<Interval>,
    part_index: u64,
    done: bool,
}

impl Merger {
    fn new(
        client: Client,
        mut query: ConversationQuery,
        resume: Option<Checkpoint>,
    ) -> Result<Self, Error> {
        query.validate()?;
        if query.order == Some(SortOrder::Desc) {
            return Err(Error::config(
                "conversation details are exported oldest first: order must be asc",
            ));
        }
        if query
            .order_by
            .as_deref()
            .is_some_and(|o| o != "conversationStart")
        {
            return Err(Error::config(
                "conversation details are exported by conversationStart: orderBy must be conversationStart",
            ));
        }
        query.order = Some(SortOrder::Asc);
        query.order_by = Some("conversationStart".to_owned());
        let settings = &client.inner.settings;
        let page_size = query.paging.map_or(settings.page_size, |p| p.page_size);
        let whole = query.interval;
        let mut pending = VecDeque::new();
        let mut rest = Some(whole);
        let mut part_index = 0;
        match resume {
            None => {}
            Some(Checkpoint::Job(_)) => {
                return Err(Error::config(
                    "checkpoint is of a jobs-mode export, not of a details query",
                ))
            }
            Some(Checkpoint::Query(cp)) => {
                if cp.query_interval != whole {
                    return Err(Error::config(format!(
                        "checkpoint is of interval {}, not {whole}",
                        cp.query_interval
                    )));
                }
                if cp.page_size != page_size {
                    return Err(Error::config(format!(
                        "checkpoint was written with page size {}, not {page_size}",
                        cp.page_size
                    )));
                }
                if !whole.covers(&cp.part) {
                    return Err(Error::config(format!(
                        "checkpoint part {} is outside the interval {whole}",
                        cp.part
                    )));
                }
                part_index = cp.part_index;
                let reached = u64::from(cp.page_number).saturating_mul(u64::from(page_size));
                let finished = cp.page_number > 0 && cp.total_hits.is_some_and(|t| reached >= t);
                // NOTE: a part whose last page was checkpointed is done; it is not asked again.
                if finished {
                    part_index = part_index.saturating_add(1);
                } else {
                    pending.push_back(PartJob {
                        interval: cp.part,
                        after_page: cp.page_number,
                        total_hits: cp.total_hits,
                        complete: cp.knows_every_id(),
                        in_order: cp.in_order,
                        first_total: cp.first_total_hits,
                        yielded: cp.yielded,
                        skip: cp.skip_ids.into_iter().collect(),
                    });
                }
                rest = whole.with_start(cp.part.end());
            }
        }
        if let Some(rest) = rest {
            pending.extend(
                plan_parts(rest, settings.split.max_part)
                    .into_iter()
                    .map(PartJob::new),
            );
        }
        let ctx = Arc::new(Ctx {
            page_size,
            prefetch: settings.prefetch,
            max_results: effective_max_results(settings.split, page_size),
            query,
            client: client.clone(),
        });
        Ok(Self {
            max_parallel: client.inner.settings.max_parallel_parts,
            ctx,
            slots: pending.into_iter().map(Slot::Waiting).collect(),
            throttled: client.stats().waits_429,
            current: None,
            part_index,
            done: false,
        })
    }
}

impl Merger {
    async fn next(&mut self) -> Option<Result<DetailsPage, Error>> {
        if self.done {
            return None;
        }
        loop {
            // NOTE: parts run in parallel only while the API is not throttling: after a new
            // 429, no further part starts until the running ones are done.
            let throttled = self.ctx.client.stats().waits_429;
            let parallel = if throttled > self.throttled {
                1
            } else {
                self.max_parallel
            };
            self.throttled = throttled;
            self.fill(parallel);
            let Some(Slot::Started(front)) = self.slots.front_mut() else {
                self.done = true;
                return None;
            };
            let msg = match front.peeked.take() {
                Some(msg) => Some(msg),
                None => front.rx.recv().await,
            };
            match msg {
                Some(Msg::Page(mut page)) => {
                    if let Checkpoint::Query(cp) = &mut page.checkpoint {
                        if self.current.is_some_and(|c| c != cp.part) {
                            self.part_index += 1;
                        }
                        self.current = Some(cp.part);
                        cp.part_index = self.part_index;
                    }
                    return Some(Ok(page));
                }
                Some(Msg::Done) => {
                    self.slots.pop_front();
                }
                Some(Msg::Split(a, b)) => {
                    self.slots.pop_front();
                    self.slots.push_front(Slot::Waiting(*b));
                    self.slots.push_front(Slot::Waiting(*a));
                }
                Some(Msg::Err(e)) => return Some(Err(self.fail(e))),
                None => {
                    let e = Error::Transport {
                        endpoint: DETAILS_PATH.to_owned(),
                        source: "an export task ended unexpectedly".into(),
                    };
                    return Some(Err(self.fail(e)));
                }
            }
        }
    }

    /// Replaces parts that turned out to be over the limit by their halves, then starts
    /// workers in interval order: always the front part, others while fewer than `parallel`
    /// are started (a started part holds at most `prefetch` pages until it is read).
    fn fill(&mut self, parallel: usize) {
        let mut i = 0;
        while i < self.slots.len() {
            if let Slot::Started(r) = &mut self.slots[i] {
                if r.peeked.is_none() {
                    r.peeked = r.rx.try_recv().ok();
                }
                if let Some(Msg::Split(..)) = r.peeked {
                    if let Some(Msg::Split(a, b)) = r.peeked.take() {
                        self.slots[i] = Slot::Waiting(*b);
                        self.slots.insert(i, Slot::Waiting(*a));
                        continue;
                    }
                }
            }
            i += 1;
        }
        let mut started = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Started(_)))
            .count();
        for i in 0..self.slots.len() {
            if i > 0 && started >= parallel {
                break;
            }
            if !matches!(self.slots[i], Slot::Waiting(_)) {
                continue;
            }
            if let Some(Slot::Waiting(job)) = self.slots.remove(i) {
                let (tx, rx) = mpsc::channel(self.ctx.prefetch.max(1));
                let task = tokio::spawn(run_part(self.ctx.clone(), job, tx));
                let running = Running {
                    rx,
                    task,
                    peeked: None,
                };
                self.slots.insert(i, Slot::Started(running));
                started += 1;
            }
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.done = true;
        self.slots.clear();
        e
    }
}
