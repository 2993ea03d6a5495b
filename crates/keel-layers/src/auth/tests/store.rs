//! The token-store seam ([`TokenSource::invalidate`]) and the cache's robustness: the
//! invalidation floor, fetches abandoned by their waiters, panicking sources and a token that
//! is already due when it is stored.

use std::sync::mpsc;

use super::*;

/// A source handing out `token-1`, `token-2`, … that logs its fetches and invalidations; its
/// invalidation takes `invalidate_delay`.
#[derive(Clone)]
struct LoggingSource {
    log: Arc<Mutex<Vec<String>>>,
    issued: Arc<AtomicU32>,
    invalidate_delay: Duration,
}

impl LoggingSource {
    fn new(invalidate_delay: Duration) -> Self {
        LoggingSource {
            log: Arc::default(),
            issued: Arc::default(),
            invalidate_delay,
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn invalidations(&self) -> usize {
        self.log()
            .iter()
            .filter(|e| e.starts_with("invalidated"))
            .count()
    }
}

impl TokenSource for LoggingSource {
    fn fetch(&self) -> FetchFuture {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.lock().unwrap().push(format!("fetch token-{n}"));
        Box::pin(async move { Token::bearer(&format!("token-{n}"), None) })
    }

    fn invalidate(&self, rejected: &Token) -> InvalidateFuture {
        let (log, delay) = (Arc::clone(&self.log), self.invalidate_delay);
        let value = rejected.header_value().to_str().unwrap().to_owned();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            log.lock().unwrap().push(format!("invalidated {value}"));
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_rejections_tells_the_source_once() {
    let source = LoggingSource::new(Duration::ZERO);
    let cache = TokenCache::new(source.clone());
    let first = cache.token().await.unwrap();
    let dropped = (0..50).filter(|_| cache.invalidate(&first)).count();
    assert_eq!(dropped, 1);
    let second = cache.token().await.unwrap();
    assert_ne!(second.id(), first.id());
    assert_eq!(source.invalidations(), 1);
    assert_eq!(
        source.log(),
        [
            "fetch token-1",
            "invalidated Bearer token-1",
            "fetch token-2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_next_fetch_starts_after_the_source_forgot_the_token() {
    let source = LoggingSource::new(Duration::from_secs(5));
    let cache = TokenCache::new(source.clone());
    let first = cache.token().await.unwrap();
    let rejected_at = Instant::now();
    assert!(cache.invalidate(&first));
    let waiters = join_all((0..10).map(|_| cache.token())).await;
    assert!(waiters
        .iter()
        .all(|t| t.as_ref().unwrap().header_value() == "Bearer token-2"));
    assert_eq!(
        rejected_at.elapsed(),
        Duration::from_secs(5),
        "waited for the hook"
    );
    assert_eq!(
        source.log(),
        [
            "fetch token-1",
            "invalidated Bearer token-1",
            "fetch token-2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_source_is_told_even_when_no_fetch_follows() {
    let source = LoggingSource::new(Duration::from_secs(1));
    let cache = TokenCache::new(source.clone());
    let first = cache.token().await.unwrap();
    assert!(cache.invalidate(&first));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(source.invalidations(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stale_rejection_does_not_reach_the_source() {
    let source = LoggingSource::new(Duration::ZERO);
    let cache = TokenCache::new(source.clone()).invalidation_floor(Duration::ZERO);
    let first = cache.token().await.unwrap();
    assert!(cache.invalidate(&first));
    let second = cache.token().await.unwrap();
    assert!(!cache.invalidate(&first));
    assert_eq!(cache.token().await.unwrap().id(), second.id());
    tokio::task::yield_now().await;
    assert_eq!(source.invalidations(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shared_source_behind_an_arc_composes() {
    let inner = LoggingSource::new(Duration::ZERO);
    let shared: Arc<dyn TokenSource> = Arc::new(inner.clone());
    // A wrapper source (as a shared store would be) that is itself a `TokenSource`.
    let cache = TokenCache::new(Arc::clone(&shared));
    let other = TokenCache::new(Box::new(shared) as Box<dyn TokenSource>);
    let first = cache.token().await.unwrap();
    other.token().await.unwrap();
    assert!(cache.invalidate(&first));
    cache.token().await.unwrap();
    assert_eq!(
        inner.invalidations(),
        1,
        "invalidate reaches through Arc<dyn _>"
    );
    assert_eq!(inner.issued.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn rejections_within_the_floor_keep_the_token_until_the_floor_ends() {
    let source = LoggingSource::new(Duration::ZERO);
    let cache = TokenCache::new(source.clone()).invalidation_floor(Duration::from_secs(1));
    let first = cache.token().await.unwrap();
    assert!(cache.invalidate(&first));
    let second = cache.token().await.unwrap();
    // A caller provoking 401s at will: each request sees the current token rejected.
    for _ in 0..100 {
        assert!(!cache.invalidate(&second));
        assert_eq!(cache.token().await.unwrap().id(), second.id());
    }
    assert_eq!(cache.stats().fetches, 2, "no fetch per request");
    assert_eq!(cache.stats().deferred_invalidations, 1);
    assert_eq!(source.invalidations(), 1);

    assert_eq!(
        cache.replay_not_before(&second),
        Some(Instant::now() + Duration::from_secs(1))
    );

    tokio::time::advance(Duration::from_secs(1)).await;
    // The floor has ended: the deferred rejection is acted on, once.
    assert_eq!(cache.replay_not_before(&second), None);
    assert_eq!(
        cache.token().await.unwrap().header_value(),
        "Bearer token-3"
    );
    assert_eq!(cache.stats().fetches, 3);
    assert_eq!(source.invalidations(), 2);
    assert_eq!(
        source.log()[3..],
        ["invalidated Bearer token-2", "fetch token-3"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_replay_after_a_rejection_inside_the_floor_waits_for_a_fresh_token() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source).invalidation_floor(Duration::from_secs(1));
    let (bearer, mut api) = bearer_stack::<Full<Bytes>>(&tokens);
    let service = RefreshOn401Layer::new(tokens.clone()).layer(bearer);
    let started = Instant::now();

    // token-1 is revoked: refreshed at once.
    let call = tokio::spawn(service.clone().oneshot(get("/a")));
    let (req, respond) = api.next_request().await.unwrap();
    assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-1"));
    respond.send_response(empty(StatusCode::UNAUTHORIZED));
    let (req, respond) = api.next_request().await.unwrap();
    assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-2"));
    respond.send_response(empty(StatusCode::OK));
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);

    // token-2 is revoked right away, inside the floor: the replay waits for its end and goes
    // out with token-3, not again with the rejected token-2.
    let call = tokio::spawn(service.clone().oneshot(get("/b")));
    let (req, respond) = api.next_request().await.unwrap();
    assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-2"));
    respond.send_response(empty(StatusCode::UNAUTHORIZED));
    let (req, respond) = api.next_request().await.unwrap();
    assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-3"));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    respond.send_response(empty(StatusCode::OK));
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(tokens.stats().fetches, 3);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_every_waiter_abandoned_finishes_on_its_own_clock() {
    // A source with a 5 s deadline for its own work, which takes 2 s.
    let cache = TokenCache::new(token_source_fn(|| async {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        if started.elapsed() > Duration::from_secs(5) {
            return Err(TokenError::Timeout(Duration::from_secs(5)));
        }
        Token::bearer("fresh", None)
    }));
    let gave_up = tokio::time::timeout(Duration::from_secs(1), cache.token()).await;
    assert!(gave_up.is_err(), "the only waiter gave up");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let token = cache.token().await.unwrap();
    assert_eq!(token.header_value(), "Bearer fresh");
    assert_eq!(cache.stats().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_fails_one_fetch_and_the_next_one_works() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let cache = TokenCache::new(token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n == 1 {
                panic!("source bug");
            }
            Token::bearer("after-the-panic", None)
        }
    }));
    let first = tokio::time::timeout(Duration::from_secs(10), cache.token()).await;
    assert!(matches!(first, Ok(Err(TokenError::Source(_)))), "{first:?}");
    let second = tokio::time::timeout(Duration::from_secs(10), cache.token())
        .await
        .expect("the cache is not stuck");
    assert_eq!(second.unwrap().header_value(), "Bearer after-the-panic");
}

/// Many threads dropping and re-reading a token that is already inside its refresh window
/// when it is stored. A re-check under the flight lock that starts a background refresh
/// would lock the flight again on the same thread and hang every caller.
#[test]
fn a_token_already_due_when_stored_does_not_deadlock() {
    // Minted now with a 2 s lifetime: due (half-life) from 1 s on.
    let minted = Token::bearer("minted-earlier", Some(Duration::from_secs(2))).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let cache = TokenCache::new(token_source_fn(move || {
                let token = minted.clone();
                async move { Ok(token) }
            }))
            .invalidation_floor(Duration::ZERO);
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        let until = std::time::Instant::now() + Duration::from_millis(600);
                        while std::time::Instant::now() < until {
                            let token = cache.token().await.unwrap();
                            cache.invalidate(&token);
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("token callers hung");
}
