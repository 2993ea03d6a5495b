use super::*;

#[tokio::test(start_paused = true)]
async fn token_for_a_foreign_origin_is_not_attached() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    let (svc, mut handle) = bearer_stack::<Full<Bytes>>(&tokens);
    for uri in [
        "https://evil.example.net/steal",
        "https://api.example.com.evil.net/",
        "http://api.example.com/",
        "https://api.example.com:8443/",
    ] {
        let call = tokio::spawn(svc.clone().oneshot(get(uri)));
        let (req, respond) = handle.next_request().await.unwrap();
        assert_eq!(auth_header(&req), None, "{uri}");
        respond.send_response(empty(StatusCode::OK));
        let response = call.await.unwrap().unwrap();
        assert!(response.extensions().get::<TokenId>().is_none());
    }
    assert_eq!(
        tokens.stats().fetches,
        0,
        "no token fetched for foreign origins"
    );

    for uri in ["https://API.example.com:443/v2/users", "/v2/users"] {
        let call = tokio::spawn(svc.clone().oneshot(get(uri)));
        let (req, respond) = handle.next_request().await.unwrap();
        assert_eq!(
            auth_header(&req).as_deref(),
            Some("Bearer token-1"),
            "{uri}"
        );
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        respond.send_response(empty(StatusCode::UNAUTHORIZED));
        let response = call.await.unwrap().unwrap();
        assert!(response.extensions().get::<TokenId>().is_some(), "{uri}");
    }
}

#[tokio::test(start_paused = true)]
async fn token_id_is_attached_to_401_responses_only() {
    let (source, _) = counting_source(Duration::ZERO, None);
    let tokens = TokenCache::new(source);
    let (svc, mut handle) = bearer_stack::<Full<Bytes>>(&tokens);
    for (status, expect_id) in [
        (StatusCode::OK, false),
        (StatusCode::FORBIDDEN, false),
        (StatusCode::TOO_MANY_REQUESTS, false),
        (StatusCode::UNAUTHORIZED, true),
    ] {
        let call = tokio::spawn(svc.clone().oneshot(get("https://api.example.com/x")));
        let (req, respond) = handle.next_request().await.unwrap();
        assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-1"));
        respond.send_response(empty(status));
        let response = call.await.unwrap().unwrap();
        let sent = response.extensions().get::<TokenId>().copied();
        assert_eq!(sent.is_some(), expect_id, "{status}");
        if let Some(sent) = sent {
            assert_eq!(Some(sent), tokens.cached().map(|t| t.id()));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn token_errors_are_downcastable_from_box_error() {
    let tokens = TokenCache::new(token_source_fn(|| async {
        Err(TokenError::Rejected {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client".into(),
            description: None,
        })
    }));
    let (svc, _handle) = bearer_stack::<Full<Bytes>>(&tokens);
    let err: BoxError = svc
        .oneshot(get("https://api.example.com/x"))
        .await
        .unwrap_err();
    let token_error = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert!(matches!(token_error, TokenError::Rejected { .. }));
}

#[tokio::test(start_paused = true)]
async fn short_lived_token_is_refreshed_before_it_expires_and_never_sent_after() {
    // The token endpoint issues token-1, token-2, … each with `expires_in: 2`.
    let issued: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (source, mut token_handle) = client_credentials();
    let endpoint = tokio::spawn({
        let issued = Arc::clone(&issued);
        async move {
            let mut n = 0;
            while let Some((_, respond)) = token_handle.next_request().await {
                n += 1;
                issued
                    .lock()
                    .unwrap()
                    .insert(format!("Bearer token-{n}"), Instant::now());
                respond.send_response(token_json(&format!("token-{n}"), 2));
            }
        }
    });
    let tokens = TokenCache::new(source);
    let (svc, mut api) = bearer_stack::<Full<Bytes>>(&tokens);
    let started = Instant::now();
    let mut sent = Vec::new();
    while Instant::now() - started < Duration::from_secs(10) {
        let call = tokio::spawn(svc.clone().oneshot(get("https://api.example.com/x")));
        let (req, respond) = api.next_request().await.unwrap();
        sent.push((auth_header(&req).unwrap(), Instant::now()));
        respond.send_response(empty(StatusCode::OK));
        call.await.unwrap().unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let issued = issued.lock().unwrap().clone();
    for (token, at) in &sent {
        let expires = issued[token] + Duration::from_secs(2);
        assert!(
            *at < expires,
            "{token} sent {:?} after it expired",
            *at - expires
        );
    }
    // Each token was replaced while it was still valid, after about half its life.
    let mut issue_times: Vec<Instant> = issued.values().copied().collect();
    issue_times.sort();
    for pair in issue_times.windows(2) {
        let age = pair[1] - pair[0];
        assert!(
            age >= Duration::from_millis(900) && age < Duration::from_secs(2),
            "{age:?}"
        );
    }
    assert!(
        (5..=11).contains(&issue_times.len()),
        "{} fetches",
        issue_times.len()
    );
    drop(tokens);
    drop(svc);
    endpoint.abort();
}
