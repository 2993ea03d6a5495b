//! The jittered schedule and the limits that stop retrying: attempts, elapsed, max_delay, budget.

use super::*;

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
