//! Building responses: JSON bodies, Genesys error bodies, 429s.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};

use super::body::SimBody;
use crate::config::RetryAfterFormat;
use crate::state::State;
use crate::stats::Counters;

pub(crate) type Resp = Response<SimBody>;

pub(crate) fn json(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(SimBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A Genesys error body: `{message, code, status, messageParams, contextId, details, errors}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str, context_id: &str) -> Resp {
    let body = serde_json::json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "messageParams": {},
        "contextId": context_id,
        "details": [],
        "errors": [],
    });
    json(status, serde_json::to_vec(&body).expect("json"))
}

/// Counts and builds a typical error response.
pub(crate) fn counted_error(
    state: &State,
    status: StatusCode,
    code: &str,
    message: &str,
    context_id: &str,
) -> Resp {
    let s = &state.stats;
    let counter = match status {
        StatusCode::UNAUTHORIZED => &s.unauthorized,
        StatusCode::SERVICE_UNAVAILABLE => &s.unavailable,
        StatusCode::BAD_REQUEST => &s.bad_requests,
        StatusCode::NOT_FOUND => &s.not_found,
        StatusCode::TOO_MANY_REQUESTS => &s.rate_limited,
        _ => &s.other_errors,
    };
    Counters::bump(counter);
    error(status, code, message, context_id)
}

/// Longest `Retry-After` served (keeps HTTP-dates within what `httpdate` formats).
const MAX_RETRY_AFTER_SECS: u64 = 10 * 365 * 86_400;

/// Sets `Retry-After: secs` (in the configured format) and records the deadline.
pub(crate) fn set_retry_after(state: &State, headers: &mut http::HeaderMap, secs: u64) {
    let secs = secs.min(MAX_RETRY_AFTER_SECS);
    state.set_retry_deadline(tokio::time::Instant::now(), Duration::from_secs(secs));
    let value = match state.config.retry_after_format {
        RetryAfterFormat::Seconds => secs.to_string(),
        RetryAfterFormat::HttpDate => {
            let since_epoch = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                + Duration::from_secs(secs);
            let whole = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(whole))
        }
    };
    headers.insert(RETRY_AFTER, HeaderValue::from_str(&value).expect("ascii"));
}

/// A 429 telling the client to wait `secs` seconds, in the configured format; records the
/// deadline.
pub(crate) fn too_many_requests(state: &State, secs: u64, context_id: &str) -> Resp {
    let mut r = counted_error(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "too.many.requests",
        &format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"),
        context_id,
    );
    let h = r.headers_mut();
    set_retry_after(state, h, secs);
    // NOTE: without a configured limiter, advertise Genesys's usual 300 requests per window.
    let allowed = state.rate_burst.unwrap_or(300);
    rate_headers(h, allowed, allowed, secs.min(MAX_RETRY_AFTER_SECS));
    r
}

/// A 503, with `Retry-After` when [`crate::SimConfig::unavailable_retry_after_secs`] is set.
pub(crate) fn unavailable(state: &State, message: &str, context_id: &str) -> Resp {
    let mut r = counted_error(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "service.unavailable",
        message,
        context_id,
    );
    if let Some(secs) = state.config.unavailable_retry_after_secs {
        set_retry_after(state, r.headers_mut(), secs);
    }
    r
}

/// `inin-ratelimit-count`, `inin-ratelimit-allowed`, `inin-ratelimit-reset`.
pub(crate) fn rate_headers(h: &mut http::HeaderMap, count: u64, allowed: u64, reset_secs: u64) {
    h.insert("inin-ratelimit-count", HeaderValue::from(count));
    h.insert("inin-ratelimit-allowed", HeaderValue::from(allowed));
    h.insert("inin-ratelimit-reset", HeaderValue::from(reset_secs));
}

/// Turns a response into one whose body is cut in half after a full `Content-Length`.
pub(crate) fn truncate(resp: Resp) -> Resp {
    let (mut parts, body) = resp.into_parts();
    let bytes = match body {
        SimBody::Full(Some(b)) => b,
        other => return Response::from_parts(parts, other),
    };
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len() as u64));
    let half = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, SimBody::Cut(Some(half)))
}

/// Turns a response into a 200 whose (complete) body is not valid JSON.
pub(crate) fn malform(resp: Resp) -> Resp {
    let (mut parts, body) = resp.into_parts();
    let bytes = match body {
        SimBody::Full(Some(b)) => b,
        _ => Bytes::from_static(b"{\"conversations\":[{"),
    };
    let mut broken = bytes.slice(..bytes.len() / 2).to_vec();
    broken.extend_from_slice(b"\x00<html>");
    parts.status = StatusCode::OK;
    Response::from_parts(parts, SimBody::full(broken))
}
