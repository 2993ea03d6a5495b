//! `GET /api/v2/users`: an `entities` / `pageNumber` / `nextUri` list.

use http::StatusCode;

use super::page_latency;
use crate::server::reply::{self, counted_error, Resp};
use crate::state::State;
use crate::stats::Counters;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    page_size: Option<String>,
    page_number: Option<String>,
}

/// Default and largest user page sizes.
const DEFAULT_PAGE: u64 = 25;
const MAX_PAGE: u64 = 500;

fn uri(size: u64, number: u64) -> String {
    format!("/api/v2/users?pageSize={size}&pageNumber={number}")
}

pub(crate) async fn list(state: &State, query: &str, context_id: &str) -> Resp {
    let bad = |m: &str| counted_error(state, StatusCode::BAD_REQUEST, "bad.request", m, context_id);
    let Ok(p) = serde_urlencoded::from_str::<Params>(query) else {
        return bad("Invalid query string.");
    };
    let size = match p.page_size.as_deref().map(str::parse::<u64>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return bad("pageSize must be between 1 and 500."),
    };
    let number = match p.page_number.as_deref().map(str::parse::<u64>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return bad("pageNumber must be at least 1."),
    };
    page_latency(state).await;
    let total = state.config.users;
    let page_count = total.div_ceil(size);
    let from = ((number - 1).saturating_mul(size)).min(total);
    let to = (from + size).min(total);
    let entities: Vec<_> = (from..to).map(|u| state.data.user_json(u)).collect();
    let mut body = serde_json::json!({
        "entities": entities,
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "pageCount": page_count,
        "firstUri": uri(size, 1),
        "selfUri": uri(size, number),
        "lastUri": uri(size, page_count.max(1)),
    });
    if number < page_count {
        body["nextUri"] = uri(size, number + 1).into();
    }
    if number > 1 {
        body["previousUri"] = uri(size, (number - 1).min(page_count.max(1))).into();
    }
    Counters::bump(&state.stats.user_pages_served);
    reply::json(StatusCode::OK, serde_json::to_vec(&body).expect("json"))
}
