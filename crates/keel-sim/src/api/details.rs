//! `POST /api/v2/analytics/conversations/details/query`: page-number paging over the data.

use http::StatusCode;

use super::{page_latency, push_conversations};
use crate::query::DetailsQuery;
use crate::server::reply::{self, counted_error, Resp};
use crate::state::State;
use crate::stats::Counters;

pub(crate) async fn query(state: &State, body: &[u8], context_id: &str) -> Resp {
    let q = match DetailsQuery::parse(body, true) {
        Ok(q) => q,
        Err(e) => {
            return counted_error(
                state,
                StatusCode::BAD_REQUEST,
                "bad.request",
                &e.to_string(),
                context_id,
            )
        }
    };
    page_latency(state).await;
    let snapshot = state.select(&q.selector);
    let total = snapshot.selection.len();
    let from = ((q.page_number - 1) * q.page_size).min(total);
    let to = (from + q.page_size).min(total);
    let mut out = Vec::with_capacity(64 + (to - from) as usize * 3_000);
    push_conversations(state, &mut out, &snapshot, q.descending, from, to);
    if to > from {
        out.push(b',');
    }
    out.extend_from_slice(b"\"totalHits\":");
    out.extend_from_slice(total.to_string().as_bytes());
    out.push(b'}');
    Counters::bump(&state.stats.pages_served);
    state.after_page(&q.selector, &snapshot);
    reply::json(StatusCode::OK, out)
}
