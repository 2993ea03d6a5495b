//! Fetching one page of the details query: the request body, the answer, the ids.

use std::sync::Arc;

use http::Method;
use keel_paginate::{Fetched, PageStream};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{SplitPolicy, MAX_RESULTS};
use crate::client::{Client, Spawned};
use crate::error::Error;
use crate::models::{ConversationQuery, DetailsResponse, Interval};

/// The details query endpoint.
pub(crate) const DETAILS_PATH: &str = "/api/v2/analytics/conversations/details/query";

/// A conversation with its id, as the API sent it.
#[derive(Debug)]
pub(super) struct Conversation {
    pub(super) id: String,
    pub(super) raw: Box<RawValue>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(rename = "conversationId", borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// What every part worker needs.
#[derive(Debug)]
pub(super) struct Ctx {
    pub(super) client: Client,
    pub(super) query: ConversationQuery,
    pub(super) page_size: u32,
    pub(super) prefetch: usize,
    /// Most hits a part may have: the policy's, and never more than the API can page with
    /// this page size (`pageNumber * pageSize <= 100,000`).
    pub(super) max_results: u64,
}

/// The policy's limit, lowered to a multiple of the page size so the last page of a part
/// that fits never asks past the API's 100,000 results.
pub(super) fn effective_max_results(policy: SplitPolicy, page_size: u32) -> u64 {
    let page_size = u64::from(page_size.max(1));
    policy.max_results.min(MAX_RESULTS / page_size * page_size)
}

/// The error of a fetch task of `endpoint` that panicked or was cancelled.
pub(crate) fn task_failed(endpoint: &'static str) -> impl Fn(tokio::task::JoinError) -> Error {
    move |e| Error::Transport {
        endpoint: endpoint.to_owned(),
        source: Box::new(e),
    }
}

/// A page as fetched: its number, total, conversations and whether it is the last.
pub(super) struct Got {
    pub(super) number: u64,
    pub(super) total: Option<u64>,
    pub(super) items: Vec<Conversation>,
    pub(super) last: bool,
}

pub(super) type FetchFut =
    futures_util::future::BoxFuture<'static, Result<Fetched<Conversation>, Error>>;

pub(super) fn page_stream(
    ctx: &Arc<Ctx>,
    interval: Interval,
) -> PageStream<keel_paginate::PageNumbers, impl FnMut(u64) -> FetchFut, FetchFut> {
    let c = ctx.clone();
    let fetch = move |page: u64| -> FetchFut {
        let fetch = Spawned::new(fetch_page(c.clone(), interval, page));
        Box::pin(async move { fetch.await.map_err(task_failed(DETAILS_PATH))? })
    };
    PageStream::page_numbers(u64::from(ctx.page_size), fetch).prefetch(ctx.prefetch)
}

pub(super) fn map_page(
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
pub(super) async fn fetch_page(
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
    ctx.client
        .fetch_decoded(Method::POST, DETAILS_PATH, Some(body), |bytes| {
            decode_page(bytes, interval, page)
        })
        .await
}

/// Decodes a details page and checks every conversation has an id.
fn decode_page(
    bytes: &[u8],
    interval: Interval,
    page: u64,
) -> Result<Fetched<Conversation>, Error> {
    let resp: DetailsResponse = serde_json::from_slice(bytes)
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
        let policy = SplitPolicy {
            max_results: MAX_RESULTS,
            ..SplitPolicy::default()
        };
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
