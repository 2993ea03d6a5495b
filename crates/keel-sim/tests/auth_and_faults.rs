//! Tokens, revocation, rate limits, scripted and random faults, over real loopback HTTP.

mod common;

use std::time::{Duration, SystemTime};

use common::{page, raw_conversations, TestClient, ALL, DETAILS_QUERY, JOBS};
use http::{Method, StatusCode};
use keel_sim::{Fault, RetryAfterFormat, Simulator};

#[tokio::test]
async fn token_grant_issues_bearer_tokens_and_rejects_bad_requests() {
    let sim = Simulator::builder()
        .credentials("id-1", "s3cret")
        .token_lifetime(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let ok = c
        .token_with(Some(("id-1", "s3cret")), "grant_type=client_credentials")
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let body = ok.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 600);
    assert!(body["access_token"].as_str().unwrap().len() > 20);

    let wrong = c
        .token_with(Some(("id-1", "nope")), "grant_type=client_credentials")
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json()["error"], "invalid_client");
    assert!(!String::from_utf8_lossy(&wrong.body).contains("s3cret"));
    let none = c.token_with(None, "grant_type=client_credentials").await;
    assert_eq!(none.json()["error"], "invalid_client");
    let grant = c
        .token_with(Some(("id-1", "s3cret")), "grant_type=password")
        .await;
    assert_eq!(grant.status, StatusCode::BAD_REQUEST);
    assert_eq!(grant.json()["error"], "unsupported_grant_type");
    let in_form = c
        .token_with(
            None,
            "grant_type=client_credentials&client_id=id-1&client_secret=s3cret",
        )
        .await;
    assert_eq!(in_form.status, StatusCode::OK);
    let s = sim.stats();
    assert_eq!(
        (s.token_requests, s.tokens_issued, s.token_rejections),
        (5, 2, 3)
    );
}

