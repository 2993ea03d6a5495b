//! Conversations per second from keel-sim into NDJSON, SQLite and PostgreSQL, end to end.
//!
//! ```text
//! cargo build --release -p genesys-export
//! cargo run --release -p genesys-export --example db_export_bench -- [CONVERSATIONS] [OUTPUT...]
//! ```
//!
//! Runs the release `genesys-export` binary once per OUTPUT (`ndjson`, `sqlite`, `postgres`;
//! default all three), one after the other, each against its own embedded simulator (`--sim
//! --sim-no-faults --sim-page-latency 0ms`, CONVERSATIONS conversations, default 50,000): into
//! an NDJSON file, into an SQLite file and into a PostgreSQL database (a throwaway cluster
//! from keel-testkit, durable settings, skipped when PostgreSQL is not installed; or, with
//! `KEEL_BENCH_PG_URL`, an empty database on a server of your own, the password from
//! `PGPASSWORD` or `.pgpass`). Each run starts after a `sync`. Prints each run's wall time,
//! conversations per second and the peak memory the binary reports. The simulator runs
//! inside the measured process, so the figures are the whole pipeline's, simulator included.

use std::process::Command;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let only: Vec<String> = std::env::args().skip(2).collect();
    let runs_ = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("genesys-export")))
        .filter(|p| p.exists())
        .expect("build the binary first: cargo build --release -p genesys-export");
    let dir = tempfile::tempdir().expect("tempdir");
    println!(
        "{n} conversations from keel-sim, load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    let mut runs: Vec<(&str, String, Option<String>)> = vec![
        (
            "ndjson",
            dir.path().join("c.ndjson").display().to_string(),
            None,
        ),
        (
            "sqlite",
            format!("sqlite:{}", dir.path().join("c.db").display()),
            None,
        ),
    ];
    runs.retain(|r| runs_(r.0));
    let own = std::env::var("KEEL_BENCH_PG_URL").ok();
    let pg = match (&own, runs_("postgres")) {
        (None, true) => keel_testkit::postgres::PgCluster::shared().map(|c| c.create_database()),
        _ => None,
    };
    match (&own, &pg) {
        _ if !runs_("postgres") => {}
        (Some(url), _) => runs.push(("postgres", url.clone(), None)),
        (None, Some(db)) => runs.push((
            "postgres",
            db.url_without_password(),
            Some(db.password().to_owned()),
        )),
        (None, None) => println!("postgres skipped: PostgreSQL is not installed"),
    }

    for (name, out, password) in runs {
        // NOTE: the previous run's files are written back first, so that their write-back
        // does not land in this run's time.
        let _ = Command::new("sync").status();
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--sim",
            "--sim-no-faults",
            "--sim-page-latency",
            "0ms",
            "--sim-conversations",
            &n.to_string(),
            "--progress",
            "quiet",
            "--out",
            &out,
        ]);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        let t = Instant::now();
        let o = cmd.output().expect("the binary runs");
        let wall = t.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {stderr}");
        let peak = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("peak memory: "))
            .unwrap_or("?");
        println!(
            "{name:<8} {:>7.0} conv/s ({wall:.2} s wall, process start to exit), peak memory {peak}",
            n as f64 / wall
        );
    }
}
