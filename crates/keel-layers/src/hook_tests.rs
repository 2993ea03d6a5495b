//! `BackoffLayer::replay_on(refresh)`: refresh-on-401 and backoff in one retry loop, which
//! must behave as `RefreshOn401Layer` stacked over `BackoffLayer`.

use std::sync::atomic::AtomicU32;

use http::header::AUTHORIZATION;
use tower_test::mock;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::{sleep, timeout, Instant};
use tower::{Layer, ServiceExt};

use crate::auth::{token_source_fn, BearerLayer, Origin, RefreshOn401Layer, Token, TokenCache};
use crate::backoff::{BackoffLayer, BackoffPolicy, TpsBudget};
use crate::test_support::*;

const API: &str = "http://127.0.0.1:8080";

/// A cache whose source hands out `token-1`, `token-2`, …, counting its fetches.
fn tokens() -> (TokenCache, Arc<AtomicU32>) {
    let fetches = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&fetches);
    let cache = TokenCache::new(token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Token::bearer(&format!("token-{n}"), None) }
    }));
    (cache, fetches)
}

fn api_get() -> Request<Full<Bytes>> {
    Request::get(format!("{API}/x"))
        .body(Full::default())
        .unwrap()
}

fn status(code: u16) -> Response<Full<Bytes>> {
    reply(code, &[], "").unwrap()
}

fn bearer(tokens: &TokenCache) -> BearerLayer {
    BearerLayer::new(tokens.clone(), Origin::parse(API).unwrap())
}

