use super::*;

#[tokio::test(start_paused = true)]
async fn token_request_is_a_basic_authenticated_form_post() {
    let (source, mut handle) = client_credentials();
    let source = source.scope("analytics users:read");
    let fetch = tokio::spawn(source.fetch());
    let (req, respond) = handle.next_request().await.unwrap();
    assert_eq!(req.method(), http::Method::POST);
    assert_eq!(req.uri(), "https://login.example.com/oauth/token");
    let basic = req.headers()[AUTHORIZATION].clone();
    assert!(basic.is_sensitive());
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("client-id:{SECRET}"));
    assert_eq!(basic, format!("Basic {expected}").as_str());
    assert_eq!(
        req.headers()[CONTENT_TYPE],
        "application/x-www-form-urlencoded"
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body,
        "grant_type=client_credentials&scope=analytics+users%3Aread"
    );
    respond.send_response(token_json("abc", 120));
    let token = fetch.await.unwrap().unwrap();
    assert_eq!(token.header_value(), "Bearer abc");
    assert!(token.header_value().is_sensitive());
    assert_eq!(
        token.expires_at(),
        Some(Instant::now() + Duration::from_secs(120))
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_credentials_fetch_once_and_are_not_retried() {
    let (source, mut handle) = client_credentials();
    let cache = TokenCache::new(source);
    let call = tokio::spawn({
        let cache = cache.clone();
        async move { cache.token().await }
    });
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#.into(),
    ));
    let err = call.await.unwrap().unwrap_err();
    match &err {
        TokenError::Rejected {
            status,
            error,
            description,
        } => {
            assert_eq!(*status, StatusCode::UNAUTHORIZED);
            assert_eq!(error, "invalid_client");
            assert_eq!(description.as_deref(), Some("client authentication failed"));
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_transient());
    // No retry follows, however long we wait.
    assert_no_more_requests(&mut handle).await;
    assert_eq!(cache.stats().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn bad_request_without_json_is_rejected_as_unknown() {
    let (source, mut handle) = client_credentials();
    let fetch = tokio::spawn(source.fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(json(StatusCode::BAD_REQUEST, "nope".into()));
    let err = fetch.await.unwrap().unwrap_err();
    assert!(
        matches!(err, TokenError::Rejected { ref error, status, .. } if error == "unknown" && status == 400)
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejection_that_echoes_the_secret_does_not_carry_it_into_the_error() {
    let (source, mut handle) = client_credentials();
    let fetch = tokio::spawn(source.fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(json(
        StatusCode::BAD_REQUEST,
        format!(r#"{{"error":"bad {SECRET}","error_description":"secret {SECRET} is wrong"}}"#),
    ));
    let err = fetch.await.unwrap().unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        matches!(&err, TokenError::Rejected { description: Some(d), .. } if d == "secret [redacted] is wrong"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_down_for_ten_seconds_is_ridden_out() {
    let (source, mut handle) = client_credentials();
    let started = Instant::now();
    let fetch = tokio::spawn(source.fetch());
    let mut attempts = 0;
    let mut last_attempt = started;
    loop {
        let (_, respond) = handle.next_request().await.unwrap();
        attempts += 1;
        assert!(Instant::now() >= last_attempt, "attempts in order");
        last_attempt = Instant::now();
        if Instant::now() - started < Duration::from_secs(10) {
            // Alternate the transient kinds: 503, 429, connection error.
            match attempts % 3 {
                0 => respond.send_error(std::io::Error::other("connection refused")),
                1 => respond.send_response(empty(StatusCode::SERVICE_UNAVAILABLE)),
                _ => respond.send_response(empty(StatusCode::TOO_MANY_REQUESTS)),
            }
        } else {
            respond.send_response(token_json("after-outage", 60));
            break;
        }
    }
    let token = fetch.await.unwrap().unwrap();
    assert_eq!(token.header_value(), "Bearer after-outage");
    assert!(attempts > 3 && attempts <= 10, "{attempts} attempts");
    assert!(Instant::now() - started <= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_down_past_the_limits_gives_unavailable() {
    let (source, mut handle) = client_credentials();
    let source = source
        .max_attempts(4)
        .backoff(Duration::from_secs(1), Duration::from_secs(2));
    let started = Instant::now();
    let fetch = tokio::spawn(source.fetch());
    let mut attempts = 0;
    while let Ok(Some((_, respond))) =
        tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await
    {
        attempts += 1;
        respond.send_response(empty(StatusCode::BAD_GATEWAY));
    }
    assert_eq!(attempts, 4);
    let err = fetch.await.unwrap().unwrap_err();
    assert!(
        matches!(err, TokenError::Unavailable { attempts: 4, .. }),
        "{err:?}"
    );
    // Three waits of at least half the (doubling, capped) delay: 0.5 + 1 + 1.
    assert!(Instant::now() - started >= Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_total_time_limit() {
    let (source, mut handle) = client_credentials();
    let source = source.max_attempts(100).max_elapsed(Duration::from_secs(5));
    let started = Instant::now();
    let fetch = tokio::spawn(source.fetch());
    while let Ok(Some((_, respond))) =
        tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await
    {
        assert!(
            Instant::now() - started <= Duration::from_secs(5),
            "attempt past the limit"
        );
        respond.send_response(empty(StatusCode::SERVICE_UNAVAILABLE));
    }
    assert!(matches!(
        fetch.await.unwrap(),
        Err(TokenError::Unavailable { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn oversized_token_response_is_refused() {
    let (source, mut handle) = client_credentials();
    let fetch = tokio::spawn(source.body_limit(64).fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(token_json(&"x".repeat(100), 60));
    assert!(matches!(
        fetch.await.unwrap(),
        Err(TokenError::BodyTooLarge { limit: 64 })
    ));
}

#[tokio::test(start_paused = true)]
async fn malformed_token_responses_are_typed_errors() {
    for (body, what) in [
        (r#"{"token_type":"bearer"}"#, "not a token response"),
        (
            r#"{"access_token":"a","token_type":"mac"}"#,
            "unsupported token type",
        ),
        (r#"{"access_token":"a b\u0001"}"#, "visible ascii"),
        (r#"{"access_token":"a","expires_in":"soon"}"#, "expires_in"),
        ("<html>", "not a token response"),
    ] {
        let (source, mut handle) = client_credentials();
        let fetch = tokio::spawn(source.fetch());
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(json(StatusCode::OK, body.into()));
        let err = fetch.await.unwrap().unwrap_err();
        assert!(
            matches!(err, TokenError::InvalidResponse(_)),
            "{body}: {err:?}"
        );
        assert!(err.to_string().contains(what), "{body}: {err}");
    }
}

/// Fetches a token from an endpoint that answers `body` with 200.
async fn fetch_answered(body: serde_json::Value) -> Result<Token, TokenError> {
    let (source, mut handle) = client_credentials();
    let fetch = tokio::spawn(source.fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(json(StatusCode::OK, body.to_string()));
    fetch.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn access_tokens_outside_visible_ascii_are_refused_without_echoing_them() {
    for bad in [
        "",
        "SECRET-PART with-a-space",
        "SECRET-PART\twith-a-tab",
        "SECRET-PART\u{1}",
        "SECRET-PART\u{7f}",
        "SECRET-PART-caf\u{e9}",
        "SECRET-PART-\u{200b}",
    ] {
        let body =
            serde_json::json!({"access_token": bad, "token_type": "Bearer", "expires_in": 60});
        let err = fetch_answered(body).await.unwrap_err();
        assert!(
            matches!(err, TokenError::InvalidResponse(_)),
            "{bad:?}: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SECRET-PART"), "{bad:?}: {shown}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_visible_ascii_access_token_is_taken_as_is() {
    let visible: String = (0x21u8..=0x7e).map(char::from).collect();
    for token in [visible.as_str(), "mF_9.B5f-4.1JqM", "YWJj+/Z==", "~"] {
        let body =
            serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 60});
        let got = fetch_answered(body).await.unwrap();
        assert_eq!(
            got.header_value().as_bytes(),
            format!("Bearer {token}").as_bytes()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn token_type_must_be_bearer_in_any_case_when_present() {
    for kind in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let body = serde_json::json!({"access_token": "tok", "token_type": kind});
        assert!(fetch_answered(body).await.is_ok(), "{kind}");
    }
    let body = serde_json::json!({"access_token": "tok"});
    assert!(fetch_answered(body).await.is_ok(), "no token_type");
    for kind in ["mac", "DPoP", "bearer ", "", "N_A"] {
        let body = serde_json::json!({"access_token": "SECRET-PART-tok", "token_type": kind});
        let err = fetch_answered(body).await.unwrap_err();
        assert!(
            matches!(err, TokenError::InvalidResponse(_)),
            "{kind:?}: {err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("unsupported token type"),
            "{kind:?}: {shown}"
        );
        assert!(!shown.contains("SECRET-PART"), "{kind:?}: {shown}");
    }
}

#[tokio::test(start_paused = true)]
async fn plain_http_token_url_is_refused_unless_loopback() {
    let (service, mut handle) = mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let remote = ClientCredentials::new(
        "http://login.example.com/token".parse().unwrap(),
        "id",
        SecretString::from(SECRET),
        service.clone(),
    );
    assert!(matches!(
        remote.fetch().await,
        Err(TokenError::InsecureTokenUrl)
    ));
    let local = ClientCredentials::new(
        "http://127.0.0.1:9/token".parse().unwrap(),
        "id",
        SecretString::from(SECRET),
        service,
    );
    let fetch = tokio::spawn(local.fetch());
    let (req, respond) = handle.next_request().await.unwrap();
    assert_eq!(req.uri(), "http://127.0.0.1:9/token");
    respond.send_response(token_json("local", 60));
    assert!(fetch.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn absurd_numbers_from_the_endpoint_do_not_panic() {
    let (source, mut handle) = client_credentials();
    let fetch = tokio::spawn(source.max_elapsed(Duration::from_secs(5)).fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    let mut busy = empty(StatusCode::TOO_MANY_REQUESTS);
    busy.headers_mut().insert(
        http::header::RETRY_AFTER,
        "18446744073709551615".parse().unwrap(),
    );
    respond.send_response(busy);
    // A wait past the time limit is not waited: the fetch gives up at once.
    let err = fetch.await.unwrap().unwrap_err();
    assert!(
        matches!(err, TokenError::Unavailable { attempts: 1, .. }),
        "{err:?}"
    );

    let (source, mut handle) = client_credentials();
    let fetch = tokio::spawn(source.fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(token_json("forever", u64::MAX));
    let token = fetch.await.unwrap().unwrap();
    assert_eq!(
        token.expires_at(),
        None,
        "an unrepresentable lifetime means no expiry"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_endpoint_is_honoured() {
    let (source, mut handle) = client_credentials();
    let started = Instant::now();
    let fetch = tokio::spawn(source.fetch());
    let (_, respond) = handle.next_request().await.unwrap();
    let mut busy = empty(StatusCode::TOO_MANY_REQUESTS);
    busy.headers_mut()
        .insert(http::header::RETRY_AFTER, "7".parse().unwrap());
    respond.send_response(busy);
    let (_, respond) = handle.next_request().await.unwrap();
    assert!(
        Instant::now() - started >= Duration::from_secs(7),
        "retried before Retry-After"
    );
    respond.send_response(token_json("later", 60));
    assert!(fetch.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_lifetime_under_a_second_is_an_endpoint_fault_retried_within_bounds() {
    let (source, mut handle) = client_credentials();
    let tokens = TokenCache::new(source.max_attempts(3));
    let fetch = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.token().await }
    });
    let mut attempts = 0;
    while let Ok(Some((_, respond))) =
        tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await
    {
        attempts += 1;
        let body = r#"{"access_token":"short-lived","token_type":"bearer","expires_in":0.5}"#;
        respond.send_response(json(StatusCode::OK, body.into()));
    }
    assert_eq!(attempts, 3, "bounded retries, not a fetch per request");
    let err = fetch.await.unwrap().unwrap_err();
    let TokenError::Unavailable { attempts: 3, last } = &err else {
        panic!("{err:?}");
    };
    assert!(
        matches!(**last, TokenError::LifetimeTooShort { .. }),
        "{last:?}"
    );

    // A zero lifetime followed by a sound answer: the sound token is used.
    let fetch = tokio::spawn(async move { tokens.token().await });
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(token_json("zero", 0));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(token_json("sound", 3600));
    let token = fetch.await.unwrap().unwrap();
    assert_eq!(token.header_value(), "Bearer sound");
}

#[tokio::test(start_paused = true)]
async fn plain_http_in_a_private_network_is_refused_at_construction_unless_opted_in() {
    let (service, mut handle) = mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let url: http::Uri = "http://auth:8080/oauth/token".parse().unwrap();
    let refused = ClientCredentials::try_new(
        url.clone(),
        "id",
        SecretString::from(SECRET),
        service.clone(),
    );
    assert!(matches!(refused, Err(TokenError::InsecureTokenUrl)));
    for ok in [
        "https://login.example.com/token",
        "http://localhost:9/token",
    ] {
        let grant = ClientCredentials::try_new(
            ok.parse().unwrap(),
            "id",
            SecretString::from(SECRET),
            service.clone(),
        );
        assert!(grant.is_ok(), "{ok}");
    }

    let grant =
        ClientCredentials::new(url, "id", SecretString::from(SECRET), service).allow_plain_http();
    assert!(grant.check().is_ok());
    let fetch = tokio::spawn(grant.fetch());
    let (req, respond) = handle.next_request().await.unwrap();
    assert_eq!(req.uri(), "http://auth:8080/oauth/token");
    respond.send_response(token_json("private", 60));
    assert!(fetch.await.unwrap().is_ok());
}

/// An API client's own request body type, buildable from `Bytes`.
struct ApiBody(Full<Bytes>);

impl From<Bytes> for ApiBody {
    fn from(bytes: Bytes) -> Self {
        ApiBody(Full::new(bytes))
    }
}

#[tokio::test(start_paused = true)]
async fn the_grant_shares_a_client_whose_body_type_is_not_full_bytes() {
    let (service, mut handle) = mock::pair::<Request<ApiBody>, Response<Full<Bytes>>>();
    let grant = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        "client-id",
        SecretString::from(SECRET),
        service,
    )
    .request_body::<ApiBody>();
    let tokens = TokenCache::new(grant);
    let fetch = tokio::spawn(async move { tokens.token().await });
    let (req, respond) = handle.next_request().await.unwrap();
    let form = req.into_body().0.collect().await.unwrap().to_bytes();
    assert_eq!(form, "grant_type=client_credentials");
    respond.send_response(token_json("shared-client", 3600));
    assert_eq!(
        fetch.await.unwrap().unwrap().header_value(),
        "Bearer shared-client"
    );
}