#[tokio::test]
async fn missing_unknown_and_revoked_tokens_get_401_and_are_counted_apart() {
    let sim = Simulator::builder()
        .revoke_after_requests(3)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let none = c.post_json(DETAILS_QUERY, None, &page(ALL, 1, 1)).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let e = none.json();
    assert_eq!(e["status"], 401);
    assert!(e["code"].is_string() && e["message"].is_string());
    assert_eq!(e["contextId"].as_str(), none.header("inin-correlation-id"));
    let unknown = c.query("forged", &page(ALL, 1, 1)).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

    let token = c.token(&sim).await;
    for _ in 0..3 {
        assert_eq!(
            c.query(&token, &page(ALL, 1, 1)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED,
        "4th use of a 3-use token"
    );
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED,
        "revocation sticks"
    );
    let fresh = c.token(&sim).await;
    assert_eq!(
        c.query(&fresh, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    let s = sim.stats();
    assert_eq!(
        (
            s.no_token,
            s.unknown_token,
            s.revoked_token,
            s.expired_token
        ),
        (1, 1, 2, 0)
    );
    assert_eq!(s.unauthorized, 4);
    assert_eq!(s.pages_served, 4);
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_after_their_lifetime_and_early_revocation_comes_first() {
    let sim = Simulator::builder()
        .token_lifetime(Duration::from_secs(3_600))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(3_600)).await;
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sim.stats().expired_token, 1);

    let early = Simulator::builder()
        .token_lifetime(Duration::from_secs(3_600))
        .revoke_after(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&early);
    let token = c.token(&early).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(early.stats().revoked_token, 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_429_with_retry_after_seconds_and_counts_early_returns() {
    let sim = Simulator::builder()
        .rate_limit_per_sec(2)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let first = c.query(&token, &page(ALL, 1, 1)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("inin-ratelimit-allowed"), Some("2"));
    assert_eq!(first.header("inin-ratelimit-count"), Some("1"));
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    let limited = c.query(&token, &page(ALL, 1, 1)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("inin-ratelimit-allowed"), Some("2"));
    assert_eq!(limited.header("inin-ratelimit-count"), Some("2"));
    assert_eq!(limited.header("inin-ratelimit-reset"), Some("1"));
    assert_eq!(limited.json()["status"], 429);
    assert_eq!(sim.stats().early_requests, 0);

    let impatient = c.query(&token, &page(ALL, 1, 1)).await;
    assert_eq!(impatient.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        sim.stats().early_requests,
        1,
        "came back before Retry-After"
    );

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    let s = sim.stats();
    assert_eq!(
        (s.rate_limited, s.early_requests, s.pages_served),
        (2, 1, 3)
    );
}

#[tokio::test]
async fn retry_after_can_be_an_http_date() {
    let sim = Simulator::builder()
        .retry_after_format(RetryAfterFormat::HttpDate)
        .fault(
            1,
            Fault::TooManyRequests {
                retry_after_secs: 5,
            },
        )
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let before = SystemTime::now();
    let r = c.query(&token, &page(ALL, 1, 1)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let at = httpdate::parse_http_date(r.header("retry-after").unwrap()).unwrap();
    assert!(at >= before + Duration::from_secs(4), "{at:?}");
    assert!(at <= SystemTime::now() + Duration::from_secs(6), "{at:?}");
    assert_eq!(r.header("inin-ratelimit-reset"), Some("5"));
}

#[tokio::test(start_paused = true)]
async fn scripted_faults_hit_exactly_their_request_numbers() {
    let sim = Simulator::builder()
        .conversations(10)
        .faults([
            (2, Fault::Unavailable),
            (3, Fault::Drop),
            (4, Fault::TruncatedBody),
            (5, Fault::MalformedJson),
            (6, Fault::Status(502)),
            (
                7,
                Fault::TooManyRequests {
                    retry_after_secs: 2,
                },
            ),
            (8, Fault::RevokeToken),
        ])
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let body = serde_json::to_vec(&page(ALL, 10, 1)).unwrap();
    let send = || {
        c.try_send(
            Method::POST,
            DETAILS_QUERY,
            Some(&token),
            Some(body.clone()),
            "application/json",
        )
    };
    assert_eq!(send().await.unwrap().status, StatusCode::OK);
    assert_eq!(
        send().await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(send().await.is_err(), "dropped connection");
    let cut = send().await;
    assert!(cut.is_err(), "truncated body must fail to read: {cut:?}");
    let bad = send().await.unwrap();
    assert_eq!(bad.status, StatusCode::OK);
    assert!(serde_json::from_slice::<serde_json::Value>(&bad.body).is_err());
    assert_eq!(send().await.unwrap().status, StatusCode::BAD_GATEWAY);
    let limited = send().await.unwrap();
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(send().await.unwrap().status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send().await.unwrap().status,
        StatusCode::UNAUTHORIZED,
        "token stays revoked"
    );
    let fresh = c.token(&sim).await;
    let ok = c.query(&fresh, &page(ALL, 10, 1)).await;
    assert_eq!(raw_conversations(&ok.body).unwrap().len(), 10);
    let s = sim.stats();
    assert_eq!(s.api_requests, 10);
    assert_eq!(
        (
            s.unavailable,
            s.dropped,
            s.truncated,
            s.malformed,
            s.other_errors
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!((s.rate_limited, s.revoked_token, s.unauthorized), (1, 2, 2));
    assert_eq!(
        s.early_requests, 3,
        "requests 8, 9 and 10 came within the 2 s Retry-After"
    );
}

#[tokio::test]
async fn token_endpoint_outage_answers_503_for_the_first_requests() {
    let sim = Simulator::builder()
        .token_outage_requests(2)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let creds = Some((sim.client_id(), sim.client_secret()));
    for _ in 0..2 {
        let r = c.token_with(creds, "grant_type=client_credentials").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        c.token_with(creds, "grant_type=client_credentials")
            .await
            .status,
        StatusCode::OK
    );
    let s = sim.stats();
    assert_eq!(
        (s.token_requests, s.token_unavailable, s.tokens_issued),
        (3, 2, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn token_endpoint_outage_can_last_a_duration() {
    let sim = Simulator::builder()
        .token_outage_for(Duration::from_secs(30))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let creds = Some((sim.client_id(), sim.client_secret()));
    assert_eq!(
        c.token_with(creds, "grant_type=client_credentials")
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        c.token_with(creds, "grant_type=client_credentials")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn random_faults_are_seeded_and_reproducible() {
    async fn outcomes(seed: u64) -> Vec<u16> {
        let sim = Simulator::builder()
            .seed(seed)
            .unavailable_probability(0.3)
            .drop_probability(0.1)
            .start()
            .await
            .unwrap();
        let c = TestClient::new(&sim);
        let token = c.token(&sim).await;
        let body = serde_json::to_vec(&page(ALL, 1, 1)).unwrap();
        let mut out = Vec::new();
        for _ in 0..60 {
            let r = c
                .try_send(
                    Method::POST,
                    DETAILS_QUERY,
                    Some(&token),
                    Some(body.clone()),
                    "application/json",
                )
                .await;
            out.push(r.map_or(0, |r| r.status.as_u16()));
        }
        let s = sim.stats();
        assert_eq!(s.dropped as usize, out.iter().filter(|&&c| c == 0).count());
        assert_eq!(
            s.unavailable as usize,
            out.iter().filter(|&&c| c == 503).count()
        );
        out
    }
    let a = outcomes(5).await;
    assert_eq!(a, outcomes(5).await);
    assert_ne!(a, outcomes(6).await);
    assert!(
        a.contains(&0) && a.contains(&503) && a.contains(&200),
        "{a:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_pages_overlap_and_peak_in_flight_is_recorded() {
    let sim = Simulator::builder()
        .page_latency(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let started = tokio::time::Instant::now();
    let pages = (1..=5).map(|n| {
        let (c, token) = (c.clone(), token.clone());
        async move { c.query(&token, &page(ALL, 10, n)).await.status }
    });
    let statuses = futures_util::future::join_all(pages).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert!(started.elapsed() >= Duration::from_secs(2));
    let s = sim.stats();
    assert_eq!(s.peak_in_flight, 5);
    assert_eq!(s.in_flight, 0);
}

#[tokio::test]
async fn stats_are_served_as_json_and_unknown_paths_are_404() {
    let sim = Simulator::builder().start().await.unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let r = c.get("/api/v2/nothing", Some(&token)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("inin-correlation-id").is_some());
    let stats = c.get("/__stats", None).await;
    let parsed: keel_sim::SimStats = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(parsed.api_requests, 1);
    assert_eq!(parsed.not_found, 1);
    assert_eq!(parsed, {
        let mut s = sim.stats();
        s.in_flight = parsed.in_flight;
        s.peak_in_flight = parsed.peak_in_flight;
        s
    });
}

#[tokio::test(start_paused = true)]
async fn scripted_delay_slows_only_its_request() {
    let sim = Simulator::builder()
        .fault(2, Fault::Delay(Duration::from_secs(30)))
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let timed = || async {
        let t = tokio::time::Instant::now();
        let status = c.query(&token, &page(ALL, 1, 1)).await.status;
        (status, t.elapsed())
    };
    let (s1, d1) = timed().await;
    let (s2, d2) = timed().await;
    let (s3, d3) = timed().await;
    assert_eq!(
        (s1, s2, s3),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    assert!(
        d1 < Duration::from_secs(1) && d3 < Duration::from_secs(1),
        "{d1:?} {d3:?}"
    );
    assert!(d2 >= Duration::from_secs(30), "{d2:?}");
}

#[tokio::test(start_paused = true)]
async fn unavailable_can_carry_retry_after_and_sets_the_deadline() {
    let sim = Simulator::builder()
        .unavailable_retry_after_secs(4)
        .fault(1, Fault::Unavailable)
        .token_outage_requests(1)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let creds = Some((sim.client_id(), sim.client_secret()));
    let outage = c.token_with(creds, "grant_type=client_credentials").await;
    assert_eq!(outage.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(outage.header("retry-after"), Some("4"));
    tokio::time::advance(Duration::from_secs(4)).await;
    let token = c.token(&sim).await;
    let r = c.query(&token, &page(ALL, 1, 1)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), Some("4"));
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    assert_eq!(sim.stats().early_requests, 1);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
    assert_eq!(sim.stats().early_requests, 1);
}

#[tokio::test]
async fn absurd_durations_do_not_panic_the_server() {
    let sim = Simulator::builder()
        .token_lifetime(Duration::MAX)
        .revoke_after(Duration::MAX)
        .token_outage_for(Duration::ZERO)
        .retry_after_format(RetryAfterFormat::HttpDate)
        .fault(
            1,
            Fault::TooManyRequests {
                retry_after_secs: u64::MAX,
            },
        )
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let r = c.query(&token, &page(ALL, 1, 1)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(httpdate::parse_http_date(r.header("retry-after").unwrap()).is_ok());
    assert_eq!(
        c.query(&token, &page(ALL, 1, 1)).await.status,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn after_faults_handle_the_request_then_spoil_the_answer() {
    let sim = Simulator::builder()
        .faults([
            (1, Fault::DropAfter),
            (2, Fault::StatusAfter(504)),
            (3, Fault::DelayAfter(Duration::from_secs(30))),
        ])
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let token = c.token(&sim).await;
    let job = serde_json::json!({"interval": "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"});
    let post = || {
        c.try_send(
            Method::POST,
            JOBS,
            Some(&token),
            Some(serde_json::to_vec(&job).unwrap()),
            "application/json",
        )
    };
    assert!(post().await.is_err(), "dropped");
    assert_eq!(sim.stats().jobs_created, 1);
    assert_eq!(post().await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(sim.stats().jobs_created, 2);
    let t = tokio::time::Instant::now();
    assert_eq!(post().await.unwrap().status, StatusCode::ACCEPTED);
    assert!(t.elapsed() >= Duration::from_secs(30));
    assert_eq!(sim.stats().jobs_created, 3);
    assert_eq!(sim.stats().dropped, 1);
}
