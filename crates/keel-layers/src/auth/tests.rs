//! The auth suite: layers driven with tower-test mocks, time paused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use secrecy::SecretString;
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt};
use tower_test::mock;

use super::*;

const SECRET: &str = "s3cr3t-client-secret";
const API: &str = "https://api.example.com";

type TokenHandle = mock::Handle<Request<Full<Bytes>>, Response<Full<Bytes>>>;
type TokenEndpoint = mock::Mock<Request<Full<Bytes>>, Response<Full<Bytes>>>;
type Api<B> = mock::Mock<Request<B>, Response<Full<Bytes>>>;

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn token_json(token: &str, expires_in: u64) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#),
    )
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    json(status, String::new())
}

/// A `ClientCredentials` over a tower-test mock token endpoint.
fn client_credentials() -> (ClientCredentials<TokenEndpoint>, TokenHandle) {
    let (service, handle) = mock::pair();
    let source = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        "client-id",
        SecretString::from(SECRET),
        service,
    );
    (source, handle)
}

/// A source that hands out `token-1`, `token-2`, … after `delay`, counting its calls.
fn counting_source(
    delay: Duration,
    expires_in: Option<Duration>,
) -> (impl TokenSource, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let source = token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Token::bearer(&format!("token-{n}"), expires_in)
        }
    });
    (source, calls)
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// Asserts that the mock sees no further request, however long we wait (time is paused).
async fn assert_no_more_requests<T, U>(handle: &mut mock::Handle<T, U>) {
    let next = tokio::time::timeout(Duration::from_secs(300), handle.next_request()).await;
    assert!(
        !matches!(next, Ok(Some(_))),
        "an unexpected request was sent"
    );
}

fn auth_header<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned())
}

// ---------------------------------------------------------------- TokenCache

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
            invalidations: 1
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

// --------------------------------------------------------- ClientCredentials

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
        (
            r#"{"access_token":"a b\u0001"}"#,
            "not a valid header value",
        ),
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

// ------------------------------------------------------------------- Bearer

type ApiHandle<B> = mock::Handle<Request<B>, Response<Full<Bytes>>>;

fn bearer_stack<B>(tokens: &TokenCache) -> (Bearer<Api<B>>, ApiHandle<B>) {
    let (api, handle) = mock::pair();
    let layer = BearerLayer::new(tokens.clone(), Origin::parse(API).unwrap());
    (layer.layer(api), handle)
}

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
        respond.send_response(empty(StatusCode::OK));
        let response = call.await.unwrap().unwrap();
        assert!(response.extensions().get::<TokenId>().is_some());
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

// -------------------------------------------------------------- RefreshOn401

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
    let tokens = TokenCache::new(source);
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

mod streaming {
    use super::*;
    use crate::replay::{ReplayBody, ReplayBodyLayer};
    use http_body::Frame;
    use http_body_util::StreamBody;
    use std::convert::Infallible;
    use tokio::sync::mpsc;

    type Chunk = Result<Frame<Bytes>, Infallible>;
    type Channel = StreamBody<futures_util::stream::BoxStream<'static, Chunk>>;

    fn channel_body() -> (mpsc::UnboundedSender<Chunk>, Channel) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (
            tx,
            StreamBody::new(Box::pin(stream) as futures_util::stream::BoxStream<'static, Chunk>),
        )
    }

    fn chunk(s: &str) -> Chunk {
        Ok(Frame::data(Bytes::copy_from_slice(s.as_bytes())))
    }

    #[tokio::test(start_paused = true)]
    async fn streaming_body_is_replayed_after_a_401_that_came_before_it_was_fully_sent() {
        let (source, _) = counting_source(Duration::ZERO, None);
        let tokens = TokenCache::new(source);
        let (bearer, mut api) = bearer_stack::<ReplayBody<Channel>>(&tokens);
        let svc =
            ReplayBodyLayer::new(1024).layer(RefreshOn401Layer::new(tokens.clone()).layer(bearer));

        let (tx, body) = channel_body();
        tx.send(chunk("part-1;")).unwrap();
        let request = Request::post("/upload").body(body).unwrap();
        let call = tokio::spawn(svc.oneshot(request));

        // First attempt: the server reads one chunk and answers 401 before the rest is sent.
        let (req, respond) = api.next_request().await.unwrap();
        let mut first = req.into_body();
        let data = first.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, "part-1;");
        respond.send_response(empty(StatusCode::UNAUTHORIZED));
        drop(first);

        // The replay gets every byte once: the kept chunk, then the rest of the original.
        let (req, respond) = api.next_request().await.unwrap();
        assert_eq!(auth_header(&req).as_deref(), Some("Bearer token-2"));
        tx.send(chunk("part-2;")).unwrap();
        tx.send(chunk("part-3")).unwrap();
        drop(tx);
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "part-1;part-2;part-3");
        respond.send_response(empty(StatusCode::OK));
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn body_over_the_replay_cap_returns_the_401_as_is() {
        let (source, _) = counting_source(Duration::ZERO, None);
        let tokens = TokenCache::new(source);
        let (bearer, mut api) = bearer_stack::<ReplayBody<Channel>>(&tokens);
        let refresh = RefreshOn401Layer::new(tokens.clone());
        let stats = refresh.stats();
        let svc = ReplayBodyLayer::new(8).layer(refresh.layer(bearer));

        let (tx, body) = channel_body();
        tx.send(chunk("0123456789")).unwrap();
        tx.send(chunk("abcdef")).unwrap();
        drop(tx);
        let call = tokio::spawn(svc.oneshot(Request::post("/upload").body(body).unwrap()));
        let (req, respond) = api.next_request().await.unwrap();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body, "0123456789abcdef",
            "the first attempt still sends everything"
        );
        respond.send_response(json(StatusCode::UNAUTHORIZED, "denied".into()));

        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_no_more_requests(&mut api).await;
        assert_eq!(stats.replays(), 0);
        assert_eq!(stats.not_replayable(), 1);
        assert_eq!(tokens.stats().invalidations, 0);
    }
}

// -------------------------------------------------------------------- secrets
// NOTE: the TRACE-capture test lives in `tests/auth_logs.rs`: it needs a global subscriber,
// which a test binary shared with other tests cannot install reliably.

mod secrets {
    use super::*;

    #[test]
    fn debug_output_and_errors_redact_secrets() {
        let token = Token::bearer("very-private-token", None).unwrap();
        let debug = format!("{token:?}");
        assert!(
            debug.contains("[redacted]") && !debug.contains("very-private"),
            "{debug}"
        );
        let (source, _handle) = client_credentials();
        let debug = format!("{source:?}");
        assert!(
            debug.contains("[redacted]") && !debug.contains(SECRET),
            "{debug}"
        );
        let err = Token::bearer("bad\ntoken-value", None).unwrap_err();
        assert!(!err.to_string().contains("token-value"), "{err}");
    }
}
