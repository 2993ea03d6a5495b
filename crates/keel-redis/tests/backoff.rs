//! `RedisRateState` under keel-layers' `BackoffLayer`, against a real redis-server.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, eventually, prefix};
use futures_util::future::join_all;
use http::{Request, Response, StatusCode};
use keel_layers::backoff::{BackoffLayer, BackoffPolicy};
use keel_redis::rate::FleetPacing;
use keel_redis::{RedisConnection, RedisRateState};
use keel_testkit::redis::RedisServer;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const NAME: &str = "api.example.com";

fn quiet_connect(url: &str, prefix: &str) -> RedisConnection {
    config(url, prefix)
        .health_interval(Duration::from_secs(60))
        .connect()
        .unwrap()
}

/// A stand-in for the API.
type Api =
    tower::util::BoxCloneService<Request<String>, Response<String>, std::convert::Infallible>;

/// An API that answers its first request 429 with `headers`, and every later one 200.
fn throttling_once(headers: &'static [(&'static str, &'static str)]) -> Api {
    let throttled_once = Arc::new(AtomicU64::new(0));
    Api::new(tower::service_fn(move |_req: Request<String>| {
        let first = throttled_once.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let mut response = Response::new(String::new());
            if first {
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(*name, http::HeaderValue::from_static(value));
                }
            }
            Ok(response)
        }
    }))
}

/// An API that answers 200 and records when each request reached it.
fn recording() -> (Api, Arc<Mutex<Vec<Instant>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let api = tower::service_fn(move |_req: Request<String>| {
        log.lock().unwrap().push(Instant::now());
        async { Ok(Response::new(String::new())) }
    });
    (Api::new(api), seen)
}

/// A 429 in one process closes the gate of another process's backoff layer: its requests
/// reach the API only after the deadline, and that process asks Redis nothing.
#[tokio::test]
async fn a_429_in_one_process_holds_another_processs_requests() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let prefix = prefix();
    let (conn_a, conn_b) = (
        quiet_connect(&server.url(), &prefix),
        quiet_connect(&server.url(), &prefix),
    );
    let (a, b) = (
        RedisRateState::new(conn_a, NAME),
        RedisRateState::new(conn_b.clone(), NAME),
    );
    a.synced().await;
    b.synced().await;

    let api_a = throttling_once(&[("retry-after", "1")]);
    let (api_b, seen_by_b) = recording();
    let process_a = BackoffLayer::new(BackoffPolicy::new().rate_state(a.clone())).layer(api_a);
    let process_b = BackoffLayer::new(BackoffPolicy::new().rate_state(b.clone())).layer(api_b);

    let b_calls = conn_b.calls();
    let started = Instant::now();
    let a_done = tokio::spawn(process_a.oneshot(Request::new(String::new())));
    assert!(
        eventually(Duration::from_secs(2), || b.closed_until().is_some()).await,
        "b never heard of a's 429"
    );
    let opens_at = b.closed_until().unwrap();
    assert!(opens_at >= started + Duration::from_millis(900));
    let responses =
        join_all((0..20).map(|_| process_b.clone().oneshot(Request::new(String::new())))).await;
    assert!(responses
        .iter()
        .all(|r| r.as_ref().unwrap().status() == 200));
    let seen = seen_by_b.lock().unwrap().clone();
    assert_eq!(seen.len(), 20);
    for at in seen {
        assert!(
            at + Duration::from_millis(20) >= opens_at,
            "b went out early"
        );
    }
    assert_eq!(a_done.await.unwrap().unwrap().status(), 200);
    assert_eq!(conn_b.calls(), b_calls, "b asked Redis");
    assert_eq!(b.stats().remote_closes, 1);
}

/// A 429 advertising 4 requests a second in one process paces another process's release at
/// that rate once the fleet's gate opens, instead of letting its held requests go at once.
#[tokio::test]
async fn the_rate_a_429_advertised_paces_the_release_of_another_process() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let prefix = prefix();
    let (a, b) = (
        RedisRateState::new(quiet_connect(&server.url(), &prefix), NAME),
        RedisRateState::new(quiet_connect(&server.url(), &prefix), NAME),
    );
    a.synced().await;
    b.synced().await;
    let api_a = throttling_once(&[
        ("retry-after", "1"),
        ("inin-ratelimit-allowed", "4"),
        ("inin-ratelimit-reset", "1"),
    ]);
    let (api_b, seen_by_b) = recording();
    let process_a = BackoffLayer::new(BackoffPolicy::new().rate_state(a)).layer(api_a);
    let process_b = BackoffLayer::new(BackoffPolicy::new().rate_state(b.clone())).layer(api_b);

    let a_done = tokio::spawn(process_a.oneshot(Request::new(String::new())));
    assert!(
        eventually(Duration::from_secs(2), || b.closed_until().is_some()).await,
        "b never heard of a's 429"
    );
    let opens_at = b.closed_until().unwrap();
    let responses =
        join_all((0..8).map(|_| process_b.clone().oneshot(Request::new(String::new())))).await;
    assert!(responses
        .iter()
        .all(|r| r.as_ref().unwrap().status() == 200));
    let seen = seen_by_b.lock().unwrap().clone();
    assert_eq!(seen.len(), 8);
    assert!(
        seen[0] + Duration::from_millis(20) >= opens_at,
        "b went out early"
    );
    // NOTE: 4/s for the first second, then 8/s: slots 0, 0.25, 0.5, 0.75, 1, 1.125, 1.25,
    // 1.375 s after the reopening. Released all at once they would span a few ms, and
    // spread over the closed interval (no advertised rate) under a second.
    let span = seen[7] - seen[0];
    assert!(
        span >= Duration::from_millis(1_200),
        "released over {span:?}: {seen:?}"
    );
    assert_eq!(a_done.await.unwrap().unwrap().status(), 200);
}

