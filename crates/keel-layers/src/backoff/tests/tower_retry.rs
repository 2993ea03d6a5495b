//! [`RetryPolicy`] under plain `tower::retry::Retry`.

use super::*;

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
    // Both retries were held until the gate opened at 5 s; the two are then released at a
    // pace, within the gate's first second (see `LocalRateState`).
    let arrivals = mock.arrivals();
    assert_eq!(arrivals[..3], [secs(0), secs(0), secs(5)]);
    assert!(
        arrivals[3] >= secs(5) && arrivals[3] < secs(6),
        "{arrivals:?}"
    );
}
