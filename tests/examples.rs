//! Runs every example's logic, against tower-test mocks (mock_service) or a keel-sim
//! simulator on loopback (the others). Each example file is compiled into this test as a
//! module, so what runs here is exactly what `cargo run --example …` runs.

use std::time::Duration;

use http::StatusCode;

#[allow(dead_code)]
#[path = "../examples/mock_service.rs"]
mod mock_service;

#[tokio::test(start_paused = true)]
async fn mock_service_example_replays_with_a_new_token_after_401() {
    let observed = mock_service::revoked_token_is_refreshed().await.unwrap();
    assert_eq!(observed.status, StatusCode::OK);
    assert_eq!(
        observed.authorizations,
        ["Bearer token-1", "Bearer token-2"]
    );
    assert_eq!(observed.token_fetches, 2);
    assert_eq!(observed.elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn mock_service_example_waits_exactly_the_retry_after() {
    let observed = mock_service::rate_limit_waits_for_retry_after()
        .await
        .unwrap();
    assert_eq!(observed.status, StatusCode::OK);
    assert_eq!(
        observed.authorizations,
        ["Bearer token-1", "Bearer token-1"]
    );
    assert_eq!(observed.token_fetches, 1);
    assert_eq!(observed.elapsed, Duration::from_secs(30));
}
