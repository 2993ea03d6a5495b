//! Async conversation-details jobs: create, poll (QUEUED → FULFILLED/FAILED), page results by
//! an opaque cursor, delete; jobs are forgotten after their time to live (404).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use tokio::time::Instant;

use super::{page_latency, push_conversations};
use crate::data::hash::{h3, unique_tail, uuid_string};
use crate::data::iso;
use crate::query::DetailsQuery;
use crate::server::not_found;
use crate::server::reply::{self, counted_error, Resp};
use crate::state::{Snapshot, State};
use crate::stats::Counters;

const SALT_JOB: u64 = 50;

/// Default and largest `pageSize` of job results.
pub(crate) const DEFAULT_RESULTS_PAGE: u64 = 100;
pub(crate) const MAX_RESULTS_PAGE: u64 = 1_000;

#[derive(Debug, Clone)]
struct Job {
    number: u64,
    created: Instant,
    created_unix_ms: i64,
    /// Taken at submission: the result set and the moment its records are rendered as of.
    snapshot: Snapshot,
    descending: bool,
    fails: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    Queued,
    Fulfilled,
    Failed,
}

/// All jobs created so far.
#[derive(Debug, Default)]
pub(crate) struct JobStore {
    seq: AtomicU64,
    map: Mutex<HashMap<String, Job>>,
}

fn bad_request(state: &State, message: &str, context_id: &str) -> Resp {
    counted_error(
        state,
        StatusCode::BAD_REQUEST,
        "bad.request",
        message,
        context_id,
    )
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn create(state: &State, body: &[u8], context_id: &str) -> Resp {
    let q = match DetailsQuery::parse(body, false) {
        Ok(q) => q,
        Err(e) => return bad_request(state, &e.to_string(), context_id),
    };
    let number = state.jobs.seq.fetch_add(1, Relaxed) + 1;
    let seed = state.config.seed;
    let id = uuid_string(
        h3(seed, number, SALT_JOB),
        unique_tail(seed, SALT_JOB, number),
    );
    let job = Job {
        number,
        created: Instant::now(),
        created_unix_ms: unix_ms_now(),
        snapshot: state.select(&q.selector),
        descending: q.descending,
        fails: state.config.failing_jobs.contains(&number),
    };
    state
        .jobs
        .map
        .lock()
        .expect("jobs poisoned")
        .insert(id.clone(), job);
    Counters::bump(&state.stats.jobs_created);
    let body = serde_json::json!({ "jobId": id });
    reply::json(
        StatusCode::ACCEPTED,
        serde_json::to_vec(&body).expect("json"),
    )
}

/// The job, unless unknown or expired (expired jobs are removed).
fn find(state: &State, id: &str) -> Option<(Job, JobState)> {
    let mut map = state.jobs.map.lock().expect("jobs poisoned");
    let job = map.get(id)?.clone();
    let age = Instant::now().saturating_duration_since(job.created);
    if age >= state.config.job_ttl {
        map.remove(id);
        return None;
    }
    let js = if age < state.config.job_delay {
        JobState::Queued
    } else if job.fails {
        JobState::Failed
    } else {
        JobState::Fulfilled
    };
    Some((job, js))
}

pub(crate) fn status(state: &State, id: &str, context_id: &str) -> Resp {
    let Some((job, js)) = find(state, id) else {
        return not_found(state, context_id);
    };
    let c = &state.config;
    let mut body = serde_json::json!({
        "state": match js {
            JobState::Queued => "QUEUED",
            JobState::Fulfilled => "FULFILLED",
            JobState::Failed => "FAILED",
        },
        "submissionDate": iso::format(job.created_unix_ms),
        "expirationDate": iso::format(job.created_unix_ms + c.job_ttl.as_millis() as i64),
    });
    if js != JobState::Queued {
        body["completionDate"] =
            iso::format(job.created_unix_ms + c.job_delay.as_millis() as i64).into();
    }
    if js == JobState::Failed {
        body["errorMessage"] = "The job failed (injected by keel-sim).".into();
    }
    reply::json(StatusCode::OK, serde_json::to_vec(&body).expect("json"))
}

pub(crate) fn delete(state: &State, id: &str, context_id: &str) -> Resp {
    match state.jobs.map.lock().expect("jobs poisoned").remove(id) {
        Some(_) => {
            let mut r = reply::json(StatusCode::NO_CONTENT, bytes::Bytes::new());
            r.headers_mut().remove(http::header::CONTENT_TYPE);
            r
        }
        None => not_found(state, context_id),
    }
}

fn encode_cursor(job: u64, offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("keel-sim:{job}:{offset}"))
}

fn decode_cursor(cursor: &str, job: u64) -> Option<u64> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let mut parts = raw.strip_prefix("keel-sim:")?.split(':');
    let (j, offset) = (
        parts.next()?.parse::<u64>().ok()?,
        parts.next()?.parse().ok()?,
    );
    (j == job && parts.next().is_none()).then_some(offset)
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultsParams {
    cursor: Option<String>,
    page_size: Option<String>,
}

pub(crate) async fn results(state: &State, id: &str, query: &str, context_id: &str) -> Resp {
    let Ok(params) = serde_urlencoded::from_str::<ResultsParams>(query) else {
        return bad_request(state, "Invalid query string.", context_id);
    };
    let page_size = match params.page_size.as_deref().map(str::parse::<u64>) {
        None => DEFAULT_RESULTS_PAGE,
        Some(Ok(n)) if (1..=MAX_RESULTS_PAGE).contains(&n) => n,
        Some(_) => return bad_request(state, "pageSize must be between 1 and 1000.", context_id),
    };
    let Some((job, js)) = find(state, id) else {
        return not_found(state, context_id);
    };
    if js != JobState::Fulfilled {
        return bad_request(
            state,
            "The job is not FULFILLED; results are not available.",
            context_id,
        );
    }
    let from = match params.cursor.as_deref() {
        None => 0,
        Some(c) => match decode_cursor(c, job.number) {
            Some(offset) => offset,
            None => return bad_request(state, "Invalid cursor.", context_id),
        },
    };
    page_latency(state).await;
    let total = job.snapshot.selection.len();
    let from = from.min(total);
    let to = (from + page_size).min(total);
    let mut out = Vec::with_capacity(64 + (to - from) as usize * 3_000);
    push_conversations(state, &mut out, &job.snapshot, job.descending, from, to);
    if to < total {
        if to > from {
            out.push(b',');
        }
        out.extend_from_slice(b"\"cursor\":\"");
        out.extend_from_slice(encode_cursor(job.number, to).as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
    Counters::bump(&state.stats.job_pages_served);
    reply::json(StatusCode::OK, out)
}
