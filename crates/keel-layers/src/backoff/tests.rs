//! Behaviour of the whole layer against scripted mock services, in paused virtual time.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tokio::time::{sleep, timeout, Instant};
use tower::{BoxError, Layer, Service, ServiceExt};

use super::*;
use crate::replay::TryCloneBody;

type Reply = Result<Response<Full<Bytes>>, BoxError>;

/// A scripted server: `script(n, t)` answers the `n`th request (from 0) arriving `t` after
/// the mock was made, after `latency`. Arrival times are recorded.
#[derive(Clone)]
struct Mock {
    arrivals: Arc<Mutex<Vec<Duration>>>,
    script: Arc<dyn Fn(usize, Duration) -> Reply + Send + Sync>,
    latency: Duration,
    start: Instant,
}

impl Mock {
    fn new(script: impl Fn(usize, Duration) -> Reply + Send + Sync + 'static) -> Self {
        Mock {
            arrivals: Arc::default(),
            script: Arc::new(script),
            latency: Duration::ZERO,
            start: Instant::now(),
        }
    }

    fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    fn arrivals(&self) -> Vec<Duration> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl<B: Send + 'static> Service<Request<B>> for Mock {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Reply>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let at = self.start.elapsed();
        let n = {
            let mut arrivals = self.arrivals.lock().unwrap();
            arrivals.push(at);
            arrivals.len() - 1
        };
        let reply = (self.script)(n, at);
        let latency = self.latency;
        Box::pin(async move {
            sleep(latency).await;
            reply
        })
    }
}

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    Ok(builder.body(Full::new(Bytes::from(body.to_owned())))?)
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://api.test/x")
        .body(Full::default())
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn body_text(response: Response<Full<Bytes>>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_honoured_to_the_millisecond() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "3")], "slow down"),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let svc = BackoffLayer::new(policy).layer(mock.clone());
    let response = svc.oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [ms(0), ms(3000)]);
    assert_eq!(stats.throttled_waits(), 1);
    assert_eq!(stats.total_wait(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured_to_the_millisecond() {
    let date = UNIX_EPOCH + secs(1_700_000_000);
    let mock = Mock::new(move |n, _| match n {
        0 => reply(
            503,
            &[
                ("date", &httpdate::fmt_http_date(date)),
                ("retry-after", &httpdate::fmt_http_date(date + secs(7))),
            ],
            "",
        ),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let svc = Backoff::new(mock.clone(), policy);
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [ms(0), ms(7000)]);
    assert_eq!(stats.unavailable_retries(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_without_date_header_uses_the_local_clock() {
    // Whole seconds ahead of the wall clock; the wait is within a second below that.
    let mock = Mock::new(|n, _| match n {
        0 => {
            let at = httpdate::fmt_http_date(SystemTime::now() + secs(10));
            reply(429, &[("retry-after", &at)], "")
        }
        _ => reply(200, &[], "ok"),
    });
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
    let wait = mock.arrivals()[1];
    assert!(wait > secs(8) && wait <= secs(10), "{wait:?}");
}

#[tokio::test(start_paused = true)]
async fn genesys_ratelimit_reset_is_honoured() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(
            429,
            &[
                ("inin-ratelimit-count", "301"),
                ("inin-ratelimit-allowed", "300"),
                ("inin-ratelimit-reset", "2"),
            ],
            "",
        ),
        _ => reply(200, &[], "ok"),
    });
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [ms(0), ms(2000)]);
}

#[tokio::test(start_paused = true)]
async fn unparseable_or_negative_hints_fall_back_to_the_jittered_schedule() {
    for bad in ["soon", "-30"] {
        let mock = Mock::new(move |n, _| match n {
            0 => reply(429, &[("retry-after", bad)], ""),
            _ => reply(200, &[], "ok"),
        });
        let policy = BackoffPolicy::new().exponential(ms(500), secs(10));
        let svc = Backoff::new(mock.clone(), policy);
        assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
        let arrivals = mock.arrivals();
        assert_eq!(arrivals.len(), 2);
        assert!(arrivals[1] <= ms(500), "{bad}: waited {:?}", arrivals[1]);
    }
}

#[tokio::test(start_paused = true)]
async fn schedule_waits_stay_within_the_jitter_bounds() {
    let mock = Mock::new(|_, _| reply(503, &[], ""));
    let policy = BackoffPolicy::new()
        .max_attempts(7)
        .exponential(ms(100), ms(1000))
        .budget(TpsBudget::new(secs(10), 100, 1.0));
    let svc = Backoff::new(mock.clone(), policy);
    assert_eq!(
        svc.oneshot(get()).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 7);
    for (retry, pair) in arrivals.windows(2).enumerate() {
        let bound = ms(100 * (1 << retry)).min(ms(1000));
        let wait = pair[1] - pair[0];
        assert!(
            wait <= bound,
            "retry {} waited {wait:?} > {bound:?}",
            retry + 1
        );
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_limit_returns_the_last_response_unchanged() {
    let mock = Mock::new(|n, _| {
        let attempt = (n + 1).to_string();
        reply(
            503,
            &[("x-attempt", &attempt)],
            &format!("attempt {attempt}"),
        )
    });
    let policy = BackoffPolicy::new()
        .max_attempts(3)
        .exponential(ms(10), ms(10));
    let stats = policy.stats();
    let svc = Backoff::new(mock.clone(), policy);
    let response = svc.oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-attempt"], "3");
    assert_eq!(body_text(response).await, "attempt 3");
    assert_eq!(mock.arrivals().len(), 3);
    assert_eq!(stats.unavailable_retries(), 2);
    assert_eq!(stats.gave_up(), 1);
}

#[tokio::test(start_paused = true)]
async fn elapsed_limit_stops_retries() {
    let mock = Mock::new(|_, _| reply(429, &[("retry-after", "4")], ""));
    let policy = BackoffPolicy::new().max_attempts(100).max_elapsed(secs(10));
    let svc = Backoff::new(mock.clone(), policy);
    let started = Instant::now();
    let response = svc.oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(mock.arrivals(), [secs(0), secs(4), secs(8)]);
    assert_eq!(started.elapsed(), secs(8));
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_max_delay_returns_the_response_at_once() {
    let mock = Mock::new(|_, _| reply(429, &[("retry-after", "120")], "later"));
    let policy = BackoffPolicy::new().max_delay(secs(60));
    let stats = policy.stats();
    let svc = Backoff::new(mock.clone(), policy);
    let started = Instant::now();
    let response = svc.oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body_text(response).await, "later");
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(mock.arrivals().len(), 1);
    assert_eq!(stats.throttled_waits(), 0);
}

#[tokio::test(start_paused = true)]
async fn budget_limit_stops_retries_across_clones() {
    let mock = Mock::new(|_, _| reply(503, &[], ""));
    // No deposits count (0 %), a reserve of exactly one retry per second.
    let policy = BackoffPolicy::new()
        .max_attempts(10)
        .exponential(ms(10), ms(10))
        .budget(TpsBudget::new(secs(1), 1, 0.0));
    let stats = policy.stats();
    let svc = Backoff::new(mock.clone(), policy);
    let first = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(mock.arrivals().len(), 2, "one retry from the reserve");
    // Another clone shares the empty budget.
    let second = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(mock.arrivals().len(), 3, "no retry left");
    assert_eq!(stats.gave_up(), 2);
}

/// A request body that can be cloned until the "first attempt" reads it, which marks it
/// over its replay cap, as a `ReplayBody` past its cap would.
struct CappedBody {
    data: Bytes,
    over_cap: Arc<AtomicBool>,
}

impl http_body::Body for CappedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.over_cap.store(true, Ordering::SeqCst);
        let data = std::mem::take(&mut self.data);
        Poll::Ready((!data.is_empty()).then(|| Ok(Frame::data(data))))
    }
}

impl TryCloneBody for CappedBody {
    fn try_clone_body(&self) -> Option<Self> {
        (!self.over_cap.load(Ordering::SeqCst)).then(|| CappedBody {
            data: self.data.clone(),
            over_cap: self.over_cap.clone(),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn body_over_the_replay_cap_is_not_retried() {
    let mock = tower::service_fn(|req: Request<CappedBody>| async move {
        let sent = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(sent, "big query");
        reply(
            429,
            &[("retry-after", "1"), ("x-original", "yes")],
            "throttled",
        )
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        mock.map_request(move |req| {
            calls.fetch_add(1, Ordering::SeqCst);
            req
        })
    };
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let svc = Backoff::new(counted, policy);
    let body = CappedBody {
        data: Bytes::from_static(b"big query"),
        over_cap: Arc::default(),
    };
    let req = Request::post("http://api.test/q").body(body).unwrap();
    let started = Instant::now();
    let response = svc.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["x-original"], "yes");
    assert_eq!(body_text(response).await, "throttled");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(stats.gave_up(), 1);
    assert_eq!(stats.throttled_waits(), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_wait_for_the_reset_after_the_first_429() {
    // The server rejects everything arriving in its first 100 ms with `Retry-After: 5`.
    let mock = Mock::new(|_, at| {
        if at < ms(100) {
            reply(429, &[("retry-after", "5")], "")
        } else {
            reply(200, &[], "ok")
        }
    })
    .latency(ms(100));
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let svc = Backoff::new(mock.clone(), policy);
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                sleep(ms(50 * i)).await;
                svc.oneshot(get()).await.unwrap().status()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let arrivals = mock.arrivals();
    // Requests 0 and 1 were sent before the first 429 came back (at 100 ms).
    assert_eq!(arrivals[..2], [ms(0), ms(50)]);
    let first_429 = ms(100);
    for at in &arrivals[2..] {
        assert!(
            *at >= first_429 + secs(5),
            "a request reached the server at {at:?}"
        );
    }
    assert_eq!(arrivals.len(), 22);
    assert_eq!(stats.throttled_waits(), 2);
    assert!(stats.paced_requests() >= 18, "{}", stats.paced_requests());
}

#[tokio::test(start_paused = true)]
async fn the_gate_can_be_turned_off() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "5")], ""),
        _ => reply(200, &[], "ok"),
    });
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new().cooperative_gate(false));
    let first = tokio::spawn(svc.clone().oneshot(get()));
    sleep(secs(1)).await;
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [secs(0), secs(1), secs(5)]);
}

