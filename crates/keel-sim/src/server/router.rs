//! Per-request pipeline: scripted and random faults, authentication, rate limit, routing.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::reply::{self, counted_error, Resp};
use crate::api::{details, jobs, users};
use crate::config::Fault;
use crate::data::hash::{h3, unique_tail, unit, uuid_string};
use crate::oauth;
use crate::ratelimit::Take;
use crate::state::State;
use crate::stats::Counters;
use crate::tokens::Verdict;

/// Returned to hyper to close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub(crate) struct Dropped;

/// Largest request body read.
const BODY_CAP: usize = 1 << 20;

const SALT_CORRELATION: u64 = 40;
const SALT_DROP: u64 = 41;
const SALT_503: u64 = 42;

pub(crate) async fn serve(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Dropped> {
    let _in_flight = state.stats.enter();
    let seq = state
        .response_seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = state.config.seed;
    let context_id = uuid_string(
        h3(seed, seq, SALT_CORRELATION),
        unique_tail(seed, SALT_CORRELATION, seq),
    );
    let result = dispatch(&state, req, &context_id).await;
    match result {
        Ok(mut resp) => {
            resp.headers_mut().insert(
                "inin-correlation-id",
                HeaderValue::from_str(&context_id).expect("ascii"),
            );
            Ok(resp)
        }
        Err(Dropped) => {
            Counters::bump(&state.stats.dropped);
            Err(Dropped)
        }
    }
}

/// Reads a request body up to [`BODY_CAP`].
pub(crate) async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, BODY_CAP)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

async fn dispatch(
    state: &State,
    req: Request<Incoming>,
    context_id: &str,
) -> Result<Resp, Dropped> {
    let path = req.uri().path();
    if path == "/oauth/token" {
        return Ok(oauth::token(state, req, context_id).await);
    }
    if path == "/__stats" && req.method() == Method::GET {
        let stats = serde_json::to_vec(&state.snapshot()).expect("json");
        return Ok(reply::json(StatusCode::OK, stats));
    }
    if path == "/__churn" && req.method() == Method::GET {
        let truth = serde_json::to_vec(&state.churn_truth()).expect("json");
        return Ok(reply::json(StatusCode::OK, truth));
    }
    if path == "/__clock" {
        return Ok(clock(state, req, context_id).await);
    }
    if path.starts_with("/api/") {
        return api(state, req, context_id).await;
    }
    Ok(counted_error(
        state,
        StatusCode::NOT_FOUND,
        "not.found",
        "The requested resource was not found.",
        context_id,
    ))
}

/// `{"advanceMs": N}` or `{"nowMs": T}` (both optional) for `POST /__clock`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockChange {
    advance_ms: Option<u64>,
    now_ms: Option<i64>,
}

/// `GET /__clock` → `{"nowMs": T}`; `POST /__clock` sets (`nowMs`) or moves (`advanceMs`) the
/// simulator clock, then answers the same.
async fn clock(state: &State, req: Request<Incoming>, context_id: &str) -> Resp {
    let bad = |m: &str| counted_error(state, StatusCode::BAD_REQUEST, "bad.request", m, context_id);
    match *req.method() {
        Method::GET => {}
        Method::POST => {
            let Some(body) = read_body(req.into_body()).await else {
                return bad("The request body could not be read.");
            };
            let Ok(change) = serde_json::from_slice::<ClockChange>(&body) else {
                return bad("Expected {\"advanceMs\": N} or {\"nowMs\": T}.");
            };
            if let Some(t) = change.now_ms {
                state.clock.set(t);
            }
            if let Some(d) = change.advance_ms {
                state.clock.advance(std::time::Duration::from_millis(d));
            }
        }
        _ => return not_found(state, context_id),
    }
    let body = serde_json::json!({ "nowMs": state.clock.now_ms() });
    reply::json(StatusCode::OK, serde_json::to_vec(&body).expect("json"))
}

/// What happens to a response after the request was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mangle {
    None,
    Truncate,
    Malform,
    Drop,
    Status(u16),
    Delay(std::time::Duration),
}

