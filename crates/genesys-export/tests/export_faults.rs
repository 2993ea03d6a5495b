//! End to end, in-process: the export job against keel-sim over loopback HTTP, under token
//! expiry, revocation, 429s, 503s and dropped connections, in both API modes and both formats.
//! Every test compares the output with the simulator's ground truth, byte for byte.

mod common;

use std::time::Duration;

use common::*;
use genesys_export::ExportError;
use keel_sim::{Fault, RetryAfterFormat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_mid_batch_is_refreshed_before_any_request_uses_it_expired() {
    // 2-second tokens (refreshed at half-life) and a run of ~2.5 s of pages.
    let sim = sim(3_000)
        .token_lifetime(Duration::from_secs(2))
        .page_latency(Duration::from_millis(80))
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &["--page-size", "100", "--prefetch", "1"])
        .await
        .unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let stats = sim.stats();
    assert!(
        stats.tokens_issued >= 2,
        "the batch outlived its first token: {stats:?}"
    );
    assert_eq!(
        stats.expired_token, 0,
        "a request was sent with an expired token: {stats:?}"
    );
    assert_eq!(stats.unauthorized, 0, "{stats:?}");
    assert_eq!(summary.conversations, 3_000);
    assert_eq!(summary.token_fetches, stats.tokens_issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revoked_server_side_is_refreshed_and_the_request_replayed() {
    let sim = sim(4_000).revoke_after_requests(7).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &[]).await.unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let stats = sim.stats();
    assert!(
        stats.revoked_token >= 4,
        "tokens were revoked mid-batch: {stats:?}"
    );
    assert_eq!(stats.unauthorized, stats.revoked_token);
    assert!(
        summary.replays_401 >= stats.unauthorized,
        "every 401 replayed: {summary:?} {stats:?}"
    );
    assert!(summary.token_fetches >= 5, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_revoked_faster_than_the_requests_in_flight_are_still_replayed_to_success() {
    // Each token serves 4 requests while 4 are in flight (prefetch 4): a replay can meet
    // the next revocation, so one replay per request is not enough.
    let sim = sim(6_000).revoke_after_requests(4).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &["--page-size", "50"])
        .await
        .unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let stats = sim.stats();
    assert!(stats.revoked_token >= 10, "{stats:?}");
    assert!(
        summary.replays_401 >= stats.unauthorized,
        "{summary:?} {stats:?}"
    );
}

/// A 429 on the first request (nothing else in flight: every later request must wait for
/// its deadline) and one mid-run (up to `prefetch - 1` requests already on the wire may
/// arrive before its deadline; none sent after it may).
async fn rate_limited(format: RetryAfterFormat) {
    let sim = sim(2_000)
        .retry_after_format(format)
        .fault(
            1,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .fault(
            12,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &[]).await.unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let stats = sim.stats();
    assert_eq!(stats.rate_limited, 2, "{stats:?}");
    assert!(
        stats.early_requests <= 3,
        "requests were sent before the Retry-After deadline: {stats:?}"
    );
    assert!(summary.waits_429 >= 2, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429s_with_retry_after_seconds_are_waited_out() {
    rate_limited(RetryAfterFormat::Seconds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_429s_with_retry_after_http_date_are_waited_out() {
    rate_limited(RetryAfterFormat::HttpDate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_503s_and_dropped_connections_are_retried() {
    let sim = sim(3_000)
        .fault(2, Fault::Unavailable)
        .fault(5, Fault::Drop)
        .fault(8, Fault::Unavailable)
        .fault(12, Fault::Drop)
        .fault(15, Fault::Status(502))
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &[]).await.unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let stats = sim.stats();
    assert_eq!((stats.unavailable, stats.dropped), (2, 2), "{stats:?}");
    assert!(summary.other_retries >= 5, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_mode_exports_every_record_once() {
    // Job results come 1,000 to a page: 12 pages, a token revoked every 4 requests.
    let sim = sim(12_000)
        .job_delay(Duration::from_millis(50))
        .revoke_after_requests(4)
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &["--mode", "jobs"]).await.unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let stats = sim.stats();
    assert_eq!(stats.jobs_created, 1, "{stats:?}");
    assert_eq!(stats.job_pages_served, 12, "{stats:?}");
    assert!(stats.revoked_token >= 2, "{stats:?}");
    assert_eq!(
        stats.pages_served, 0,
        "jobs mode does not use the details query: {stats:?}"
    );
    assert_eq!(summary.conversations, 12_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_type_filter_exports_exactly_the_matching_conversations() {
    let sim = sim(2_000).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &["--media-type", "voice"])
        .await
        .unwrap();
    let n = assert_ndjson_is_ground_truth(&sim, &query_json(Some("voice")), &out);
    assert!(n < 2_000, "the filter selected a subset");
    assert_eq!(summary.conversations, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_has_one_row_per_conversation_with_its_summary_fields() {
    let sim = sim(1_500)
        .fault(4, Fault::Unavailable)
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.csv");
    run_export(&sim, &out, &["--format", "csv", "--page-size", "70"])
        .await
        .unwrap();

    let mut reader = csv::Reader::from_path(&out).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "id",
            "start",
            "end",
            "duration_ms",
            "direction",
            "media_types"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let truth: Vec<String> = sim.ground_truth(&query_json(None)).unwrap().collect();
    assert_eq!(rows.len(), truth.len());
    for (row, json) in rows.iter().zip(&truth) {
        let c: serde_json::Value = serde_json::from_str(json).unwrap();
        let text = |k: &str| c[k].as_str().unwrap_or("").to_owned();
        let ms = |k: &str| {
            time::OffsetDateTime::parse(
                c[k].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .unix_timestamp_nanos()
                / 1_000_000
        };
        let duration = if c["conversationEnd"].is_string() {
            (ms("conversationEnd") - ms("conversationStart")).to_string()
        } else {
            String::new()
        };
        let mut media: Vec<String> = Vec::new();
        for p in c["participants"].as_array().unwrap() {
            for s in p["sessions"].as_array().into_iter().flatten() {
                let m = s["mediaType"].as_str().unwrap().to_owned();
                if !media.contains(&m) {
                    media.push(m);
                }
            }
        }
        let want = [
            text("conversationId"),
            text("conversationStart"),
            text("conversationEnd"),
            duration,
            text("originatingDirection"),
            media.join(";"),
        ];
        assert_eq!(
            row.iter().collect::<Vec<_>>(),
            want.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_prefetch_keeps_several_pages_in_flight_and_prefetch_1_keeps_one() {
    let sim_default = sim(3_000)
        .page_latency(Duration::from_millis(40))
        .start()
        .await
        .unwrap();
    let (_d1, out1) = out_file("c.ndjson");
    run_export(&sim_default, &out1, &[]).await.unwrap();
    assert_ndjson_is_ground_truth(&sim_default, &query_json(None), &out1);
    let s = sim_default.stats();
    assert!(
        s.peak_in_flight >= 2,
        "default prefetch overlaps pages: {s:?}"
    );
    assert_eq!(s.rate_limited, 0);

    let sim_one = sim(3_000)
        .page_latency(Duration::from_millis(40))
        .start()
        .await
        .unwrap();
    let (_d2, out2) = out_file("c.ndjson");
    run_export(&sim_one, &out2, &["--prefetch", "1"])
        .await
        .unwrap();
    assert_ndjson_is_ground_truth(&sim_one, &query_json(None), &out2);
    assert_eq!(sim_one.stats().peak_in_flight, 1, "{:?}", sim_one.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_resume_refuses_to_clobber_an_interrupted_export() {
    let sim = sim(500).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    std::fs::write(&out, b"partial").unwrap();
    std::fs::write(checkpoint_path(&out), b"{}").unwrap();
    let e = run_export(&sim, &out, &[]).await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("--resume"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"partial", "output untouched");
    assert_eq!(sim.stats().api_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_export_is_refused_naming_the_difference() {
    let sim = sim(2_000)
        .page_latency(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    // A complete run with --resume leaves no checkpoint behind.
    run_export(&sim, &out, &["--resume"]).await.unwrap();
    assert!(!checkpoint_path(&out).exists());
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    // A checkpoint written by a page-size-50 export, then a resume with page size 100.
    let record = serde_json::json!({
        "version": 1,
        "fingerprint": {"api": sim.base_url() + "/", "mode": "query", "format": "ndjson",
            "window": format!("interval {}", "2026-01-01T00:00:00.000Z/2026-01-02T00:00:00.000Z"),
            "media_type": null, "page_size": 50},
        "query": query_json(None), "output_len": 0, "pages": 0, "conversations": 0, "position": null
    });
    std::fs::write(checkpoint_path(&out), record.to_string()).unwrap();
    let e = run_export(&sim, &out, &["--resume"]).await.unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string()
            .contains("page size: checkpoint has 50, this run has 100"),
        "{e}"
    );
}

/// Benchmark, not a test (wall time is no assertion): a 30-page export at 200 ms per page,
/// default prefetch against `--prefetch 1`, under a rate limit neither should reach.
/// `cargo test -p keel-genesys --test export_faults -- --ignored --nocapture prefetch_speedup`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints wall times"]
async fn prefetch_speedup_benchmark() {
    let mut results = Vec::new();
    for prefetch in ["1", "4"] {
        let sim = sim(3_000)
            .page_latency(Duration::from_millis(200))
            .rate_limit_per_sec(50)
            .start()
            .await
            .unwrap();
        let (_dir, out) = out_file("c.ndjson");
        let started = std::time::Instant::now();
        let summary = run_export(&sim, &out, &["--prefetch", prefetch])
            .await
            .unwrap();
        let wall = started.elapsed();
        assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
        let stats = sim.stats();
        assert_eq!(stats.pages_served, 30);
        eprintln!(
            "prefetch {prefetch}: {wall:?} for {} pages, 429s served {}, peak in flight {}",
            summary.pages, stats.rate_limited, stats.peak_in_flight
        );
        results.push((wall, stats.rate_limited));
    }
    eprintln!(
        "speed-up of the default prefetch: {:.2}x; 429s {} -> {}",
        results[0].0.as_secs_f64() / results[1].0.as_secs_f64(),
        results[0].1,
        results[1].1
    );
}

/// A run stopped by a page the client cannot read on any attempt (exit 4) leaves a checkpoint
/// from which `--resume` completes the export exactly, in either API mode. The requests from
/// `fault_at` on, `faults` of them, are all malformed.
async fn stopped_then_resumed(mode: &str, conversations: u64, fault_at: u64, faults: u64) {
    let sim = sim(conversations)
        .job_delay(Duration::from_millis(20))
        .faults((fault_at..fault_at + faults).map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let flags = [
        "--mode",
        mode,
        "--page-size",
        "100",
        "--prefetch",
        "1",
        "--resume",
    ];
    let e = run_export(&sim, &out, &flags).await.unwrap_err();
    assert_eq!(e.exit_code(), 4, "{}", e.report());
    assert!(
        e.report().to_string().contains("run again with --resume"),
        "{}",
        e.report()
    );
    assert!(checkpoint_path(&out).exists());
    assert!(
        sim.stats().malformed >= DECODE_ATTEMPTS,
        "{:?}",
        sim.stats()
    );
    let summary = run_export(&sim, &out, &flags).await.unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    assert!(
        summary.resumed_conversations > 0 && summary.conversations == conversations,
        "{summary:?}"
    );
    assert!(!checkpoint_path(&out).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_while_another_run_holds_the_output_stops_at_once_and_touches_nothing() {
    let sim = sim(1_200)
        .faults((5..5 + DECODE_ATTEMPTS).map(|n| (n, Fault::MalformedJson)))
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let flags = ["--page-size", "100", "--prefetch", "1", "--resume"];
    // An interrupted export: whole pages and a checkpoint that matches them.
    let e = run_export(&sim, &out, &flags).await.unwrap_err();
    assert_eq!(e.exit_code(), 4, "{}", e.report());
    let output = std::fs::read(&out).unwrap();
    let checkpoint = std::fs::read(checkpoint_path(&out)).unwrap();
    assert!(!output.is_empty());
    let requests = |s: keel_sim::SimStats| s.token_requests + s.api_requests;
    let before = requests(sim.stats());

    // Another run is resuming it: this one must not.
    let held = hold_lock(&out);
    let e = run_export(&sim, &out, &flags).await.unwrap_err();
    match &e {
        ExportError::OutputLocked { out: o, lock } => {
            assert_eq!((o, lock), (&out, &lock_path(&out)));
        }
        other => panic!("not a lock error: {other:?}"),
    }
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains(&out.display().to_string()), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), output, "output touched");
    assert_eq!(
        std::fs::read(checkpoint_path(&out)).unwrap(),
        checkpoint,
        "checkpoint touched"
    );
    assert_eq!(
        requests(sim.stats()),
        before,
        "the locked run made requests"
    );

    drop(held);
    let summary = run_export(&sim, &out, &flags).await.unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    assert!(summary.resumed_conversations > 0, "{summary:?}");
    assert!(!lock_path(&out).exists());
}

/// Attempts at a page with the default decode retries: the first and 2 more.
const DECODE_ATTEMPTS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_malformed_once_is_fetched_again_and_the_export_is_exact() {
    for mode in ["query", "jobs"] {
        let sim = sim(1_200)
            .job_delay(Duration::from_millis(20))
            .fault(5, Fault::MalformedJson)
            .start()
            .await
            .unwrap();
        let (_dir, out) = out_file("c.ndjson");
        let flags = ["--mode", mode, "--page-size", "100", "--prefetch", "1"];
        let summary = run_export(&sim, &out, &flags).await.unwrap();
        assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
        assert_eq!(sim.stats().malformed, 1, "{mode}");
        assert_eq!(summary.decode_retries, 1, "{mode}: {summary:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_mode_stopped_by_a_malformed_page_resumes_exactly() {
    // One part (the data spans one day), one page at a time: page 5 is requests 5 to 7.
    stopped_then_resumed("query", 1_200, 5, DECODE_ATTEMPTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_mode_stopped_by_a_malformed_page_resumes_exactly() {
    // Requests: 1 submit, 2 status, then result pages of 1,000, one at a time; the 3rd result
    // page (of 5) is malformed on every attempt.
    stopped_then_resumed("jobs", 4_500, 6, DECODE_ATTEMPTS).await;
}
