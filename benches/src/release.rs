//! Measurement 8: a sustained overload against keel-sim's per-second limit, with the requests
//! held by a 429 released all at once (the plain gate) or at a pace (keel's
//! `LocalRateState`).
//!
//! `callers` tasks send conversation-details pages back to back through a `Backoff` layer on
//! a hyper-util client for `duration`; the simulator allows `rate` requests a second (a token
//! bucket of `rate`, refilled continuously) and answers the rest 429 with `Retry-After` and
//! `inin-ratelimit-*`. The report counts the 429s the server sent and the pages the callers
//! got, as a share of what the limit allows.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_layers::backoff::{Backoff, BackoffPolicy, RateState};
use keel_sim::Simulator;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{BoxError, ServiceExt};

use crate::sim::{fetch_token, SimThread};

/// What to run.
#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    /// The simulator's limit, requests per second (and its bucket size).
    pub rate: u32,
    /// Concurrent callers.
    pub callers: usize,
    /// How long the callers keep sending.
    pub duration: Duration,
    /// `false`: the gate without release pacing (every held request goes when it opens).
    pub paced_release: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct ReleaseReport {
    /// The configuration.
    pub config: ReleaseConfig,
    /// Pages the callers got (200).
    pub ok: u64,
    /// 429s the callers got back after the layer's retries ran out.
    pub gave_up: u64,
    /// 429s the simulator sent.
    pub throttled: u64,
    /// 429s the simulator sent after the first 5 seconds.
    pub throttled_after_5s: u64,
}

impl ReleaseReport {
    /// Pages per second the callers got.
    pub fn achieved_rate(&self) -> f64 {
        self.ok as f64 / self.config.duration.as_secs_f64()
    }

    /// [`achieved_rate`](Self::achieved_rate) over the allowed rate.
    pub fn share(&self) -> f64 {
        self.achieved_rate() / f64::from(self.config.rate)
    }

    /// Server 429s per minute of the run.
    pub fn throttled_per_minute(&self) -> f64 {
        self.throttled as f64 * 60.0 / self.config.duration.as_secs_f64()
    }
}

/// The 429 gate as it was before release pacing: one deadline, and every waiter woken when it
/// passes.
#[derive(Debug, Default)]
struct InstantReleaseGate {
    until: Mutex<Option<Instant>>,
}

impl RateState for InstantReleaseGate {
    fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        match *self.until.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(until) if until > now => Err(until),
            _ => Ok(()),
        }
    }

    fn close_until(&self, until: Instant) {
        let mut deadline = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        *deadline = Some(deadline.map_or(until, |d| d.max(until)));
    }
}

/// Runs one overload: the simulator on its own thread, the callers on a one-worker runtime.
///
/// # Errors
///
/// When the simulator cannot start or a request fails for another reason than a 429.
pub fn run(config: &ReleaseConfig) -> Result<ReleaseReport, BoxError> {
    let sim = SimThread::start(
        Simulator::builder()
            .conversations(100)
            .rate_limit_per_sec(config.rate)
            .rate_limit_burst(config.rate),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (ok, gave_up, throttled_at_5s) = runtime.block_on(drive(&sim, config))?;
    let throttled = sim.handle().stats().rate_limited;
    Ok(ReleaseReport {
        config: config.clone(),
        ok,
        gave_up,
        throttled,
        throttled_after_5s: throttled - throttled_at_5s,
    })
}

async fn drive(sim: &SimThread, config: &ReleaseConfig) -> Result<(u64, u64, u64), BoxError> {
    let token = fetch_token(sim).await?;
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))?;
    authorization.set_sensitive(true);
    let uri: Uri = format!(
        "{}/api/v2/analytics/conversations/details/query",
        sim.handle().base_url()
    )
    .parse()?;
    let body = Bytes::from_static(
        br#"{"interval":"2000-01-01T00:00:00Z/2100-01-01T00:00:00Z","paging":{"pageSize":1,"pageNumber":1}}"#,
    );
    let mut policy = BackoffPolicy::new();
    if !config.paced_release {
        policy = policy.rate_state(InstantReleaseGate::default());
    }
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let svc = Backoff::new(client, policy);
    let end = Instant::now() + config.duration;
    let mut callers = JoinSet::new();
    for _ in 0..config.callers {
        let (svc, uri, authorization, body) = (
            svc.clone(),
            uri.clone(),
            authorization.clone(),
            body.clone(),
        );
        callers.spawn(async move {
            let (mut ok, mut gave_up) = (0u64, 0u64);
            while Instant::now() < end {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(uri.clone())
                    .header(AUTHORIZATION, authorization.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(Full::new(body.clone()))?;
                let res = svc.clone().oneshot(req).await?;
                let status = res.status();
                res.into_body().collect().await?;
                match status {
                    StatusCode::OK => ok += 1,
                    StatusCode::TOO_MANY_REQUESTS => gave_up += 1,
                    other => return Err(format!("unexpected status {other}").into()),
                }
            }
            Ok::<_, BoxError>((ok, gave_up))
        });
    }
    tokio::time::sleep(Duration::from_secs(5).min(config.duration)).await;
    let at_5s = sim.handle().stats().rate_limited;
    let (mut ok, mut gave_up) = (0, 0);
    while let Some(done) = callers.join_next().await {
        let (o, g) = done??;
        ok += o;
        gave_up += g;
    }
    Ok((ok, gave_up, at_5s))
}

/// The rows of measurement 8 as a Markdown table.
pub fn table(reports: &[ReleaseReport]) -> String {
    let mut out = String::from(
        "| release after a 429 | pages/s | share of the allowed rate | server 429s | 429s/min | 429s after the first 5 s | 429s returned to callers |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let name = if r.config.paced_release {
            "paced, lifts after quiet windows (`LocalRateState`)"
        } else {
            "all at once (plain gate)"
        };
        out.push_str(&format!(
            "| {name} | {:.1} | {:.1} % | {} | {:.1} | {} | {} |\n",
            r.achieved_rate(),
            100.0 * r.share(),
            r.throttled,
            r.throttled_per_minute(),
            r.throttled_after_5s,
            r.gave_up,
        ));
    }
    out
}
