//! The shared 429 gate, the token bucket and adaptive pacing, and cancellation.

use super::*;

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
    // NOTE: plus one: the spare the service keeps for retries (see `Backoff`'s docs).
    assert_eq!(
        Arc::strong_count(&mock.arrivals),
        handles + 1,
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
    assert_eq!(
        Arc::strong_count(&mock.arrivals),
        handles - 1,
        "the service (with its spare) and every future dropped: only the test holds the mock"
    );
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

/// Gaps between consecutive arrivals, in order.
fn gaps(arrivals: &[Duration]) -> Vec<Duration> {
    arrivals.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn held_requests_are_released_at_the_rate_the_429_advertised() {
    // 10 requests a second, advertised Genesys-style on the 429 that closes the gate.
    let mock = Mock::new(|n, _| match n {
        0 => reply(
            429,
            &[
                ("retry-after", "1"),
                ("inin-ratelimit-allowed", "10"),
                ("inin-ratelimit-reset", "1"),
            ],
            "",
        ),
        _ => reply(200, &[], "ok"),
    });
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new());
    let first = tokio::spawn(svc.clone().oneshot(get()));
    sleep(ms(10)).await;
    // NOTE: nine releases fit in the first second after the reopening, before the pace
    // may double.
    let held: Vec<_> = (0..8)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    for task in held {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 10);
    assert_eq!(arrivals[1], secs(1), "the first goes when the gate opens");
    for gap in gaps(&arrivals[1..]) {
        assert!(gap >= ms(99), "released {gap:?} apart: {arrivals:?}");
    }
    // A request arriving while the release is under way waits for its slot too.
    let last = *arrivals.last().unwrap();
    svc.oneshot(get()).await.unwrap();
    assert!(mock.arrivals()[10] - last >= ms(99));
}

/// Headers of a 429 advertising 10 requests a second, reset in a second.
const TEN_PER_SECOND: [(&str, &str); 3] = [
    ("retry-after", "1"),
    ("inin-ratelimit-allowed", "10"),
    ("inin-ratelimit-reset", "1"),
];

/// Runs `workers` callers sending back to back through `svc` until `end` after the start,
/// and returns how many requests reached `mock` in each whole second.
async fn busy_seconds(mock: &Mock, svc: Backoff<Mock>, workers: usize, end: u64) -> Vec<usize> {
    let stop = Instant::now() + secs(end);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                while Instant::now() < stop {
                    svc.clone().oneshot(get()).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut counts = vec![0; usize::try_from(end).unwrap() + 1];
    for at in mock.arrivals() {
        counts[usize::try_from(at.as_secs()).unwrap()] += 1;
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn the_release_pace_lifts_after_quiet_windows_under_sustained_demand() {
    // One 429 advertising 10/s, then none: the limit was momentary. Demand: 8 callers with
    // 10 ms of latency, 800 requests a second.
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &TEN_PER_SECOND, ""),
        _ => reply(200, &[], "ok"),
    })
    .latency(ms(10));
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new());
    let counts = busy_seconds(&mock, svc, 8, 10).await;
    // The gate opens at 1.01 s; the pace doubles each quiet second from 10/s and pacing ends
    // when it reaches 64 × 10/s, at 7.01 s.
    assert!((9..=11).contains(&counts[1]), "{counts:?}");
    for second in 1..6 {
        let (now, next) = (counts[second], counts[second + 1]);
        assert!(
            next * 10 >= now * 18 && next * 10 <= now * 22,
            "the pace doubles each second: {counts:?}"
        );
    }
    assert!(counts[8] >= 790, "no pacing left: {counts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_during_the_lift_repaces_at_the_advertised_rate_and_waits_longer_to_lift() {
    // The server throttles once more at 3.5 s, when the pace has reached 40/s.
    let throttled_again = Arc::new(AtomicBool::new(false));
    let mock = {
        let throttled_again = throttled_again.clone();
        Mock::new(move |n, at| {
            if n == 0 || (at >= ms(3_500) && !throttled_again.swap(true, Ordering::SeqCst)) {
                reply(429, &TEN_PER_SECOND, "")
            } else {
                reply(200, &[], "ok")
            }
        })
        .latency(ms(10))
    };
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new());
    let counts = busy_seconds(&mock, svc, 8, 9).await;
    let arrivals = mock.arrivals();
    assert!((19..=21).contains(&counts[2]), "lifted to 20/s: {counts:?}");
    // Closed until 4.51 s, then 10/s again, for two seconds now: the lift met a 429.
    let repaced: Vec<_> = arrivals
        .iter()
        .copied()
        .filter(|at| *at > ms(3_515) && *at < ms(6_500))
        .collect();
    assert!(repaced[0] >= ms(4_510), "{arrivals:?}");
    assert!((19..=21).contains(&repaced.len()), "{repaced:?}");
    for gap in gaps(&repaced) {
        assert!(gap >= ms(99), "released {gap:?} apart: {repaced:?}");
    }
    // Then 20/s.
    assert!((19..=21).contains(&counts[7]), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn without_an_advertised_rate_held_requests_are_spread_over_the_first_second() {
    let mock = Mock::new(|n, _| match n {
        0 => reply(429, &[("retry-after", "5")], ""),
        _ => reply(200, &[], "ok"),
    });
    let svc = Backoff::new(mock.clone(), BackoffPolicy::new());
    let first = tokio::spawn(svc.clone().oneshot(get()));
    sleep(ms(10)).await;
    let held: Vec<_> = (0..16)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    for task in held {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    first.await.unwrap().unwrap();
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 18);
    for at in &arrivals[1..] {
        assert!(*at >= secs(5) && *at < secs(6), "{arrivals:?}");
    }
    for gap in gaps(&arrivals[1..]) {
        assert!(gap > ms(1), "released {gap:?} apart: {arrivals:?}");
    }
    // Once the held requests are out, nothing waits.
    let before = Instant::now();
    svc.oneshot(get()).await.unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO);
}