async fn api(state: &State, req: Request<Incoming>, context_id: &str) -> Result<Resp, Dropped> {
    let stats = &state.stats;
    let n = state
        .api_seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    Counters::bump(&stats.api_requests);
    let now = Instant::now();
    if state.before_retry_deadline(now) {
        Counters::bump(&stats.early_requests);
    }
    let auth = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let mut mangle = Mangle::None;
    if let Some(fault) = state.config.faults.get(&n) {
        match *fault {
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Drop => return Err(Dropped),
            Fault::TooManyRequests { retry_after_secs } => {
                return Ok(reply::too_many_requests(
                    state,
                    retry_after_secs,
                    context_id,
                ))
            }
            Fault::Unavailable => return Ok(unavailable(state, context_id)),
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(counted_error(
                    state,
                    status,
                    "internal.server.error",
                    "Injected fault.",
                    context_id,
                ));
            }
            Fault::RevokeToken => {
                if let Some((client, first)) = state.tokens.revoke_presented(auth) {
                    let counters = &state.clients[client].counters;
                    Counters::bump(&counters.unauthorized);
                    if first {
                        Counters::bump(&counters.revoked_tokens);
                    }
                }
                Counters::bump(&stats.revoked_token);
                return Ok(unauthorized(state, context_id));
            }
            Fault::TruncatedBody => mangle = Mangle::Truncate,
            Fault::MalformedJson => mangle = Mangle::Malform,
            Fault::DropAfter => mangle = Mangle::Drop,
            Fault::StatusAfter(code) => mangle = Mangle::Status(code),
            Fault::DelayAfter(d) => mangle = Mangle::Delay(d),
        }
    }
    let c = &state.config;
    let seed = c.seed;
    if c.drop_probability > 0.0 && unit(h3(seed, n, SALT_DROP)) < c.drop_probability {
        return Err(Dropped);
    }
    if c.unavailable_probability > 0.0 && unit(h3(seed, n, SALT_503)) < c.unavailable_probability {
        return Ok(unavailable(state, context_id));
    }
    let checked = state.tokens.check_client(auth, Instant::now());
    let client = checked.client.map(|c| &state.clients[c]);
    let refused = match checked.verdict {
        Verdict::Valid => None,
        Verdict::Missing => Some(&stats.no_token),
        Verdict::Unknown => Some(&stats.unknown_token),
        Verdict::Expired => Some(&stats.expired_token),
        Verdict::Revoked => Some(&stats.revoked_token),
    };
    if let Some(counter) = refused {
        Counters::bump(counter);
        if let Some(client) = client {
            Counters::bump(&client.counters.unauthorized);
            if checked.first_revocation {
                Counters::bump(&client.counters.revoked_tokens);
            }
        }
        return Ok(unauthorized(state, context_id));
    }
    let Some(client) = client else {
        // NOTE: unreachable (every issued token names its client); refuse rather than panic.
        return Ok(unauthorized(state, context_id));
    };
    Counters::bump(&client.counters.api_requests);
    let mut rate = None;
    if let Some(limiter) = &client.limiter {
        match limiter.take(Instant::now()) {
            Take::Allowed { used, reset_secs } => rate = Some((used, limiter.burst, reset_secs)),
            Take::Limited { wait } => {
                Counters::bump(&client.counters.rate_limited);
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Ok(reply::too_many_requests(state, secs.max(1), context_id));
            }
        }
    }
    let mut resp = route(state, req, context_id).await;
    if let Some((used, allowed, reset)) = rate {
        reply::rate_headers(resp.headers_mut(), used, allowed, reset);
    }
    Ok(match mangle {
        Mangle::None => resp,
        Mangle::Truncate => {
            Counters::bump(&stats.truncated);
            reply::truncate(resp)
        }
        Mangle::Malform => {
            Counters::bump(&stats.malformed);
            reply::malform(resp)
        }
        Mangle::Drop => return Err(Dropped),
        Mangle::Status(code) => counted_error(
            state,
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "internal.server.error",
            "Injected fault.",
            context_id,
        ),
        Mangle::Delay(d) => {
            tokio::time::sleep(d).await;
            resp
        }
    })
}

fn unavailable(state: &State, context_id: &str) -> Resp {
    reply::unavailable(state, "Service temporarily unavailable.", context_id)
}

fn unauthorized(state: &State, context_id: &str) -> Resp {
    counted_error(
        state,
        StatusCode::UNAUTHORIZED,
        "bad.credentials",
        "Invalid login credentials.",
        context_id,
    )
}

const DETAILS: &str = "/api/v2/analytics/conversations/details";

async fn route(state: &State, req: Request<Incoming>, context_id: &str) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path == "/api/v2/users" && method == Method::GET {
        return users::list(state, &query, context_id).await;
    }
    let Some(rest) = path.strip_prefix(DETAILS) else {
        return not_found(state, context_id);
    };
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::POST, ["query"]) | (&Method::POST, ["jobs"]) => {
            let Some(body) = read_body(req.into_body()).await else {
                return counted_error(
                    state,
                    StatusCode::BAD_REQUEST,
                    "bad.request",
                    "The request body could not be read.",
                    context_id,
                );
            };
            if segments[0] == "query" {
                details::query(state, &body, context_id).await
            } else {
                jobs::create(state, &body, context_id)
            }
        }
        (&Method::GET, ["jobs", id]) => jobs::status(state, id, context_id),
        (&Method::DELETE, ["jobs", id]) => jobs::delete(state, id, context_id),
        (&Method::GET, ["jobs", id, "results"]) => {
            jobs::results(state, id, &query, context_id).await
        }
        _ => not_found(state, context_id),
    }
}

pub(crate) fn not_found(state: &State, context_id: &str) -> Resp {
    counted_error(
        state,
        StatusCode::NOT_FOUND,
        "not.found",
        "The requested resource was not found.",
        context_id,
    )
}
