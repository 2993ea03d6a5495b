//! An export that stops mid-part (a malformed page) and is resumed after the part's results
//! changed (`totalHits` grew between the runs) must still complete exactly with `--resume`.

use std::time::Duration;

use clap::Parser;
use genesys_export::{self as export, Args};
use keel_genesys::Credentials;
use keel_sim::{Fault, Simulator};

use secrecy::SecretString;

const INTERVAL: &str = "2026-01-01T00:00:00.000Z/2026-01-02T00:00:00.000Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_mid_part_after_the_results_changed_completes_exactly() {
    resume_after_change("ndjson").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_run_resumed_mid_part_after_the_results_changed_completes_exactly() {
    resume_after_change("csv").await;
}

async fn resume_after_change(format: &str) {
    // One part of 12 pages, fetched one by one; page 4 is malformed on every attempt (the
    // first and its 2 decode retries), and once 4 pages were served 10 late conversations
    // appear in this part.
    let sim = Simulator::builder()
        .conversations(120)
        .data_span(Duration::from_secs(86_400))
        .late_conversations(10, 4)
        .faults((4..=6).map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let base = sim.base_url();
    let args = || {
        Args::try_parse_from([
            "genesys-export",
            "--api-url",
            &base,
            "--login-url",
            &base,
            "--interval",
            INTERVAL,
            "--page-size",
            "10",
            "--prefetch",
            "1",
            "--format",
            format,
            "--progress",
            "quiet",
            "--out",
            out.to_str().unwrap(),
            "--resume",
        ])
        .unwrap()
    };
    let creds = || {
        Credentials::new(
            sim.client_id(),
            SecretString::from(sim.client_secret().to_owned()),
        )
    };
    let first = export::run_with_credentials(args(), creds()).await;
    let err = first.expect_err("the malformed page stops the first run");
    assert!(
        err.report().to_string().contains("malformed"),
        "{}",
        err.report()
    );
    assert_eq!(sim.visible_conversations(), 130, "the results changed");

    let resumed = export::run_with_credentials(args(), creds()).await;
    if let Err(e) = &resumed {
        panic!("the resumed run stopped: {}", e.report());
    }
    let truth: Vec<String> = sim
        .ground_truth(&serde_json::json!({ "interval": INTERVAL }))
        .unwrap()
        .collect();
    let written = std::fs::read_to_string(&out).unwrap();
    if format == "ndjson" {
        assert_eq!(
            written,
            truth.iter().map(|r| format!("{r}\n")).collect::<String>()
        );
    } else {
        // One CSV row per conversation, each id once, in order.
        let ids: Vec<&str> = written
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        let want: Vec<String> = (0..truth.len() as u64)
            .map(|i| sim.conversation_id(i))
            .collect();
        assert_eq!(ids, want);
    }
}