#[tokio::test(start_paused = true)]
async fn cancellation_mid_wait_leaks_nothing_and_leaves_the_gate_usable() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "5")], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let svc = Backoff::new(mock.clone(), policy);
    let handles = Arc::strong_count(&mock.arrivals);

    // A gets the 429 and is dropped while waiting to retry.
    assert!(timeout(secs(1), svc.clone().oneshot(get())).await.is_err());
    // B waits at the gate (until t = 5 s) and is dropped there.
    assert!(timeout(secs(2), svc.clone().oneshot(get())).await.is_err());
    assert_eq!(
        Arc::strong_count(&mock.arrivals),
        handles,
        "a dropped future kept a service"
    );
    assert_eq!(mock.arrivals(), [secs(0)]);

    // C, at t = 3 s, goes out exactly when the gate opens.
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [secs(0), secs(5)]);
    // After the reset, nothing waits.
    let before = Instant::now();
    svc.oneshot(get()).await.unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO);
    assert_eq!(stats.throttled_waits(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_does_not_use_up_a_token() {
    let mock = Mock::new(|_, _| reply(200, &[], "ok"));
    let svc = Backoff::new(
        mock.clone(),
        BackoffPolicy::new().pacing(Pacing::per_second(1)),
    );
    svc.clone().oneshot(get()).await.unwrap();
    // The next token is due at t = 1 s; this waiter gives up at 0.5 s.
    assert!(timeout(ms(500), svc.clone().oneshot(get())).await.is_err());
    svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(mock.arrivals(), [ms(0), ms(1000)]);
}

#[tokio::test(start_paused = true)]
async fn token_bucket_is_shared_by_clones() {
    let mock = Mock::new(|_, _| reply(200, &[], "ok"));
    let layer = BackoffLayer::new(BackoffPolicy::new().pacing(Pacing::per_second(5)));
    // Two services from one layer, and clones of each: one bucket.
    let a = layer.layer(mock.clone());
    let b = layer.layer(mock.clone());
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(svc.oneshot(get()))
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let arrivals = mock.arrivals();
    let expected: Vec<_> = (0..10).map(|i| ms(200 * i)).collect();
    assert_eq!(arrivals, expected);
    assert_eq!(layer.stats().paced_requests(), 9);
}

#[tokio::test(start_paused = true)]
async fn adaptive_pacing_settles_under_the_server_limit() {
    const LIMIT: usize = 10;
    // A server allowing LIMIT requests per whole second, answering 429 (no hint) beyond.
    let windows: Arc<Mutex<Vec<usize>>> = Arc::default();
    let outcomes: Arc<Mutex<Vec<(Duration, u16)>>> = Arc::default();
    let mock = {
        let (windows, outcomes) = (windows.clone(), outcomes.clone());
        Mock::new(move |_, at| {
            let second = at.as_secs() as usize;
            let mut windows = windows.lock().unwrap();
            if windows.len() <= second {
                windows.resize(second + 1, 0);
            }
            windows[second] += 1;
            let status = if windows[second] > LIMIT { 429 } else { 200 };
            outcomes.lock().unwrap().push((at, status));
            reply(status, &[], "")
        })
        .latency(ms(20))
    };
    let policy = BackoffPolicy::new()
        .pacing(Pacing::adaptive(3.0 * LIMIT as f64))
        .exponential(ms(50), secs(1));
    let svc = Backoff::new(mock.clone(), policy.clone());
    let end = Instant::now() + secs(120);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                while Instant::now() < end {
                    let _ = svc.clone().oneshot(get()).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    let in_minute = |minute: u64, status: u16| {
        outcomes
            .iter()
            .filter(|(at, s)| at.as_secs() / 60 == minute && *s == status)
            .count()
    };
    let (throttled_1, throttled_2) = (in_minute(0, 429), in_minute(1, 429));
    let ok_per_second = in_minute(1, 200) as f64 / 60.0;
    println!(
        "429s: minute 1 {throttled_1}, minute 2 {throttled_2}; minute 2 throughput {ok_per_second:.2}/s; rate {:?}",
        policy.pacing_rate()
    );
    assert!(
        throttled_2 < throttled_1,
        "429s: minute 1 {throttled_1}, minute 2 {throttled_2}"
    );
    let limit = LIMIT as f64;
    assert!(
        (0.8 * limit..=1.2 * limit).contains(&ok_per_second),
        "throughput {ok_per_second}/s against a limit of {limit}/s"
    );
}

#[tokio::test(start_paused = true)]
async fn fixed_rate_pacing_without_adaptation_keeps_hitting_the_limit() {
    // The control for the adaptive test: a fixed rate above the limit never learns.
    let count = Arc::new(Mutex::new(Vec::<usize>::new()));
    let mock = {
        let count = count.clone();
        Mock::new(move |_, at| {
            let second = at.as_secs() as usize;
            let mut count = count.lock().unwrap();
            if count.len() <= second {
                count.resize(second + 1, 0);
            }
            count[second] += 1;
            reply(if count[second] > 10 { 429 } else { 200 }, &[], "")
        })
    };
    let policy = BackoffPolicy::new()
        .max_attempts(1)
        .pacing(Pacing::per_second(15));
    let svc = Backoff::new(mock.clone(), policy.clone());
    let end = Instant::now() + secs(20);
    while Instant::now() < end {
        svc.clone().oneshot(get()).await.unwrap();
    }
    let count = count.lock().unwrap();
    // NOTE: timers tick in whole milliseconds, so a window may see 14 instead of 15.
    assert!(
        count[..20].iter().all(|n| *n > 10),
        "every second overshoots: {count:?}"
    );
    assert_eq!(policy.pacing_rate(), Some(15.0));
}

fn refused_once() -> Mock {
    Mock::new(|n, _| match n {
        0 => Err(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused))),
        _ => reply(200, &[], "ok"),
    })
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_only_when_opted_in() {
    let mock = refused_once();
    let err = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(mock.arrivals().len(), 1);

    let mock = refused_once();
    let policy = BackoffPolicy::new().retry_transport_errors(true);
    let stats = policy.stats();
    let response = Backoff::new(mock.clone(), policy)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 2);
    assert_eq!(stats.other_retries(), 1);

    let mock = refused_once();
    let mut marked = get();
    marked.extensions_mut().insert(RetrySafe);
    let response = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(marked)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_never_retried() {
    let mock = Mock::new(|_, _| Err("invalid certificate".into()));
    let policy = BackoffPolicy::new().retry_transport_errors(true);
    let err = Backoff::new(mock.clone(), policy)
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "invalid certificate");
    assert_eq!(mock.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn gateway_errors_are_retried_only_when_opted_in() {
    let script = |n, _| match n {
        0 => reply(502, &[], ""),
        1 => reply(504, &[], ""),
        _ => reply(200, &[], "ok"),
    };
    let mock = Mock::new(script);
    let response = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(mock.arrivals().len(), 1);

    let mock = Mock::new(script);
    let policy = BackoffPolicy::new().retry_gateway_errors(true);
    let response = Backoff::new(mock.clone(), policy)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 3);

    let mock = Mock::new(script);
    let marked = Request::post("http://api.test/analytics/query")
        .extension(RetrySafe)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = Backoff::new(mock.clone(), BackoffPolicy::new())
        .oneshot(marked)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn replays_send_the_same_request() {
    let seen: Arc<Mutex<Vec<(String, String, Bytes)>>> = Arc::default();
    let svc = {
        let seen = seen.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let auth = parts.headers["x-query-id"].to_str().unwrap().to_owned();
                let mut seen = seen.lock().unwrap();
                seen.push((parts.method.to_string(), auth, body));
                let status = if seen.len() == 1 { 429 } else { 200 };
                reply(status, &[], "")
            }
        })
    };
    let req = Request::post("http://api.test/q")
        .header("x-query-id", "42")
        .body(Full::new(Bytes::from_static(b"{\"page\":1}")))
        .unwrap();
    let response = Backoff::new(svc, BackoffPolicy::new())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1].2, "{\"page\":1}");
}

