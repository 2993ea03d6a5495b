use super::*;

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_callers_on_an_empty_cache_cause_one_fetch() {
    let (source, calls) = counting_source(Duration::from_secs(1), None);
    let cache = TokenCache::new(source);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    let tokens: Vec<Token> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().fetches, 1);
    assert!(tokens.iter().all(|t| t.id() == tokens[0].id()));
    assert_eq!(tokens[0].header_value(), "Bearer token-1");
}

#[tokio::test(start_paused = true)]
async fn failing_fetch_reaches_every_waiter_and_the_next_call_fetches_again() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let cache = TokenCache::new(token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if n == 1 {
                Err(TokenError::Status(StatusCode::SERVICE_UNAVAILABLE))
            } else {
                Token::bearer("fresh", None)
            }
        }
    }));
    let results = join_all((0..50).map(|_| cache.token())).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(TokenError::Status(s)) if *s == 503)));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for all waiters");
    assert_eq!(cache.stats().failures, 1);

    let token = cache.token().await.unwrap();
    assert_eq!(token.header_value(), "Bearer fresh");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the failure was not remembered"
    );
}

#[tokio::test(start_paused = true)]
async fn valid_token_is_served_from_the_cache() {
    let (source, calls) = counting_source(Duration::ZERO, Some(Duration::from_secs(3600)));
    let cache = TokenCache::new(source);
    let first = cache.token().await.unwrap();
    tokio::time::advance(Duration::from_secs(3000)).await;
    let again = cache.token().await.unwrap();
    assert_eq!(first.id(), again.id());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn invalidate_drops_only_the_current_token() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let cache = TokenCache::new(source);
    let first = cache.token().await.unwrap();
    assert!(cache.invalidate(&first));
    let second = cache.token().await.unwrap();
    assert_ne!(first.id(), second.id());
    // A late rejection of the old token leaves the new one alone.
    assert!(!cache.invalidate(&first));
    assert_eq!(cache.token().await.unwrap().id(), second.id());
    assert_eq!(
        cache.stats(),
        TokenCacheStats {
            fetches: 2,
            failures: 0,
            invalidations: 1,
            deferred_invalidations: 0,
        }
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_lead_is_capped_at_half_the_lifetime() {
    let (source, calls) = counting_source(Duration::ZERO, Some(Duration::from_secs(100)));
    let cache = TokenCache::new(source).refresh_before(Duration::from_secs(60));
    let first = cache.token().await.unwrap();
    // 100 s token, 60 s lead would refresh at 40 s; half-life caps the lead at 50 s.
    tokio::time::advance(Duration::from_secs(45)).await;
    assert_eq!(cache.token().await.unwrap().id(), first.id());
    tokio::task::yield_now().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "not due before half its lifetime"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    // Due: the still-valid token is served while a refresh runs in the background.
    assert_eq!(cache.token().await.unwrap().id(), first.id());
    tokio::task::yield_now().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_ne!(cache.token().await.unwrap().id(), first.id());
}

#[tokio::test(start_paused = true)]
async fn failed_background_refresh_keeps_serving_the_valid_token() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let cache = TokenCache::new(token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            match n {
                1 => Token::bearer("first", Some(Duration::from_secs(10))),
                _ => Err(TokenError::Status(StatusCode::BAD_GATEWAY)),
            }
        }
    }));
    let first = cache.token().await.unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(cache.token().await.unwrap().id(), first.id());
    tokio::task::yield_now().await;
    assert_eq!(cache.stats().failures, 1);
    assert_eq!(
        cache.token().await.unwrap().id(),
        first.id(),
        "still valid, still served"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(cache.token().await.is_err(), "expired and no fresh token");
}
