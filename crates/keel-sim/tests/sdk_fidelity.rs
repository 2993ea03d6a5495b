//! Fidelity check: the official Genesys Cloud Python SDK (`PureCloudPlatformClientV2`) gets a
//! token from the simulator and pages the details query to the end with its own models.
//!
//! The SDK lives in a virtualenv at `$KEEL_PY_VENV` (default `/tmp/keel-venv`). If it is
//! missing the test says so loudly and skips, unless `KEEL_REQUIRE_PYTHON_SDK=1`, in which
//! case it fails.

use std::path::PathBuf;
use std::time::Duration;

use keel_sim::Simulator;
use serde_json::json;

const INTERVAL: &str = "2026-01-01T00:00:00.000Z/2026-01-08T00:00:00.000Z";

#[path = "../../../tests/support/python.rs"]
mod python;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_pages_the_details_query_to_the_end() {
    let Some(python) = python::sdk_python("the Genesys Python SDK fidelity check") else {
        return;
    };
    let sim = Simulator::builder()
        .conversations(1_234)
        .seed(99)
        .credentials("sdk-client", "sdk-secret-value")
        .start()
        .await
        .unwrap();
    let expected = sim
        .ground_truth(&json!({ "interval": INTERVAL }))
        .unwrap()
        .len();
    let voice_query = json!({
        "interval": INTERVAL,
        "segmentFilters": [{"type": "and", "predicates": [
            {"type": "dimension", "dimension": "mediaType", "operator": "matches", "value": "voice"}
        ]}],
    });
    let expected_voice = sim.ground_truth(&voice_query).unwrap().len();
    assert!(expected_voice > 0 && expected_voice < expected);

    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/sdk_fidelity.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--base-url", &sim.base_url()])
        .args(["--client-id", sim.client_id()])
        .args(["--interval", INTERVAL])
        .args(["--expected", &expected.to_string()])
        .args(["--expected-voice", &expected_voice.to_string()])
        .args(["--page-size", "100"])
        .env("KEEL_SIM_CLIENT_SECRET", sim.client_secret())
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
    assert!(
        stdout.contains(&format!("sdk fidelity: {expected} conversations")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "sdk fidelity: {expected_voice} voice conversations"
        )),
        "{stdout}"
    );

    let s = sim.stats();
    assert_eq!(
        s.tokens_issued, 1,
        "the SDK obtained its token from the simulator"
    );
    assert_eq!(s.unauthorized + s.bad_requests, 0);
    let pages = expected.div_ceil(100) + expected_voice.div_ceil(100);
    assert_eq!(s.pages_served as usize, pages);
    assert_eq!(s.conversations_served as usize, expected + expected_voice);
}
