//! A fleet of `genesys-export` processes sharing one OAuth client, with and without Redis,
//! against one keel-sim with short-lived tokens, revocations and a per-client rate limit.
#![cfg(feature = "redis")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ndjson_is_ground_truth, sim};
use keel_genesys::models::{ConversationQuery, Interval};
use keel_sim::{ClientStats, SimHandle};
use keel_testkit::redis::RedisServer;

const PROCESSES: usize = 8;
/// The simulator's limit for the client, and the fleet's pacing below it.
const RATE_LIMIT: u32 = 40;
const FLEET_RATE: u32 = 30;
const TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Two hours of data per process: process `i` exports hours `2i..2i+2` of the first day.
fn interval(i: usize) -> String {
    format!(
        "2026-01-01T{:02}:00:00Z/2026-01-01T{:02}:00:00Z",
        2 * i,
        2 * i + 2
    )
}

async fn start_sim() -> SimHandle {
    sim(3_200)
        .token_lifetime(TOKEN_LIFETIME)
        .revoke_after(Duration::from_millis(1_500))
        .rate_limit_per_sec(RATE_LIMIT)
        .rate_limit_burst(10)
        .start()
        .await
        .unwrap()
}

fn export(sim: &SimHandle, i: usize, out: &Path, redis: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_genesys-export"));
    let url = sim.base_url();
    cmd.env("GENESYS_CLIENT_ID", sim.client_id())
        .env("GENESYS_CLIENT_SECRET", sim.client_secret())
        .env_remove("RUST_LOG")
        .env_remove("KEEL_REDIS_URL")
        .args(["--api-url", &url, "--login-url", &url])
        .args(["--interval", &interval(i), "--progress", "quiet"])
        .args(["--page-size", "20", "--prefetch", "1"])
        .arg("--out")
        .arg(out);
    if let Some(redis) = redis {
        cmd.args(["--redis", redis, "--fleet-rate", &FLEET_RATE.to_string()]);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().expect("the binary starts")
}

#[derive(Debug)]
struct Run {
    client: ClientStats,
    elapsed: Duration,
    pages: u64,
}

/// Runs the fleet to completion; `during` runs once the fleet is under way (it may stop Redis).
/// Every process must succeed with exactly its interval's records, once each.
async fn run_fleet(sim: &SimHandle, redis: Option<&str>, during: impl FnOnce(&SimHandle)) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let outs: Vec<PathBuf> = (0..PROCESSES)
        .map(|i| dir.path().join(format!("{i}.ndjson")))
        .collect();
    let started = Instant::now();
    let children: Vec<Child> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| export(sim, i, out, redis))
        .collect();
    tokio::task::block_in_place(|| during(sim));
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    for (i, o) in outputs.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "process {i}: {stderr}");
        assert!(!stderr.contains(sim.client_secret()), "{stderr}");
    }
    let mut pages = 0;
    for (i, out) in outs.iter().enumerate() {
        let interval: Interval = interval(i).parse().unwrap();
        let query = serde_json::to_value(ConversationQuery::new(interval)).unwrap();
        pages += assert_ndjson_is_ground_truth(sim, &query, out).div_ceil(20);
    }
    Run {
        client: sim.client_stats(sim.client_id()).unwrap(),
        elapsed,
        pages,
    }
}

fn report(label: &str, run: &Run) {
    let c = &run.client;
    eprintln!(
        "{label}: {} token grants, {} revoked tokens, {} 429s, {} 401s, {} API requests, \
         {:.2} s, {} pages ({:.1} pages/s)",
        c.token_grants,
        c.revoked_tokens,
        c.rate_limited,
        c.unauthorized,
        c.api_requests,
        run.elapsed.as_secs_f64(),
        run.pages,
        run.pages as f64 / run.elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_exports_share_one_token_and_one_rate_budget_through_redis() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let sim = start_sim().await;
    let shared = run_fleet(&sim, Some(&server.url()), |_| {}).await;
    report("with redis", &shared);
    let c = &shared.client;
    let lifetimes = shared.elapsed.as_secs_f64() / TOKEN_LIFETIME.as_secs_f64();
    let bound = c.revoked_tokens + lifetimes.ceil() as u64;
    assert!(c.revoked_tokens >= 1, "the run saw no revocation: {c:?}");
    assert!(
        c.token_grants <= bound,
        "{} grants for {} revocations over {:.1} token lifetimes",
        c.token_grants,
        c.revoked_tokens,
        lifetimes
    );
    assert!(
        c.rate_limited <= 10,
        "{} 429s for the fleet",
        c.rate_limited
    );

    let alone_sim = start_sim().await;
    let alone = run_fleet(&alone_sim, None, |_| {}).await;
    report("without redis", &alone);
    let a = &alone.client;
    assert!(a.token_grants >= PROCESSES as u64, "{a:?}");
    assert!(a.token_grants > c.token_grants, "{a:?} vs {c:?}");
    assert!(a.rate_limited > c.rate_limited, "{a:?} vs {c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_every_export_finishes_exactly_once() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let sim = start_sim().await;
    let run = run_fleet(&sim, Some(&server.url()), |sim| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while sim.client_stats(sim.client_id()).unwrap().api_requests < 40 {
            assert!(Instant::now() < deadline, "the fleet made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        server.stop();
    })
    .await;
    report("redis killed", &run);
    assert!(run.client.api_requests > 40);
}