/// A response body that records when it is dropped and how much of it was read.
struct TrackedBody {
    chunks: Vec<Bytes>,
    read: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        let chunk = self.chunks.remove(0);
        self.read.fetch_add(chunk.len(), Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

#[tokio::test(start_paused = true)]
async fn the_429_body_is_drained_and_dropped_before_the_replay() {
    let read = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = {
        let (read, dropped, calls) = (read.clone(), dropped.clone(), calls.clone());
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 1 {
                assert!(
                    dropped.load(Ordering::SeqCst),
                    "429 body still alive at the replay"
                );
                assert_eq!(
                    read.load(Ordering::SeqCst),
                    3 * 1024,
                    "small body not drained"
                );
            }
            let body = TrackedBody {
                chunks: vec![Bytes::from(vec![b'x'; 1024]); 3],
                read: read.clone(),
                dropped: dropped.clone(),
            };
            let status = if n == 0 { 429 } else { 200 };
            let response = Response::builder()
                .status(status)
                .header("retry-after", "1")
                .body(body)
                .unwrap();
            async move { Ok::<_, BoxError>(response) }
        })
    };
    let response = Backoff::new(svc, BackoffPolicy::new())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn drain_stops_at_the_limit() {
    let read = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = {
        let (read, dropped, calls) = (read.clone(), dropped.clone(), calls.clone());
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let body = TrackedBody {
                chunks: vec![Bytes::from(vec![b'x'; 1024]); 100],
                read: read.clone(),
                dropped: dropped.clone(),
            };
            let status = if n == 0 { 503 } else { 200 };
            let response = Response::builder()
                .status(status)
                .header("retry-after", "1")
                .body(body)
                .unwrap();
            async move { Ok::<_, BoxError>(response) }
        })
    };
    let policy = BackoffPolicy::new().drain_limit(4 * 1024);
    Backoff::new(svc, policy).oneshot(get()).await.unwrap();
    assert_eq!(read.load(Ordering::SeqCst), 5 * 1024);
}

