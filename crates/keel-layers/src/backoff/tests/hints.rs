//! Waits the server asks for: `Retry-After` (seconds, HTTP-date), rate-limit resets.

use super::*;

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
