//! The `keel-sim` binary: first stdout line, flags, `/__stats`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn binary_prints_its_url_first_and_serves_stats() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel-sim"))
        .args([
            "--conversations",
            "42",
            "--fault",
            "1=503",
            "--rate-limit",
            "1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the binary printed a line in time")
        .unwrap()
        .expect("a first line");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let get = |path: &str| {
        let uri: http::Uri = format!("{url}{path}").parse().unwrap();
        let client = client.clone();
        async move {
            use http_body_util::BodyExt;
            let resp = client.get(uri).await.unwrap();
            let status = resp.status();
            (status, resp.into_body().collect().await.unwrap().to_bytes())
        }
    };
    let (status, _) = get("/api/v2/users").await;
    assert_eq!(
        status,
        http::StatusCode::SERVICE_UNAVAILABLE,
        "--fault 1=503 applies"
    );
    let (status, body) = get("/__stats").await;
    assert_eq!(status, http::StatusCode::OK);
    let stats: keel_sim::SimStats = serde_json::from_slice(&body).unwrap();
    assert_eq!((stats.api_requests, stats.unavailable), (1, 1));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn binary_takes_clients_from_the_environment_and_serves_clock_and_churn() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel-sim"))
        .args([
            "--conversations",
            "10",
            "--clock-at-ms",
            "1767229200000",
            "--arrivals-per-minute",
            "1",
            "--churn-inserts-per-page",
            "2",
            "--churn-max-inserts",
            "3",
        ])
        .env("KEEL_SIM_EXTRA_CLIENTS", "w1:s1,w2:s2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the binary printed a line in time")
        .unwrap()
        .expect("a first line");
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let get = |path: &str| {
        let uri: http::Uri = format!("{url}{path}").parse().unwrap();
        let client = client.clone();
        async move {
            use http_body_util::BodyExt;
            let body = client.get(uri).await.unwrap().into_body();
            serde_json::from_slice::<serde_json::Value>(&body.collect().await.unwrap().to_bytes())
                .unwrap()
        }
    };
    let stats = get("/__stats").await;
    let clients: Vec<&String> = stats["clients"].as_object().unwrap().keys().collect();
    assert_eq!(clients, ["sim-client", "w1", "w2"]);
    assert_eq!(get("/__clock").await["nowMs"], 1_767_229_200_000_i64);
    assert_eq!(get("/__churn").await["rounds"], 0);
    child.kill().await.unwrap();
}
