use super::*;

#[tokio::test(start_paused = true)]
async fn burst_of_401s_for_one_token_refreshes_once_and_replays_each_once() {
    // A slow refresh (every 401 arrives while it runs) and an instant one (most 401s for the
    // old token arrive after the new token is in the cache).
    burst_of_401s(Duration::from_millis(50)).await;
    burst_of_401s(Duration::ZERO).await;
}

async fn burst_of_401s(refresh_takes: Duration) {
    let (source, _) = counting_source(refresh_takes, None);
    let tokens = TokenCache::new(source);
    tokens.token().await.unwrap();
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let stats = refresh.stats();
    let (bearer, mut api) = bearer_stack::<Full<Bytes>>(&tokens);
    let svc = refresh.layer(bearer);

    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let server = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Some((req, respond)) = api.next_request().await {
                let auth = auth_header(&req).unwrap();
                *seen.lock().unwrap().entry(auth.clone()).or_default() += 1;
                let status = if auth == "Bearer token-1" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                respond.send_response(empty(status));
            }
        }
    });
    let responses =
        join_all((0..100).map(|_| svc.clone().oneshot(get("https://api.example.com/x")))).await;
    assert!(responses
        .iter()
        .all(|r| r.as_ref().unwrap().status() == StatusCode::OK));
    let stats_now = tokens.stats();
    assert_eq!(
        stats_now.fetches, 2,
        "one initial fetch and exactly one refresh"
    );
    assert_eq!(stats_now.invalidations, 1);
    assert_eq!(stats.replays(), 100);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.get("Bearer token-1"), Some(&100));
    assert_eq!(seen.get("Bearer token-2"), Some(&100));
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn second_401_is_returned_as_is_without_looping() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    let (bearer, mut api) = bearer_stack::<Full<Bytes>>(&tokens);
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let stats = refresh.stats();
    let call = tokio::spawn(refresh.layer(bearer).oneshot(get("/x")));
    for expected in ["Bearer token-1", "Bearer token-2"] {
        let (req, respond) = api.next_request().await.unwrap();
        assert_eq!(auth_header(&req).as_deref(), Some(expected));
        respond.send_response(json(StatusCode::UNAUTHORIZED, format!("no {expected}")));
    }
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body, "no Bearer token-2",
        "the second 401 comes back as it was"
    );
    assert_no_more_requests(&mut api).await;
    assert_eq!(stats.replays(), 1);
}

#[tokio::test(start_paused = true)]
async fn max_replays_is_configurable() {
    let (source, _) = counting_source(Duration::ZERO, None);
    // NOTE: no floor, so each replay may refresh at once (the floor has its own tests).
    let tokens = TokenCache::new(source).invalidation_floor(Duration::ZERO);
    let (bearer, mut api) = bearer_stack::<Full<Bytes>>(&tokens);
    let refresh = RefreshOn401Layer::new(tokens.clone()).max_replays(2);
    let call = tokio::spawn(refresh.layer(bearer).oneshot(get("/x")));
    for _ in 0..3 {
        let (_, respond) = api.next_request().await.unwrap();
        respond.send_response(empty(StatusCode::UNAUTHORIZED));
    }
    assert_eq!(
        call.await.unwrap().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_no_more_requests(&mut api).await;
    assert_eq!(tokens.stats().fetches, 3);
}

#[tokio::test(start_paused = true)]
async fn other_statuses_and_tokenless_401s_are_not_replayed() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    let (bearer, mut api) = bearer_stack::<Full<Bytes>>(&tokens);
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let stats = refresh.stats();
    let svc = refresh.layer(bearer);
    for (uri, status) in [
        ("/x", StatusCode::FORBIDDEN),
        ("https://other.example.org/", StatusCode::UNAUTHORIZED),
    ] {
        let call = tokio::spawn(svc.clone().oneshot(get(uri)));
        let (_, respond) = api.next_request().await.unwrap();
        respond.send_response(empty(status));
        assert_eq!(call.await.unwrap().unwrap().status(), status);
    }
    assert_eq!(stats.replays(), 0);
    assert_eq!(tokens.stats().invalidations, 0);
}

/// A service that counts how often it is cloned.
struct CountClones<S> {
    inner: S,
    clones: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: Clone> Clone for CountClones<S> {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        CountClones {
            inner: self.inner.clone(),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl<S: tower::Service<R>, R> tower::Service<R> for CountClones<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.inner.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn inner_service_is_cloned_once_per_service_and_once_per_replay() {
    let clones = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |_: Request<Full<Bytes>>| {
            // The fifth call (the third through `on`) is rejected, the rest accepted.
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let status = if n == 4 { 401 } else { 200 };
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok::<_, BoxError>(response)
            }
        })
    };
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    tokens.token().await.unwrap();
    let inner = CountClones {
        inner,
        clones: Arc::clone(&clones),
    };
    let mut off = RefreshOn401::new(inner.clone(), tokens.clone()).max_replays(0);
    let mut on = tower::ServiceBuilder::new()
        .layer(RefreshOn401Layer::new(tokens.clone()))
        .layer(BearerLayer::new(tokens, Origin::parse(API).unwrap()))
        .service(inner);
    clones.store(0, Ordering::SeqCst);

    for _ in 0..2 {
        let response = (&mut off).oneshot(get(API)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(clones.load(Ordering::SeqCst), 0, "replays off: no clone");
    // Requests that could be replayed but are not: one spare for the service, not one clone
    // per request.
    for _ in 0..2 {
        let response = (&mut on).oneshot(get(API)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(clones.load(Ordering::SeqCst), 1, "one spare per service");
    // The third request is rejected and replayed through a clone of the spare.
    let response = (&mut on).oneshot(get(API)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(on.stats().replays(), 1);
    // One for the replay, and one by `Bearer` to fetch the new token (its own slow path).
    assert_eq!(clones.load(Ordering::SeqCst), 3, "one clone per replay");
    // A clone of the service shares its spare; a replay clones the spare once.
    let mut clone = on.clone();
    clones.store(0, Ordering::SeqCst);
    for _ in 0..3 {
        (&mut clone).oneshot(get(API)).await.unwrap();
    }
    assert_eq!(clones.load(Ordering::SeqCst), 0, "clones share the spare");
}