/// Four processes pacing through their backoff layers stay together under the fleet's rate,
/// taking permits in batches.
#[tokio::test]
async fn backoff_layers_of_a_fleet_share_one_pacing_budget() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (rate, burst) = (200.0, 10);
    let pacing = FleetPacing::per_second(rate).batch(10);
    let sent = Arc::new(AtomicU64::new(0));
    let states: Vec<_> = (0..4)
        .map(|_| RedisRateState::with_pacing(quiet_connect(&server.url(), &prefix), NAME, pacing))
        .collect();
    join_all(states.iter().map(|s| s.synced())).await;
    let start = std::time::Instant::now();
    let run_for = Duration::from_millis(1000);
    let workers = states.iter().flat_map(|state| {
        let sent = sent.clone();
        let api = tower::service_fn(move |_req: Request<String>| {
            sent.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) }
        });
        let svc = BackoffLayer::new(BackoffPolicy::new().rate_state(state.clone())).layer(api);
        (0..4).map(move |_| {
            let svc = svc.clone();
            async move {
                while start.elapsed() < run_for {
                    svc.clone()
                        .oneshot(Request::new(String::new()))
                        .await
                        .unwrap();
                }
            }
        })
    });
    join_all(workers).await;
    let elapsed = start.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    let ceiling = burst as f64 + rate * elapsed;
    assert!((sent as f64) <= ceiling, "{sent} > {ceiling}");
    assert!(sent as f64 >= rate * 0.5, "{sent}: the fleet starved");
    let refills: u64 = states.iter().map(|s| s.stats().refills).sum();
    assert!(
        refills >= 1 && refills * 5 <= sent,
        "{refills} refills for {sent}"
    );
}

/// Redis down: a paced backoff layer paces alone at the fleet's rate instead of holding
/// requests.
#[tokio::test]
async fn redis_down_a_paced_layer_paces_alone() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    server.stop();
    let conn = config(&server.url(), &prefix()).connect().unwrap();
    let state = RedisRateState::with_pacing(conn, NAME, FleetPacing::per_second(50.0).burst(5));
    let sent = Arc::new(AtomicU64::new(0));
    let api = {
        let sent = sent.clone();
        tower::service_fn(move |_req: Request<String>| {
            sent.fetch_add(1, Ordering::Relaxed);
            async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) }
        })
    };
    let svc = BackoffLayer::new(BackoffPolicy::new().rate_state(state)).layer(api);
    let start = std::time::Instant::now();
    for _ in 0..15 {
        svc.clone()
            .oneshot(Request::new(String::new()))
            .await
            .unwrap();
    }
    // A burst of 5, then 10 more at 50/s: about 200 ms, after the failed refill's timeout.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(180), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(sent.load(Ordering::Relaxed), 15);
}

/// A process takes its next batch of permits when half of the current one is left, so that a
/// steady stream of requests does not find the batch empty and wait for the round trip.
#[tokio::test]
async fn the_next_batch_is_taken_at_half_a_batch_left() {
    use keel_layers::backoff::RateState as _;
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let pacing = FleetPacing::per_second(100.0).batch(10).burst(1_000);
    let state = RedisRateState::with_pacing(quiet_connect(&server.url(), &prefix()), NAME, pacing);
    state.synced().await;
    // The first batch: nothing is held yet, so the first attempt waits for it.
    loop {
        match state.try_acquire(Instant::now()) {
            Ok(()) => break,
            Err(until) => state.wait(until).await,
        }
    }
    assert_eq!(state.stats().refills, 1);
    // Nine held; four more leave five, half a batch: the next batch is on its way.
    for _ in 0..4 {
        state.try_acquire(Instant::now()).expect("held");
    }
    assert!(
        eventually(Duration::from_secs(5), || state.stats().refills == 2).await,
        "no refill at the low-water mark: {:?}",
        state.stats()
    );
    // The five left and the new ten, without a wait.
    for k in 0..15 {
        state
            .try_acquire(Instant::now())
            .unwrap_or_else(|_| panic!("permit {k} of the 15 held was missing"));
    }
}
