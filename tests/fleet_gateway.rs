//! Three instances of the axum gateway example sharing one Redis: one token for all three.

#[path = "support/python.rs"]
mod python;

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use keel_testkit::redis::RedisServer;
use secrecy::SecretString;

#[allow(dead_code)]
#[path = "../examples/axum_gateway.rs"]
mod axum_gateway;

const INTERVAL: &str = "2026-01-01T00:00:00Z/2026-01-08T00:00:00Z";

async fn start_gateway(sim: &keel_sim::SimHandle, redis: &keel_redis::RedisConfig) -> String {
    let env = keel_genesys::Environment::custom(&sim.base_url(), &sim.base_url()).unwrap();
    let config = axum_gateway::GatewayConfig::new(
        &env,
        sim.client_id().to_owned(),
        SecretString::from(sim.client_secret().to_owned()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum_gateway::router_in_fleet(config, Some(redis)).unwrap();
    tokio::spawn(axum_gateway::serve(
        listener,
        router,
        std::future::pending(),
    ));
    url
}

async fn query(gateway: &str) -> serde_json::Value {
    let body =
        serde_json::json!({ "interval": INTERVAL, "paging": { "pageSize": 10, "pageNumber": 1 } });
    let request = http::Request::post(format!(
        "{gateway}/api/v2/analytics/conversations/details/query"
    ))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(body.to_string())))
    .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

async fn scrape(gateway: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let response = client
        .get(format!("{gateway}/metrics").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of an unlabelled counter in a Prometheus text page.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn three_gateways_sharing_one_redis_fetch_one_token() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let sim = keel_sim::Simulator::builder()
        .conversations(50)
        .start()
        .await
        .unwrap();
    let redis = keel_redis::RedisConfig::new(SecretString::from(server.url())).unwrap();
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(start_gateway(&sim, &redis).await);
    }
    let gateways = Arc::new(gateways);
    // Concurrent first requests through all three, then more.
    for _ in 0..3 {
        let pages = futures_util::future::join_all(gateways.iter().map(|g| query(g))).await;
        for page in pages {
            assert_eq!(page["totalHits"], 50);
        }
    }
    let client = sim.client_stats(sim.client_id()).unwrap();
    assert_eq!(client.token_grants, 1, "{client:?}");
    assert_eq!(client.api_requests, 9);

    // A revocation costs the three of them one more grant.
    sim.revoke_all_tokens();
    let pages = futures_util::future::join_all(gateways.iter().map(|g| query(g))).await;
    assert_eq!(pages.len(), 3);
    let client = sim.client_stats(sim.client_id()).unwrap();
    assert_eq!(client.token_grants, 2, "{client:?}");

    // Each gateway's cache dropped the revoked token once and replayed its request: the
    // process's counters, scraped from any of them.
    let text = scrape(&gateways[0]).await;
    assert_eq!(
        counter(&text, "keel_token_invalidations_total"),
        3,
        "{text}"
    );
    assert_eq!(counter(&text, "keel_replays_401_total"), 3, "{text}");
    assert_eq!(counter(&text, "keel_token_fetches_total"), 6, "{text}");
    assert!(
        !text.contains(sim.client_secret()) && !text.contains("Bearer"),
        "{text}"
    );

    // The official Python SDK through each of them, with no credentials: no new grant.
    if let Some(python) = python::sdk_python("the Python SDK through a fleet of gateways") {
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python/gateway_sdk.py");
        for gateway in gateways.iter() {
            // NOTE: awaited, not blocking: the gateways run on this test's runtime.
            let out = tokio::process::Command::new(&python)
                .arg(&script)
                .args(["--gateway-url", gateway])
                .args(["--interval", INTERVAL])
                .args(["--expected", "50", "--page-size", "10"])
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(std::time::Duration::from_secs(120), out)
                .await
                .expect("the Python SDK did not finish within 120 s")
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.contains("gateway sdk: 50 conversations in 5 pages"),
                "{stdout}"
            );
        }
        let client = sim.client_stats(sim.client_id()).unwrap();
        assert_eq!(client.token_grants, 2, "{client:?}");
    }
}
