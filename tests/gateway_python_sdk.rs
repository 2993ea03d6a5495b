//! The official Genesys Cloud Python SDK (`PureCloudPlatformClientV2`), with no credentials
//! and a placeholder token, pages the conversation-details query through the axum gateway
//! example to keel-sim, while the simulator revokes tokens and answers 429: it gets every
//! record, because the gateway refreshes and backs off for it.
//!
//! The SDK lives in a virtualenv at `$KEEL_PY_VENV` (default `/tmp/keel-venv`). If it is
//! missing the test says so loudly and skips, unless `KEEL_REQUIRE_PYTHON_SDK=1`, in which
//! case it fails.

use std::path::PathBuf;
use std::time::Duration;

use keel::genesys::Environment;
use keel_sim::{Fault, Simulator};
use secrecy::SecretString;
use serde_json::json;

#[allow(dead_code)]
#[path = "../examples/axum_gateway.rs"]
mod axum_gateway;

const INTERVAL: &str = "2026-01-01T00:00:00.000Z/2026-01-08T00:00:00.000Z";

#[path = "support/python.rs"]
mod python;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_without_credentials_pages_every_record_through_the_gateway() {
    let Some(python) = python::sdk_python("the Python SDK through the axum gateway") else {
        return;
    };
    let sim = Simulator::builder()
        .conversations(1_234)
        .seed(7)
        .credentials("gateway-client", "gateway-secret-value")
        .revoke_after_requests(4)
        .fault(
            3,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .start()
        .await
        .unwrap();
    let expected = sim
        .ground_truth(&json!({ "interval": INTERVAL }))
        .unwrap()
        .len();

    let env = Environment::custom(&sim.base_url(), &sim.base_url()).unwrap();
    let config = axum_gateway::GatewayConfig::new(
        &env,
        sim.client_id().to_owned(),
        SecretString::from(sim.client_secret().to_owned()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let router = axum_gateway::router(config).unwrap();
    tokio::spawn(axum_gateway::serve(
        listener,
        router,
        std::future::pending(),
    ));

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/gateway_sdk.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--gateway-url", &gateway])
        .args(["--interval", INTERVAL])
        .args(["--expected", &expected.to_string()])
        .args(["--page-size", "100"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("the SDK script finished within 5 minutes")
        .expect("the SDK script could be started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK script failed:\n{stdout}\n{stderr}"
    );
    let pages = expected.div_ceil(100);
    assert!(
        stdout.contains(&format!(
            "gateway sdk: {expected} conversations in {pages} pages"
        )),
        "{stdout}"
    );

    let s = sim.stats();
    assert_eq!(s.pages_served as usize, pages, "every page served once");
    assert_eq!(s.conversations_served as usize, expected);
    assert_eq!(
        s.unknown_token, 0,
        "the SDK's placeholder token reached the API"
    );
    assert_eq!(s.no_token, 0);
    assert_eq!(s.rate_limited, 1, "the scripted 429 was served");
    assert!(
        s.revoked_token >= 1 && s.tokens_issued >= 2,
        "tokens were revoked and replaced: {s:?}"
    );
}

/// The baseline: the same SDK logging in itself and talking to the simulator directly stops
/// at the first revoked token (it refreshes only tokens of the authorization-code grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_alone_stops_at_the_first_revoked_token() {
    let Some(python) = python::sdk_python("the Python SDK through the axum gateway") else {
        return;
    };
    let sim = Simulator::builder()
        .conversations(1_234)
        .seed(7)
        .credentials("sdk-client", "sdk-secret-value")
        .revoke_after_requests(4)
        .start()
        .await
        .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/gateway_sdk.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--gateway-url", &sim.base_url()])
        .args(["--interval", INTERVAL])
        .args(["--expected", "1234"])
        .args(["--client-id", sim.client_id()])
        .env("KEEL_SIM_CLIENT_SECRET", sim.client_secret())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("the SDK script finished within 5 minutes")
        .expect("the SDK script could be started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the SDK alone was expected to fail"
    );
    assert!(stderr.contains("401"), "{stderr}");
    let s = sim.stats();
    assert_eq!(s.tokens_issued, 1, "the SDK never fetched a new token");
    assert_eq!(s.pages_served, 4, "pages until the revocation");
    assert_eq!(s.unauthorized, 1, "the SDK gave up at the first 401");
}