fn auth<B>(req: &Request<B>) -> &str {
    req.headers()[AUTHORIZATION].to_str().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_401_then_a_429_then_ok_is_one_request_with_one_refresh_and_one_wait() {
    let (tokens, fetches) = tokens();
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let policy = BackoffPolicy::new();
    let backoff_stats = policy.stats();
    let layer = BackoffLayer::new(policy).replay_on(refresh.clone());
    let (api, mut handle) = mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(bearer(&tokens))
        .service(api);
    let start = Instant::now();
    let call = tokio::spawn(svc.oneshot(api_get()));

    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(auth(&req), "Bearer token-1");
    send.send_response(status(401));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(auth(&req), "Bearer token-2", "replayed with a fresh token");
    assert_eq!(start.elapsed(), Duration::ZERO);
    send.send_response(reply(429, &[("retry-after", "3")], "").unwrap());
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(auth(&req), "Bearer token-2");
    assert_eq!(
        start.elapsed(),
        secs(3),
        "the 429's Retry-After was waited out"
    );
    send.send_response(status(200));

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(refresh.stats().replays(), 1);
    assert_eq!(backoff_stats.throttled_waits(), 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(tokens.stats().invalidations, 1);
}

/// Runs `script` through `RefreshOn401Layer` over `BackoffLayer`, or through the backoff
/// layer alone with `refresh_on_401`, and returns what a caller can observe.
async fn observe(
    fused: bool,
    budget: TpsBudget,
    script: fn(usize) -> Reply,
) -> (Vec<Duration>, StatusCode, u64, (u64, u64, u64), u32) {
    let (tokens, fetches) = tokens();
    let refresh = RefreshOn401Layer::new(tokens.clone()).max_replays(2);
    let policy = BackoffPolicy::new()
        .max_attempts(4)
        .exponential(ms(100), ms(100))
        .budget(budget);
    let stats = policy.stats();
    let backoff = BackoffLayer::new(policy);
    let mock = Mock::new(move |n, _| script(n));
    let api = bearer(&tokens).layer(mock.clone());
    let response = if fused {
        backoff
            .replay_on(refresh.clone())
            .layer(api)
            .oneshot(api_get())
            .await
    } else {
        refresh.layer(backoff.layer(api)).oneshot(api_get()).await
    };
    let status = response.unwrap().status();
    let replays = refresh.stats().replays();
    let counts = (
        stats.throttled_waits(),
        stats.unavailable_retries(),
        stats.gave_up(),
    );
    (
        mock.arrivals(),
        status,
        replays,
        counts,
        fetches.load(Ordering::SeqCst),
    )
}

#[tokio::test(start_paused = true)]
async fn one_loop_behaves_as_the_stacked_layers() {
    let scripts: [fn(usize) -> Reply; 4] = [
        // 401, 429, 503, then OK.
        |n| match n {
            0 => reply(401, &[], ""),
            1 => reply(429, &[("retry-after", "2")], ""),
            2 => reply(503, &[("retry-after", "1")], ""),
            _ => reply(200, &[], "ok"),
        },
        // A 401 after backoff retries starts a new backoff count.
        |n| match n {
            0..=2 => reply(503, &[("retry-after", "1")], ""),
            3 => reply(401, &[], ""),
            4..=6 => reply(503, &[("retry-after", "1")], ""),
            _ => reply(200, &[], "ok"),
        },
        // 401s beyond the replays are returned.
        |_| reply(401, &[], ""),
        // Attempts run out after a replay.
        |n| match n {
            0 => reply(401, &[], ""),
            _ => reply(503, &[("retry-after", "1")], ""),
        },
    ];
    for (i, script) in scripts.into_iter().enumerate() {
        let budget = || TpsBudget::new(secs(10), 100, 1.0);
        let stacked = observe(false, budget(), script).await;
        let fused = observe(true, budget(), script).await;
        assert_eq!(fused, stacked, "script {i}");
    }
    // The scripts do what they say (so the comparison compares something).
    let budget = TpsBudget::new(secs(10), 100, 1.0);
    let (arrivals, status, replays, counts, fetches) = observe(true, budget, scripts[1]).await;
    assert_eq!(arrivals.len(), 8);
    assert_eq!(
        (status, replays, counts, fetches),
        (StatusCode::OK, 1, (0, 6, 0), 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_replay_after_a_401_deposits_in_the_budget_as_a_new_request() {
    // Each request (and each replay, as the stacked layers would) earns exactly one retry.
    let script: fn(usize) -> Reply = |n| match n {
        0 => reply(401, &[], ""),
        _ => reply(503, &[("retry-after", "1")], ""),
    };
    let budget = || TpsBudget::new(secs(10), 0, 1.0);
    let (arrivals, status, replays, counts, _) = observe(true, budget(), script).await;
    // The request, its replay, and two retries: one earned by each deposit.
    assert_eq!(arrivals, [secs(0), secs(0), secs(1), secs(2)]);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (replays, counts),
        (1, (0, 2, 1)),
        "the budget stopped the third retry"
    );
    assert_eq!(observe(false, budget(), script).await.0, arrivals);
}

#[tokio::test(start_paused = true)]
async fn a_401_whose_body_outgrew_its_cap_during_the_attempt_is_returned_as_is() {
    let (tokens, fetches) = tokens();
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let policy = BackoffPolicy::new();
    let backoff_stats = policy.stats();
    let (api, mut handle) = mock::pair::<Request<CappedBody>, Response<Full<Bytes>>>();
    let svc = tower::ServiceBuilder::new()
        .layer(BackoffLayer::new(policy).replay_on(refresh.clone()))
        .layer(bearer(&tokens))
        .service(api);
    let body = CappedBody {
        data: Bytes::from_static(b"query"),
        over_cap: Arc::new(AtomicBool::new(false)),
    };
    let req = Request::post(format!("{API}/q")).body(body).unwrap();
    let call = tokio::spawn(svc.oneshot(req));

    let (req, send) = handle.next_request().await.unwrap();
    // Reading the body takes it over its cap, as a `ReplayBody` past its cap would.
    let sent = req.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(sent, "query");
    send.send_response(status(401));

    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refresh.stats().not_replayable(), 1);
    assert_eq!(refresh.stats().replays(), 0);
    assert_eq!(
        tokens.stats().invalidations,
        0,
        "nothing is replayed, nothing dropped"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(backoff_stats.retries(), 0);
    let next = timeout(secs(300), handle.next_request()).await;
    assert!(!matches!(next, Ok(Some(_))), "nothing was sent again");
}

#[tokio::test(start_paused = true)]
async fn cancelling_after_a_replay_leaks_nothing() {
    let (tokens, fetches) = tokens();
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let mock = Mock::new(|n, _| match n {
        0 => reply(401, &[], ""),
        1 => reply(429, &[("retry-after", "5")], ""),
        _ => reply(200, &[], "ok"),
    });
    let handles = Arc::strong_count(&mock.arrivals);
    let svc = tower::ServiceBuilder::new()
        .layer(BackoffLayer::new(BackoffPolicy::new()).replay_on(refresh.clone()))
        .layer(bearer(&tokens))
        .service(mock.clone());

    // Dropped while waiting out the 429 that answered the replay.
    assert!(timeout(secs(1), svc.clone().oneshot(api_get()))
        .await
        .is_err());
    assert_eq!(mock.arrivals(), [secs(0), secs(0)]);
    assert_eq!(refresh.stats().replays(), 1);
    // The service and its spare hold the mock; the dropped future holds nothing.
    assert_eq!(Arc::strong_count(&mock.arrivals), handles + 2);
    drop(svc);
    assert_eq!(Arc::strong_count(&mock.arrivals), handles);
    // Nothing was sent after the drop.
    sleep(secs(10)).await;
    assert_eq!(mock.arrivals().len(), 2);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn one_loop_keeps_one_spare_and_clones_it_once_per_retried_request() {
    let (tokens, _) = tokens();
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let clones = Arc::new(AtomicUsize::new(0));
    let mock = Mock::new(|n, _| match n {
        3 => reply(401, &[], ""),
        4 => reply(503, &[("retry-after", "1")], ""),
        _ => reply(200, &[], "ok"),
    });
    let counted = CountClones {
        inner: bearer(&tokens).layer(mock.clone()),
        clones: Arc::clone(&clones),
    };
    let mut svc = BackoffLayer::new(BackoffPolicy::new())
        .replay_on(refresh.clone())
        .layer(counted);
    tokens.token().await.unwrap();
    for _ in 0..3 {
        (&mut svc).oneshot(api_get()).await.unwrap();
    }
    assert_eq!(
        clones.load(Ordering::SeqCst),
        1,
        "one spare, not one clone per request"
    );
    // 401, then 503, then OK: a replay and a retry through one clone of the spare.
    let response = (&mut svc).oneshot(api_get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(mock.arrivals().len(), 6);
    assert_eq!(clones.load(Ordering::SeqCst), 2);
}
