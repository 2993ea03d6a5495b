//! Several OAuth clients: one rate-limit bucket and one set of counters per client.

mod common;

use std::time::Duration;

use common::{page, TestClient, ALL};
use http::StatusCode;
use keel_sim::{ClientStats, SimError, SimHandle, Simulator};

async fn token_for(c: &TestClient, id: &str, secret: &str) -> String {
    let r = c
        .token_with(Some((id, secret)), "grant_type=client_credentials")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

fn counts(sim: &SimHandle, id: &str) -> (u64, u64, u64, u64) {
    let s: ClientStats = sim.client_stats(id).unwrap();
    (
        s.token_grants,
        s.api_requests,
        s.rate_limited,
        s.unauthorized,
    )
}

fn revoked(sim: &SimHandle, id: &str) -> u64 {
    sim.client_stats(id).unwrap().revoked_tokens
}

#[tokio::test(start_paused = true)]
async fn each_client_has_its_own_bucket_shared_by_all_its_tokens() {
    let sim = Simulator::builder()
        .client("worker", "worker-secret")
        .rate_limit_per_sec(2)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let main = c.token(&sim).await;
    let worker = token_for(&c, "worker", "worker-secret").await;
    let status = |token: String| {
        let c = c.clone();
        async move { c.query(&token, &page(ALL, 1, 1)).await.status }
    };
    assert_eq!(status(main.clone()).await, StatusCode::OK);
    assert_eq!(status(main.clone()).await, StatusCode::OK);
    assert_eq!(status(main.clone()).await, StatusCode::TOO_MANY_REQUESTS);
    // Another token of the same client draws from the same (empty) bucket.
    let main2 = c.token(&sim).await;
    assert_eq!(status(main2).await, StatusCode::TOO_MANY_REQUESTS);
    // The other client's bucket is full.
    assert_eq!(status(worker.clone()).await, StatusCode::OK);
    assert_eq!(status(worker.clone()).await, StatusCode::OK);
    assert_eq!(status(worker.clone()).await, StatusCode::TOO_MANY_REQUESTS);

    assert_eq!(counts(&sim, "sim-client"), (2, 4, 2, 0));
    assert_eq!(counts(&sim, "worker"), (1, 3, 1, 0));
    let s = sim.stats();
    assert_eq!((s.tokens_issued, s.rate_limited), (3, 3));
    assert_eq!(s.clients.len(), 2);

    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(status(main).await, StatusCode::OK, "refilled at the rate");
    assert_eq!(counts(&sim, "sim-client"), (2, 5, 2, 0));
}

#[tokio::test]
async fn grants_and_401s_are_counted_per_client_and_served_in_stats() {
    let sim = Simulator::builder()
        .client("a", "a-secret")
        .client("b", "b-secret")
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let a = token_for(&c, "a", "a-secret").await;
    token_for(&c, "a", "a-secret").await;
    let b = token_for(&c, "b", "b-secret").await;
    let wrong = c
        .token_with(Some(("b", "a-secret")), "grant_type=client_credentials")
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::BAD_REQUEST,
        "secrets are per client"
    );
    assert_eq!(c.query(&a, &page(ALL, 1, 1)).await.status, StatusCode::OK);
    sim.revoke_all_tokens();
    assert_eq!(
        c.query(&a, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.query(&b, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.query(&b, &page(ALL, 1, 1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(counts(&sim, "a"), (2, 1, 0, 1));
    assert_eq!(counts(&sim, "b"), (1, 0, 0, 2));
    assert_eq!(
        (revoked(&sim, "a"), revoked(&sim, "b")),
        (1, 1),
        "a token refused twice is one revocation; an unused revoked token is none"
    );
    assert_eq!(counts(&sim, "sim-client"), (0, 0, 0, 0));
    assert_eq!(sim.client_stats("nobody"), None);
    assert_eq!(sim.stats().token_rejections, 1);

    let over_http = c.get("/__stats", None).await;
    let parsed: keel_sim::SimStats = serde_json::from_slice(&over_http.body).unwrap();
    assert_eq!(parsed.clients, sim.stats().clients);
    assert_eq!(parsed.clients["b"].unauthorized, 2);
    let text = String::from_utf8_lossy(&over_http.body);
    assert!(
        !text.contains("a-secret") && !text.contains("sim-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_id_configured_twice_is_refused() {
    let err = Simulator::builder()
        .client("sim-client", "x")
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Config(_)), "{err}");
    assert!(err.to_string().contains("configured twice"), "{err}");
}

#[tokio::test]
async fn revocations_by_count_and_fault_are_counted_once_per_token() {
    let sim = Simulator::builder()
        .client("w", "w-secret")
        .revoke_after_requests(2)
        .fault(5, keel_sim::Fault::RevokeToken)
        .start()
        .await
        .unwrap();
    let c = TestClient::new(&sim);
    let t1 = token_for(&c, "w", "w-secret").await;
    let q = |t: &str| {
        let (c, t) = (c.clone(), t.to_owned());
        async move { c.query(&t, &page(ALL, 1, 1)).await.status }
    };
    assert_eq!(q(&t1).await, StatusCode::OK);
    assert_eq!(q(&t1).await, StatusCode::OK);
    assert_eq!(
        q(&t1).await,
        StatusCode::UNAUTHORIZED,
        "third use of a 2-use token"
    );
    assert_eq!(q(&t1).await, StatusCode::UNAUTHORIZED);
    let t2 = token_for(&c, "w", "w-secret").await;
    assert_eq!(
        q(&t2).await,
        StatusCode::UNAUTHORIZED,
        "API request 5: revoke fault"
    );
    assert_eq!(q(&t2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(counts(&sim, "w"), (2, 2, 0, 4));
    assert_eq!(revoked(&sim, "w"), 2);
}
