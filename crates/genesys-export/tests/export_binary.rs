//! End to end, the `genesys-export` binary as a user runs it, against keel-sim over loopback:
//! exit codes, kill -9 then `--resume`, flat memory over 200,000 conversations (an interval
//! the API can only page after splitting), and `--sim`.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
#[path = "../src/vm_hwm.rs"]
mod vm_hwm;
use vm_hwm::parse_vm_hwm;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_exit_3_naming_the_client_id_without_calling_the_api() {
    let sim = sim(100)
        .credentials("export-client", "the-right-secret")
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .env("GENESYS_CLIENT_SECRET", "w-r-o-n-g-secret-4242");
    let o = run_binary(cmd).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("credentials rejected") && err.contains("export-client"),
        "{err}"
    );
    assert!(
        !err.contains("w-r-o-n-g-secret-4242")
            && !String::from_utf8_lossy(&o.stdout).contains("w-r-o-n-g")
    );
    let stats = sim.stats();
    assert!(
        stats.token_requests >= 1 && stats.token_requests <= 2,
        "{stats:?}"
    );
    assert_eq!(stats.api_requests, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_2_naming_the_flag() {
    let sim = sim(100).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    for (extra, named) in [
        (vec!["--page-size", "101"], "--page-size"),
        (vec!["--page-size", "0"], "--page-size"),
        (vec!["--bogus-flag"], "--bogus-flag"),
        (vec!["--prefetch", "many"], "--prefetch"),
        (vec!["--format", "xml"], "--format"),
        (vec!["--mode", "stream"], "--mode"),
    ] {
        let mut cmd = binary(&sim);
        cmd.args(base_flags(&sim, &out)).args(&extra);
        let o = run_binary(cmd).await;
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(named), "{extra:?}: {}", stderr(&o));
    }
    // A bad interval, given alone (base flags carry one).
    let mut cmd = binary(&sim);
    cmd.args([
        "--api-url",
        &sim.base_url(),
        "--login-url",
        &sim.base_url(),
        "--interval",
        "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z",
    ]);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--interval"), "{}", stderr(&o));
    assert_eq!(sim.stats().token_requests + sim.stats().api_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_exit_2_saying_which() {
    let sim = sim(100).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .env_remove("GENESYS_CLIENT_SECRET");
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("GENESYS_CLIENT_SECRET is not set"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sim.stats().token_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_export_to_a_locked_output_exits_2_naming_it_and_touches_nothing() {
    let sim = sim(300).start().await.unwrap();
    let (dir, out) = out_file("c.ndjson");
    let first: &[u8] = b"{\"conversationId\":\"written-by-the-first-run\"}\n{\"conversa";
    std::fs::write(&out, first).unwrap();
    // The first export is running: it holds the lock.
    let held = hold_lock(&out);
    for extra in [&[][..], &["--resume"][..]] {
        let mut cmd = binary(&sim);
        cmd.args(base_flags(&sim, &out)).args(extra);
        let o = run_binary(cmd).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(
            err.contains("another export is writing") && err.contains(&out.display().to_string()),
            "{extra:?}: {err}"
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            first,
            "{extra:?}: output touched"
        );
        assert!(!checkpoint_path(&out).exists(), "{extra:?}");
    }
    let stats = sim.stats();
    assert_eq!(stats.token_requests + stats.api_requests, 0, "{stats:?}");

    // Once the first export has ended, the same command runs, and leaves only its output.
    drop(held);
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out)).arg("--resume");
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["c.ndjson"], "no lock file or checkpoint left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_then_resumed_exports_every_record_exactly_once() {
    // 80 pages, two in flight, 40 ms each: the run lasts at least 1.6 s, and is killed once
    // the checkpoint shows 10 pages.
    let sim = sim(4_000)
        .page_latency(Duration::from_millis(40))
        .revoke_after_requests(15)
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let checkpoint = checkpoint_path(&out);
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .args(["--page-size", "50", "--prefetch", "2", "--resume"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();

    // Observe the checkpoint file until it records progress, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    let recorded = loop {
        if let Ok(bytes) = std::fs::read(&checkpoint) {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .expect("checkpoint is replaced atomically, never torn");
            if v["pages"].as_u64().unwrap() >= 10 {
                break v;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no progress recorded");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let len_at_kill = std::fs::metadata(&out).unwrap().len();
    assert!(len_at_kill >= recorded["output_len"].as_u64().unwrap());
    assert!(checkpoint.exists(), "a killed run leaves its checkpoint");
    // A crash in the middle of writing a page leaves a partial record after the checkpoint.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .unwrap()
        .write_all(b"{\"conversationId\":\"torn")
        .unwrap();

    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .args(["--page-size", "50", "--resume"]);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after"), "{}", stderr(&o));
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    assert!(
        !checkpoint.exists(),
        "a complete export removes its checkpoint"
    );
    assert!(
        sim.stats().pages_served < 80 + 10,
        "the resumed run did not start over: {:?}",
        sim.stats()
    );
}

/// Runs the binary over `conversations` (all in one day), returns its peak memory (bytes),
/// checking the output against the ground truth.
async fn peak_memory_of_export(conversations: u64) -> u64 {
    let sim = sim(conversations).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (status, err, polled) = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let status_path = format!("/proc/{}/status", child.id());
        let mut polled = 0;
        // NOTE: observation only: VmHWM of the running child, as it grows.
        while child.try_wait().unwrap().is_none() {
            if let Some(hwm) = std::fs::read_to_string(&status_path)
                .ok()
                .as_deref()
                .and_then(parse_vm_hwm)
            {
                polled = polled.max(hwm);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        (
            o.status,
            String::from_utf8_lossy(&o.stderr).into_owned(),
            polled,
        )
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let n = assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    assert_eq!(n, conversations);
    assert_eq!(
        sim.stats().bad_requests,
        0,
        "never paged past the API's limit: {:?}",
        sim.stats()
    );
    // The child's own final VmHWM (its summary) is the exact peak; the polled one is a lower bound.
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("peak memory:"))
        .unwrap_or_else(|| panic!("{err}"));
    let mib: f64 = line
        .trim()
        .trim_start_matches("peak memory:")
        .trim_end_matches("MiB")
        .trim()
        .parse()
        .unwrap();
    let reported = (mib * 1024.0 * 1024.0) as u64;
    assert!(
        polled > 0 && polled <= reported + 1024 * 1024,
        "polled {polled} vs reported {reported}"
    );
    reported
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_conversations_stream_in_flat_memory_through_a_split_interval() {
    let small = peak_memory_of_export(10_000).await;
    let large = peak_memory_of_export(200_000).await;
    eprintln!("peak memory: 10k conversations {small} B, 200k conversations {large} B");
    assert!(
        (large as f64) < small as f64 * 1.5 + 10.0 * 1024.0 * 1024.0,
        "peak memory grew with the export: {small} B for 10k, {large} B for 200k"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_flag_runs_the_same_export_against_an_embedded_simulator() {
    let (_dir, out) = out_file("conversations.ndjson");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_genesys-export"));
    cmd.args(["--sim", "--sim-conversations", "1500", "--out"])
        .arg(&out);
    cmd.env_remove("GENESYS_CLIENT_ID")
        .env_remove("GENESYS_CLIENT_SECRET");
    let o = run_binary(cmd).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("simulator at http://127.0.0.1:") && err.contains("faults:"),
        "{err}"
    );
    assert!(err.contains("1500 conversations"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let ids: HashSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["conversationId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        (text.lines().count(), ids.len()),
        (1_500, 1_500),
        "every record once"
    );
    assert!(!err.contains("sim-secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_exits_5_naming_it_before_any_api_call() {
    let sim = sim(100).start().await.unwrap();
    let (dir, _) = out_file("unused");
    let out = dir.path().join("no-such-dir").join("c.ndjson");
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out));
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no-such-dir/c.ndjson"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sim.stats().api_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_out_the_records_go_to_stdout_and_nothing_else_does() {
    let sim = sim(700).start().await.unwrap();
    let url = sim.base_url();
    let mut cmd = binary(&sim);
    cmd.args([
        "--api-url",
        &url,
        "--login-url",
        &url,
        "--interval",
        INTERVAL,
        "--page-size",
        "60",
    ]);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_dir, out) = out_file("stdout.ndjson");
    std::fs::write(&out, &o.stdout).unwrap();
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
    assert!(
        stderr(&o).contains("700 conversations, 12 pages to <stdout>"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_can_come_from_a_file() {
    let sim = sim(300)
        .credentials("file-client", "file-secret")
        .start()
        .await
        .unwrap();
    let (dir, out) = out_file("c.ndjson");
    let creds = dir.path().join("genesys.env");
    std::fs::write(
        &creds,
        "# keel\nGENESYS_CLIENT_ID=file-client\nGENESYS_CLIENT_SECRET='file-secret'\n",
    )
    .unwrap();
    let mut cmd = binary(&sim);
    cmd.env_remove("GENESYS_CLIENT_ID")
        .env_remove("GENESYS_CLIENT_SECRET");
    cmd.args(base_flags(&sim, &out))
        .arg("--credentials-file")
        .arg(&creds);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_between_pages_with_a_matching_checkpoint_then_resume_completes() {
    let sim = sim(3_000)
        .page_latency(Duration::from_millis(40))
        .start()
        .await
        .unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let checkpoint = checkpoint_path(&out);
    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .args(["--page-size", "50", "--prefetch", "2", "--resume"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let progressed = |path: &std::path::Path| {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["pages"].as_u64().unwrap() >= 5)
    };
    while !progressed(&checkpoint) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no progress recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interrupted; run again with --resume"),
        "{}",
        stderr(&o)
    );
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        recorded["output_len"].as_u64().unwrap(),
        "an interrupted run leaves whole pages, all checkpointed"
    );

    let mut cmd = binary(&sim);
    cmd.args(base_flags(&sim, &out))
        .args(["--page-size", "50", "--prefetch", "2", "--resume"]);
    let o = run_binary(cmd).await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ndjson_is_ground_truth(&sim, &query_json(None), &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_messages_to_a_pipe_carry_no_ansi_escapes() {
    let sim = sim(300).start().await.unwrap();
    let (_dir, out) = out_file("c.ndjson");
    let mut cmd = binary(&sim);
    // NOTE: stderr is a pipe here; DEBUG makes the stack's tracing events reach it.
    let flags =
        base_flags(&sim, &out)
            .into_iter()
            .map(|f| if f == "quiet" { "log".to_owned() } else { f });
    cmd.args(flags)
        .args(["--log-every", "1"])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR");
    let o = run_binary(cmd).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("DEBUG"), "tracing output is there: {err}");
    assert!(err.contains("genesys-export: 3 pages"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in piped stderr: {err:?}"
    );
}