#[tokio::test(start_paused = true)]
async fn stats_count_each_kind_of_retry() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "2")], ""),
        1 => reply(503, &[("retry-after", "1")], ""),
        2 => reply(502, &[("retry-after", "1")], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new().retry_gateway_errors(true);
    let svc = Backoff::new(mock, policy);
    let stats = svc.stats();
    svc.oneshot(get()).await.unwrap();
    assert_eq!(
        (
            stats.throttled_waits(),
            stats.unavailable_retries(),
            stats.other_retries()
        ),
        (1, 1, 1)
    );
    assert_eq!(stats.retries(), 3);
    assert_eq!(stats.total_wait(), secs(4));
    assert_eq!(stats.gave_up(), 0);
}

/// Records every event's fields as `name=value` strings.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<String>>>>);

struct Fields(Vec<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={:?}", field.name(), value));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push(format!("{}={}", field.name(), value));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

#[tokio::test(start_paused = true)]
async fn each_retry_emits_an_event_with_status_attempt_delay_and_source() {
    use tracing_subscriber::layer::SubscriberExt;
    let recorder = Recorder::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder.clone()));
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "3")], ""),
        1 => reply(503, &[], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new().exponential(ms(100), ms(100));
    Backoff::new(mock, policy).oneshot(get()).await.unwrap();
    let events = recorder.0.lock().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    for field in [
        "status=429",
        "attempt=1",
        "delay_ms=3000",
        "source=retry-after",
    ] {
        assert!(
            events[0].iter().any(|f| f == field),
            "{field} missing from {:?}",
            events[0]
        );
    }
    for field in ["status=503", "attempt=2", "source=schedule"] {
        assert!(
            events[1].iter().any(|f| f == field),
            "{field} missing from {:?}",
            events[1]
        );
    }
}

