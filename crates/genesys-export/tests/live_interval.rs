//! End to end over loopback: exports of intervals whose results change while they are paged
//! (keel-sim churn: conversations inserted at random places in the sort order, or removed,
//! after every page served). Every test checks the output against what the simulator held
//! when the export started and what churn did: each conversation of the start once, each late
//! arrival at most once, nothing that was never there, nothing lost but removed ones.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use keel_genesys::Interval;
use keel_sim::{Fault, SimBuilder, SimHandle};

/// Two days: two parts of a day, exported in parallel with `--prefetch` above 1.
const TWO_DAYS: &str = "2026-01-01T00:00:00Z/2026-01-03T00:00:00Z";

fn query_of(interval: &str) -> serde_json::Value {
    serde_json::json!({ "interval": interval })
}

fn id_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
    v["conversationId"].as_str().expect("an id").to_owned()
}

/// The ids the simulator holds for `interval` now.
fn ids_now(sim: &SimHandle, interval: &str) -> Vec<String> {
    let truth = sim.ground_truth(&query_of(interval)).unwrap();
    truth.map(|l| id_of(&l)).collect()
}

/// What the checks found.
#[derive(Debug)]
struct Checked {
    written: usize,
    late: u64,
}

/// Asserts `out` holds each conversation of `initial` that churn never removed exactly once,
/// no id twice, only ids of `initial` or inserted by churn, each byte for byte as the
/// simulator holds it (unless removed since).
fn assert_exactly_once(sim: &SimHandle, interval: &str, initial: &[String], out: &Path) -> Checked {
    let churn = sim.churn_truth();
    let text = std::fs::read_to_string(out).expect("output exists");
    let now: HashMap<String, String> = sim
        .ground_truth(&query_of(interval))
        .unwrap()
        .map(|l| (id_of(&l), l))
        .collect();
    let initial_set: HashSet<&String> = initial.iter().collect();
    let inserted: HashSet<&String> = churn.inserted.iter().collect();
    let removed: HashSet<&String> = churn.removed.iter().collect();
    let mut written = HashSet::new();
    let mut late = 0;
    for line in text.lines() {
        let id = id_of(line);
        assert!(
            initial_set.contains(&id) || inserted.contains(&id),
            "{id} was never in the results"
        );
        if let Some(want) = now.get(&id) {
            assert_eq!(line, want, "{id} is not the record the API sent");
        }
        late += u64::from(inserted.contains(&id));
        assert!(written.insert(id.clone()), "{id} written twice");
    }
    let lost: Vec<&String> = initial
        .iter()
        .filter(|id| !removed.contains(id) && !written.contains(*id))
        .collect();
    assert!(lost.is_empty(), "lost {} records: {lost:?}", lost.len());
    for id in &churn.first_page_ids {
        assert!(
            written.contains(id) || removed.contains(id),
            "{id} of the first page's results is missing"
        );
    }
    assert!(!written.is_empty());
    Checked {
        written: written.len(),
        late,
    }
}

/// Runs the export of `interval` in-process with `extra` flags.
async fn export_of(
    sim: &SimHandle,
    interval: &str,
    out: &Path,
    extra: &[&str],
) -> Result<genesys_export::Summary, genesys_export::ExportError> {
    let mut argv: Vec<String> = vec!["genesys-export".to_owned()];
    argv.extend(base_flags(sim, out));
    let at = argv.iter().position(|a| a == "--interval").unwrap();
    argv[at + 1] = interval.to_owned();
    argv.extend(extra.iter().map(|s| s.to_string()));
    let args = <genesys_export::Args as clap::Parser>::try_parse_from(argv).expect("valid flags");
    let creds = keel_genesys::Credentials::new(
        sim.client_id(),
        secrecy::SecretString::from(sim.client_secret().to_owned()),
    );
    genesys_export::run_with_credentials(args, creds).await
}

/// A simulator of `conversations` over `span_hours` from the data start, inserting `inserts`
/// conversations at random places in the part just paged after every page served.
fn growing(conversations: u64, span_hours: u64, inserts: u64) -> SimBuilder {
    sim(conversations)
        .data_span(Duration::from_secs(span_hours * 3_600))
        .churn_inserts_per_page(inserts)
}

