//! Query mode: the synchronous details query, split into parts, pages prefetched.
//!
//! A [`Merger`] runs up to `max_parallel_parts` part workers, each a tokio task that pages its
//! part into a bounded channel, and reads the channels strictly in interval order. A worker
//! pages one part at a time ([`export_part`]): it halves a part whose first page reports more
//! hits than the policy allows, and restarts a part whose results change while it is paged,
//! skipping the ids it already yielded.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use http::Method;
use keel_paginate::{Fetched, PageStream};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{plan_parts, Checkpoint, DetailsPage, QueryCheckpoint, SplitPolicy, MAX_RESULTS};
use crate::client::Client;
use crate::error::Error;
use crate::models::{ConversationQuery, DetailsResponse, Interval, SortOrder};

/// The details query endpoint.
pub(crate) const DETAILS_PATH: &str = "/api/v2/analytics/conversations/details/query";

/// Restarts of one part after its results changed, before giving up.
const MAX_RESTARTS: u32 = 3;

/// A conversation with its id, as the API sent it.
#[derive(Debug)]
struct Conversation {
    id: String,
    raw: Box<RawValue>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(rename = "conversationId", borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// What every part worker needs.
#[derive(Debug)]
struct Ctx {
    client: Client,
    query: ConversationQuery,
    page_size: u32,
    prefetch: usize,
    /// Most hits a part may have: the policy's, and never more than the API can page with
    /// this page size (`pageNumber * pageSize <= 100,000`).
    max_results: u64,
}

/// One part to export.
#[derive(Debug)]
struct PartJob {
    interval: Interval,
    /// Pages of this part already yielded (0: none).
    after_page: u32,
    /// `totalHits` of the part as of `after_page`.
    total_hits: Option<u64>,
    /// Ids already yielded from this part, not to yield again.
    skip: HashSet<String>,
    /// Whether `skip` holds every id ever yielded from this part.
    complete: bool,
}

enum Msg {
    Page(DetailsPage),
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
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Merger {
    ctx: Arc<Ctx>,
    pending: VecDeque<PartJob>,
    running: VecDeque<Running>,
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
                        complete: cp.page_number == 0,
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
                    .map(|p| PartJob {
                        interval: p,
                        after_page: 0,
                        total_hits: None,
                        skip: HashSet::new(),
                        complete: true,
                    }),
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
            pending,
            running: VecDeque::new(),
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
            while self.running.len() < parallel {
                let Some(job) = self.pending.pop_front() else {
                    break;
                };
                let (tx, rx) = mpsc::channel(self.ctx.prefetch.max(1));
                let task = tokio::spawn(run_part(self.ctx.clone(), job, tx));
                self.running.push_back(Running { rx, task });
            }
            let Some(front) = self.running.front_mut() else {
                self.done = true;
                return None;
            };
            match front.rx.recv().await {
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
                    self.running.pop_front();
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

    fn fail(&mut self, e: Error) -> Error {
        self.done = true;
        self.running.clear();
        self.pending.clear();
        e
    }
}

async fn run_part(ctx: Arc<Ctx>, job: PartJob, tx: mpsc::Sender<Msg>) {
    let mut queue = VecDeque::from([job]);
    while let Some(job) = queue.pop_front() {
        match export_part(&ctx, job, &tx).await {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Split(a, b)) => {
                queue.push_front(*b);
                queue.push_front(*a);
            }
            Ok(Outcome::Closed) => return,
            Err(e) => {
                let _ = tx.send(Msg::Err(e)).await;
                return;
            }
        }
    }
    let _ = tx.send(Msg::Done).await;
}

enum Outcome {
    Done,
    Split(Box<PartJob>, Box<PartJob>),
    Closed,
}

/// A page as fetched: its number, total, conversations and whether it is the last.
struct Got {
    number: u64,
    total: Option<u64>,
    items: Vec<Conversation>,
    last: bool,
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

/// The policy's limit, lowered to a multiple of the page size so the last page of a part
/// that fits never asks past the API's 100,000 results.
fn effective_max_results(policy: SplitPolicy, page_size: u32) -> u64 {
    let page_size = u64::from(page_size.max(1));
    policy.max_results.min(MAX_RESULTS / page_size * page_size)
}

fn sorted(ids: &HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().cloned().collect();
    v.sort_unstable();
    v
}

type FetchFut = futures_util::future::BoxFuture<'static, Result<Fetched<Conversation>, Error>>;

fn page_stream(
    ctx: &Arc<Ctx>,
    interval: Interval,
) -> PageStream<keel_paginate::PageNumbers, impl FnMut(u64) -> FetchFut, FetchFut> {
    let c = ctx.clone();
    let fetch = move |page: u64| -> FetchFut { Box::pin(fetch_page(c.clone(), interval, page)) };
    PageStream::page_numbers(u64::from(ctx.page_size), fetch).prefetch(ctx.prefetch)
}

fn map_page(
    r: Result<keel_paginate::Page<Conversation, u64>, keel_paginate::PageError<Error>>,
) -> Result<Got, Error> {
    match r {
        Ok(p) => {
            let last = p.is_last();
            Ok(Got {
                number: p.position,
                total: p.total,
                items: p.items,
                last,
            })
        }
        Err(e) => Err(match e {
            keel_paginate::PageError::Fetch { source, .. } => source,
            other => Error::decode(DETAILS_PATH, other.to_string()),
        }),
    }
}

/// Fetches page `page` of `interval` and checks every conversation has an id.
async fn fetch_page(
    ctx: Arc<Ctx>,
    interval: Interval,
    page: u64,
) -> Result<Fetched<Conversation>, Error> {
    let page_number = u32::try_from(page).unwrap_or(u32::MAX);
    let reach = page.saturating_mul(u64::from(ctx.page_size));
    if reach > MAX_RESULTS {
        return Err(Error::TooManyResults {
            interval,
            total_hits: reach,
        });
    }
    let body = serde_json::to_vec(&ctx.query.for_page(interval, ctx.page_size, page_number))
        .map_err(|e| Error::config(format!("query does not serialize: {e}")))?;
    let bytes = ctx
        .client
        .send(Method::POST, DETAILS_PATH, Some(body))
        .await?;
    let resp: DetailsResponse = serde_json::from_slice(&bytes)
        .map_err(|e| Error::decode(DETAILS_PATH, format!("page {page} of {interval}: {e}")))?;
    let raws = resp.conversations.unwrap_or_default();
    let mut items = Vec::with_capacity(raws.len());
    for raw in raws {
        let id = serde_json::from_str::<IdOnly<'_>>(raw.get())
            .map_err(|e| {
                Error::decode(
                    DETAILS_PATH,
                    format!(
                        "page {page} of {interval}: conversation without a conversationId: {e}"
                    ),
                )
            })?
            .id
            .into_owned();
        items.push(Conversation { id, raw });
    }
    Ok(Fetched::new(items).with_total(resp.total_hits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_part_limit_keeps_the_last_page_within_the_api_limit() {
        let policy = SplitPolicy::default();
        assert_eq!(effective_max_results(policy, 100), 100_000);
        assert_eq!(effective_max_results(policy, 30), 99_990);
        assert_eq!(effective_max_results(policy, 7), 99_995);
        let small = SplitPolicy {
            max_results: 500,
            ..policy
        };
        assert_eq!(effective_max_results(small, 30), 500);
    }
}