#[tokio::test]
async fn hyper_connection_closed_before_response_is_a_transport_error() {
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Read the request, then hang up without answering.
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let err = sender.send_request(get()).await.unwrap_err();
    server.await.unwrap();
    assert!(is_transport_error(&err), "{err:?}");
    let boxed: BoxError = Box::new(err);
    assert!(is_transport_error(boxed.as_ref()));
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_honours_retry_after() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "3")], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new();
    let stats = policy.stats();
    let svc = tower::retry::Retry::new(RetryPolicy::new(policy), mock.clone());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [ms(0), ms(3000)]);
    assert_eq!(stats.throttled_waits(), 1);
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_counts_attempts_per_request() {
    let mock = Mock::new(|_, _| reply(503, &[], ""));
    let policy = BackoffPolicy::new()
        .max_attempts(3)
        .exponential(ms(10), ms(10));
    let svc = tower::retry::Retry::new(RetryPolicy::from(policy), mock.clone());
    for round in 1..=2 {
        let response = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(mock.arrivals().len(), 3 * round);
    }
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_deposits_once_per_request() {
    let mock = Mock::new(|_, _| reply(503, &[], ""));
    // Each request earns exactly one retry; no reserve.
    let policy = BackoffPolicy::new()
        .max_attempts(10)
        .exponential(ms(10), ms(10))
        .budget(TpsBudget::new(secs(10), 0, 1.0));
    let svc = tower::retry::Retry::new(RetryPolicy::new(policy), mock.clone());
    svc.oneshot(get()).await.unwrap();
    assert_eq!(mock.arrivals().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_does_not_replay_a_body_over_its_cap() {
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = {
        let calls = calls.clone();
        tower::service_fn(move |req: Request<CappedBody>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                req.into_body().collect().await.unwrap();
                reply(429, &[("retry-after", "1")], "")
            }
        })
    };
    let body = CappedBody {
        data: Bytes::from_static(b"big"),
        over_cap: Arc::default(),
    };
    let req = Request::post("http://api.test/q").body(body).unwrap();
    let retry = tower::retry::Retry::new(RetryPolicy::new(BackoffPolicy::new()), svc);
    let response = retry.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_retries_wait_at_the_shared_gate() {
    // One policy shared by a Backoff layer and a tower Retry: a 429 seen by the layer
    // holds the Retry's retries too.
    let mock = Mock::new(|n, _| match n {
        0 => reply(503, &[("retry-after", "1")], ""),
        1 => reply(429, &[("retry-after", "5")], ""),
        _ => reply(200, &[], "ok"),
    });
    let policy = BackoffPolicy::new();
    let retry = tower::retry::Retry::new(RetryPolicy::new(policy.clone()), mock.clone());
    let layered = Backoff::new(mock.clone(), policy);
    let first = tokio::spawn(retry.oneshot(get()));
    tokio::task::yield_now().await;
    // Arrives second, at t = 0, and closes the gate until t = 5 s.
    let second = tokio::spawn(layered.oneshot(get()));
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(mock.arrivals(), [secs(0), secs(0), secs(5), secs(5)]);
}
