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

#[allow(dead_code)]
#[path = "../examples/hyper_client.rs"]
mod hyper_client;

#[allow(dead_code)]
#[path = "../examples/batch_export.rs"]
mod batch_export;

#[allow(dead_code)]
#[path = "../examples/axum_gateway.rs"]
mod axum_gateway;

const INTERVAL: &str = "2026-01-01T00:00:00Z/2026-01-08T00:00:00Z";

fn ground_truth_ids(sim: &keel_sim::SimHandle) -> Vec<String> {
    sim.ground_truth(&serde_json::json!({ "interval": INTERVAL }))
        .unwrap()
        .indices()
        .map(|i| sim.conversation_id(i))
        .collect()
}

#[tokio::test]
async fn hyper_client_example_pages_every_record_through_revocations_and_a_429() {
    let sim = hyper_client::start_sim().await.unwrap();
    let target = hyper_client::Target {
        api_url: sim.base_url(),
        login_url: sim.base_url(),
        client_id: sim.client_id().to_owned(),
        client_secret: secrecy::SecretString::from(sim.client_secret().to_owned()),
        interval: INTERVAL.to_owned(),
    };
    let summary = hyper_client::run(target).await.unwrap();

    let expected = ground_truth_ids(&sim);
    assert_eq!(expected.len(), 2_000);
    assert_eq!(
        summary.conversation_ids, expected,
        "every record, once, in order"
    );
    assert_eq!(summary.pages, 20);
    assert_eq!(summary.waits_after_429, 1);
    assert!(summary.replays_after_401 >= 1, "{summary:?}");
    let s = sim.stats();
    assert_eq!(s.rate_limited, 1);
    assert!(s.revoked_token >= 1);
    assert_eq!(s.tokens_issued, summary.token_fetches);
    assert_eq!(s.pages_served, 20);
}

fn sim_env(sim: &keel_sim::SimHandle) -> (keel::genesys::Environment, keel::genesys::Credentials) {
    let env = keel::genesys::Environment::custom(&sim.base_url(), &sim.base_url()).unwrap();
    let secret = secrecy::SecretString::from(sim.client_secret().to_owned());
    (
        env,
        keel::genesys::Credentials::new(sim.client_id(), secret),
    )
}

#[tokio::test]
async fn batch_export_example_writes_the_ground_truth_and_resumes_after_a_failure() {
    // The 6th API request fails with a 400 (not retried): the first run stops part way.
    let sim = keel_sim::Simulator::builder()
        .conversations(1_500)
        .revoke_after_requests(4)
        .fault(
            2,
            keel_sim::Fault::TooManyRequests {
                retry_after_secs: 0,
            },
        )
        .fault(6, keel_sim::Fault::Status(400))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("conversations.ndjson");
    let interval: keel::genesys::Interval = INTERVAL.parse().unwrap();

    let (env, creds) = sim_env(&sim);
    let first = batch_export::export(env, creds, interval, &out).await;
    assert!(first.is_err(), "the scripted 400 stops the first run");
    let checkpoint = dir.path().join("conversations.ndjson.checkpoint");
    assert!(
        checkpoint.exists(),
        "pages before the failure were checkpointed"
    );
    // A crash in the middle of a page leaves a partial line behind.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"conversationId\":\"half"))
        .unwrap();

    let (env, creds) = sim_env(&sim);
    let second = batch_export::export(env, creds, interval, &out)
        .await
        .unwrap();
    assert!(second.pages > 0);

    let expected: String = sim
        .ground_truth(&serde_json::json!({ "interval": INTERVAL }))
        .unwrap()
        .map(|record| record + "\n")
        .collect();
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 1_500);
    assert!(
        written == expected,
        "the file is the ground truth, byte for byte"
    );
    assert!(
        !checkpoint.exists(),
        "a finished export leaves no checkpoint"
    );
    let s = sim.stats();
    assert_eq!(s.rate_limited, 1);
    assert!(s.revoked_token >= 1);
}

#[tokio::test]
async fn axum_gateway_example_forwards_to_keel_sim_for_a_caller_without_credentials() {
    let sim = keel_sim::Simulator::builder()
        .conversations(50)
        .fault(1, keel_sim::Fault::RevokeToken)
        .start()
        .await
        .unwrap();
    let (env, _) = sim_env(&sim);
    let config = axum_gateway::GatewayConfig::new(
        &env,
        sim.client_id().to_owned(),
        secrecy::SecretString::from(sim.client_secret().to_owned()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let router = axum_gateway::router(config).unwrap();
    tokio::spawn(axum_gateway::serve(
        listener,
        router,
        std::future::pending(),
    ));

    let query =
        serde_json::json!({ "interval": INTERVAL, "paging": { "pageSize": 100, "pageNumber": 1 } });
    let request = http::Request::post(format!(
        "{gateway}/api/v2/analytics/conversations/details/query"
    ))
    .header("content-type", "application/json")
    .body(http_body_util::Full::new(bytes::Bytes::from(
        query.to_string(),
    )))
    .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["totalHits"], 50);
    assert_eq!(page["conversations"].as_array().unwrap().len(), 50);
    let s = sim.stats();
    assert_eq!(
        s.revoked_token, 1,
        "the first token was revoked by the scripted fault"
    );
    assert_eq!(
        s.tokens_issued, 2,
        "the gateway fetched a new token and replayed"
    );
    assert_eq!(s.no_token, 0);
}

#[test]
fn axum_gateway_example_colours_logs_only_on_a_terminal_without_no_color() {
    use std::ffi::OsStr;
    assert!(axum_gateway::ansi_colours(true, None));
    assert!(axum_gateway::ansi_colours(true, Some(OsStr::new(""))));
    assert!(!axum_gateway::ansi_colours(true, Some(OsStr::new("1"))));
    assert!(!axum_gateway::ansi_colours(false, None));
    assert!(!axum_gateway::ansi_colours(false, Some(OsStr::new(""))));
}

/// An example's binary, built next to this test by `cargo test` (which builds every
/// example), if there and not older than its source.
fn example_binary(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("examples").join(name);
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&bin)? >= modified(&source)?).then_some(bin)
}

/// The example binary with stderr to a pipe (not a terminal) writes its log lines without
/// ANSI escape codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_gateway_binary_logs_without_ansi_escapes_to_a_pipe() {
    use tokio::io::AsyncBufReadExt;
    let Some(bin) = example_binary("axum_gateway") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the axum_gateway example is not built, or older than its source"
        );
        eprintln!("SKIPPED: the axum_gateway example is not built or is stale; run `cargo build --example axum_gateway`");
        return;
    };
    let mut child = tokio::process::Command::new(bin)
        .args(["--sim", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("gateway listening");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    child.kill().await.unwrap();
    assert_eq!(
        listening,
        Ok(true),
        "no 'gateway listening' log line: {seen:?}"
    );
    let log = seen.join("\n");
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a piped log: {log:?}"
    );
}