async fn export_growing(sim: SimHandle, interval: &str, flags: &[&str]) -> (SimHandle, Checked) {
    let initial = ids_now(&sim, interval);
    let (_dir, out) = out_file("c.ndjson");
    let mut args = vec!["--page-size", "50"];
    args.extend_from_slice(flags);
    let summary = export_of(&sim, interval, &out, &args)
        .await
        .unwrap_or_else(|e| panic!("the export stopped: {}", e.report()));
    let checked = assert_exactly_once(&sim, interval, &initial, &out);
    assert!(sim.churn_truth().inserted.len() > 20, "the results grew");
    assert!(checked.late > 0, "late arrivals were picked up");
    assert_eq!(summary.conversations, checked.written as u64);
    assert_eq!(
        summary.late_arrivals, checked.late,
        "the summary counts the late arrivals written"
    );
    (sim, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_interval_paged_one_page_at_a_time_is_exported_exactly_once() {
    let sim = growing(1_500, 20, 2).start().await.unwrap();
    export_growing(sim, INTERVAL, &["--prefetch", "1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_interval_paged_eight_pages_ahead_is_exported_exactly_once() {
    let sim = growing(1_500, 20, 2).start().await.unwrap();
    export_growing(sim, INTERVAL, &["--prefetch", "8"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_interval_of_two_parts_in_parallel_is_exported_exactly_once() {
    let sim = growing(3_000, 40, 2).start().await.unwrap();
    let (sim, _) = export_growing(sim, TWO_DAYS, &["--prefetch", "8"]).await;
    // NOTE: churn inserts into the interval of the page just served: both parts grew.
    let day2: Interval = "2026-01-02T00:00:00Z/2026-01-03T00:00:00Z".parse().unwrap();
    let starts_day2 = sim
        .churn_truth()
        .inserted
        .iter()
        .filter(|id| {
            let json = sim.conversation_json_now(id);
            json.is_some_and(|j| in_interval(&j, day2))
        })
        .count();
    assert!(starts_day2 > 0, "the second part grew too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_interval_under_401s_and_429s_is_exported_exactly_once() {
    let sim = growing(3_000, 40, 2)
        .revoke_after_requests(7)
        .fault(
            4,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .fault(
            15,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .start()
        .await
        .unwrap();
    let (sim, _) = export_growing(sim, TWO_DAYS, &["--prefetch", "8"]).await;
    let stats = sim.stats();
    assert!(stats.revoked_token >= 2, "{stats:?}");
    assert_eq!(stats.rate_limited, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrinking_interval_is_read_again_until_nothing_is_lost() {
    // Two conversations removed after each of the first 8 pages, anywhere in the part.
    let sim = sim(1_500)
        .churn_removals_per_page(2)
        .churn_pages(8)
        .start()
        .await
        .unwrap();
    let initial = ids_now(&sim, INTERVAL);
    let (_dir, out) = out_file("c.ndjson");
    let summary = run_export(&sim, &out, &["--page-size", "50", "--prefetch", "4"])
        .await
        .unwrap_or_else(|e| panic!("the export stopped: {}", e.report()));
    assert_eq!(sim.churn_truth().removed.len(), 16, "the results shrank");
    let checked = assert_exactly_once(&sim, INTERVAL, &initial, &out);
    assert_eq!(checked.late, 0);
    assert_eq!(summary.conversations, checked.written as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_that_never_stops_shrinking_stops_with_a_clear_error_and_no_loss() {
    let sim = sim(1_500).churn_removals_per_page(1).start().await.unwrap();
    let initial = ids_now(&sim, INTERVAL);
    let (_dir, out) = out_file("c.ndjson");
    let err = run_export(
        &sim,
        &out,
        &["--page-size", "50", "--prefetch", "4", "--resume"],
    )
    .await
    .expect_err("the part never settles");
    let report = err.report().to_string();
    assert_eq!(err.exit_code(), 4, "{report}");
    assert!(
        report.contains("2026-01-01T00:00:00"),
        "names the interval: {report}"
    );
    assert!(report.contains("removed"), "says what changed: {report}");
    assert!(
        report.contains("--resume"),
        "says how to continue: {report}"
    );
    // What was written is exact so far: each once, each from the results.
    let text = std::fs::read_to_string(&out).unwrap();
    let initial: HashSet<String> = initial.into_iter().collect();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let id = id_of(line);
        assert!(initial.contains(&id), "{id} was never in the results");
        assert!(seen.insert(id.clone()), "{id} written twice");
    }
    // The checkpoint reads the part again from its first page, skipping what was written.
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint_path(&out)).unwrap()).unwrap();
    let text = cp.to_string();
    assert!(text.contains("\"pageNumber\":0"), "{text}");
    assert!(seen.iter().all(|id| text.contains(id.as_str())), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_a_growing_part_is_paged_then_resumed_exports_each_once() {
    // 60 pages of 50, two in flight, 40 ms each; two conversations inserted after every
    // page. The run is killed (SIGKILL) once the checkpoint shows 12 pages, long after the
    // part was seen to grow, and resumed while the part keeps growing.
    let sim = growing(3_000, 20, 2)
        .page_latency(Duration::from_millis(40))
        .start()
        .await
        .unwrap();
    let initial = ids_now(&sim, INTERVAL);
    let (_dir, out) = out_file("c.ndjson");
    let checkpoint = checkpoint_path(&out);
    let flags = ["--page-size", "50", "--prefetch", "2", "--resume"];
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out)).args(flags);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(bytes) = std::fs::read(&checkpoint) {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if v["pages"].as_u64().unwrap() >= 12 {
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no progress recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let grown = sim.churn_truth().inserted.len();
    assert!(grown >= 24, "the part grew before the kill: {grown}");
    // A crash in the middle of writing a page leaves a partial record after the checkpoint.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .unwrap()
        .write_all(b"{\"conversationId\":\"torn")
        .unwrap();

    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out)).args(flags);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after"), "{}", stderr(&o));
    assert!(sim.churn_truth().inserted.len() > grown, "it grew on");
    assert_exactly_once(&sim, INTERVAL, &initial, &out);
    assert!(
        !checkpoint.exists(),
        "a complete export removes its checkpoint"
    );
}

fn in_interval(json: &str, interval: Interval) -> bool {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let start = v["conversationStart"].as_str().unwrap();
    let at =
        time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).unwrap();
    interval.contains(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_is_logged_at_info_and_the_summary_counts_the_late_arrivals() {
    let sim = growing(1_500, 20, 2).start().await.unwrap();
    let initial = ids_now(&sim, INTERVAL);
    let (_dir, out) = out_file("c.ndjson");
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .args(["--page-size", "50", "--prefetch", "4"])
        .env("RUST_LOG", "keel_genesys=info");
    let o = run_binary(cmd).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let checked = assert_exactly_once(&sim, INTERVAL, &initial, &out);
    assert!(
        err.contains("INFO") && err.contains("results of the part grew while it was paged"),
        "{err}"
    );
    assert!(
        err.contains(&format!("including {} late arrivals", checked.late)),
        "{err}"
    );
}
