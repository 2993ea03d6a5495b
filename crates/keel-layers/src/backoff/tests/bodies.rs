//! Request bodies replayed (or not) and response bodies drained before a replay.

use super::*;

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
async fn inner_service_is_cloned_once_per_service_for_requests_that_can_be_retried() {
    let clones = Arc::new(AtomicUsize::new(0));
    let inner = CountClones {
        inner: Mock::new(|_, _| reply(200, &[], "ok")),
        clones: Arc::clone(&clones),
    };
    let mut no_retries = Backoff::new(inner.clone(), BackoffPolicy::new().max_attempts(1));
    let mut retrying = Backoff::new(inner, BackoffPolicy::new());
    clones.store(0, Ordering::SeqCst);

    for _ in 0..3 {
        let response = (&mut no_retries).oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(clones.load(Ordering::SeqCst), 0, "retries off: no clone");

    // A body that cannot be replayed: no retry can follow either.
    let body = CappedBody {
        data: Bytes::from_static(b"big query"),
        over_cap: Arc::new(AtomicBool::new(true)),
    };
    let req = Request::post("http://api.test/q").body(body).unwrap();
    let mut capped = Backoff::new(
        CountClones {
            inner: Mock::new(|_, _| reply(200, &[], "ok")),
            clones: Arc::clone(&clones),
        },
        BackoffPolicy::new(),
    );
    (&mut capped).oneshot(req).await.unwrap();
    assert_eq!(clones.load(Ordering::SeqCst), 0, "no backup: no clone");

    for _ in 0..3 {
        let response = (&mut retrying).oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        clones.load(Ordering::SeqCst),
        1,
        "one spare per service, not one clone per request that could be retried"
    );
    let mut clone = retrying.clone();
    (&mut clone).oneshot(get()).await.unwrap();
    assert_eq!(clones.load(Ordering::SeqCst), 2, "the clone of the service");
}

#[tokio::test(start_paused = true)]
async fn each_retry_goes_through_a_fresh_clone_of_the_spare() {
    let clones = Arc::new(AtomicUsize::new(0));
    let inner = CountClones {
        inner: Mock::new(|n, _| match n {
            0 | 1 => reply(503, &[], ""),
            _ => reply(200, &[], "ok"),
        }),
        clones: Arc::clone(&clones),
    };
    let mut svc = Backoff::new(inner, BackoffPolicy::new().exponential(ms(10), ms(10)));
    let response = (&mut svc).oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(svc.stats().unavailable_retries(), 2);
    // The spare, then one clone of it for the retries of this request.
    assert_eq!(clones.load(Ordering::SeqCst), 2);
}
