//! Measurement 1: requests/s and p50/p99 latency of each client against the same loopback
//! server, in alternating rounds, with throughput ratios against the bare client.
//!
//! Each round runs every contender once for the same duration, the order rotating from round
//! to round, so slow drift of a shared machine (another build starting, a CPU clocking down)
//! falls on all contenders alike. The throughput ratio is taken per round, against the bare
//! client's figure in that round, and the median over rounds is reported.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use keel_bench::clients::{AnyTarget, BareTarget};
//! use keel_bench::overhead::{run, Contender, OverheadConfig};
//! use keel_bench::server::LoopbackServer;
//!
//! let server = LoopbackServer::start().unwrap();
//! let bare = BareTarget::new(&server.url("/ping")).unwrap();
//! let contenders = vec![Contender::new("bare", AnyTarget::Bare(bare))];
//! let config = OverheadConfig {
//!     rounds: 1,
//!     round_time: Duration::from_millis(20),
//!     concurrency: vec![1],
//!     warm_up: 2,
//! };
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let rows = run(&contenders, &config).await.unwrap();
//! assert_eq!(rows[0].ratio, 1.0);
//! # });
//! ```

use std::time::Duration;

use tower::BoxError;

use crate::clients::AnyTarget;
use crate::load::{drive, median, warm_up, Round};

/// How long and how often to measure.
#[derive(Debug, Clone)]
pub struct OverheadConfig {
    /// Rounds per concurrency level; every contender runs once per round.
    pub rounds: usize,
    /// Measured time of one contender in one round.
    pub round_time: Duration,
    /// The concurrency levels, in the order they run.
    pub concurrency: Vec<usize>,
    /// Requests each caller sends before a measured run (connections open, pools warm).
    pub warm_up: usize,
}

/// A named client under test. The first contender is the baseline of the ratios.
#[derive(Debug, Clone)]
pub struct Contender {
    /// Its name in the tables.
    pub name: &'static str,
    /// The client.
    pub target: AnyTarget,
}

impl Contender {
    /// A contender named `name`.
    pub fn new(name: &'static str, target: AnyTarget) -> Self {
        Self { name, target }
    }
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The contender's name.
    pub name: &'static str,
    /// Concurrent callers.
    pub concurrency: usize,
    /// Median requests/s over the rounds.
    pub rps: f64,
    /// Median over rounds of this contender's requests/s divided by the baseline's in the
    /// same round.
    pub ratio: f64,
    /// Median over rounds of the process's CPU time per request (client and server), in µs.
    pub cpu_us: f64,
    /// Median over rounds of the baseline's CPU time per request divided by this
    /// contender's, in the same round: requests per CPU-second relative to the baseline, the
    /// throughput ratio a machine with nothing else to run would show.
    pub cpu_ratio: f64,
    /// Share of the rounds' time the process spent waiting for a CPU (run-queue wait over
    /// wait plus run): how contended the machine was.
    pub cpu_wait_share: f64,
    /// Median over rounds of the p50 latency, in microseconds.
    pub p50_us: f64,
    /// Median over rounds of the p99 latency, in microseconds.
    pub p99_us: f64,
    /// Failed requests over all rounds (expected 0).
    pub errors: u64,
}

/// Runs every contender at every concurrency level for `config.rounds` rounds.
///
/// # Errors
///
/// When a warm-up request fails (the server or a client is broken).
pub async fn run(contenders: &[Contender], config: &OverheadConfig) -> Result<Vec<Row>, BoxError> {
    let mut rows = Vec::new();
    for &concurrency in &config.concurrency {
        for c in contenders {
            warm_up(&c.target, concurrency, config.warm_up).await?;
        }
        let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); contenders.len()];
        for r in 0..config.rounds {
            for k in 0..contenders.len() {
                let i = (r + k) % contenders.len();
                let round = drive(&contenders[i].target, concurrency, config.round_time).await;
                rounds[i].push(round);
            }
        }
        for (c, rs) in contenders.iter().zip(&rounds) {
            let ratios: Vec<f64> = rs
                .iter()
                .zip(&rounds[0])
                .map(|(mine, base)| mine.rps() / base.rps())
                .collect();
            let cpu_ratios: Vec<f64> = rs
                .iter()
                .zip(&rounds[0])
                .map(|(mine, base)| base.cpu_us_per_request() / mine.cpu_us_per_request())
                .collect();
            let (run, wait) = rs.iter().fold((0.0, 0.0), |(r, w), x| {
                (r + x.cpu.as_secs_f64(), w + x.cpu_wait.as_secs_f64())
            });
            rows.push(Row {
                name: c.name,
                concurrency,
                rps: median(&rs.iter().map(Round::rps).collect::<Vec<_>>()),
                ratio: median(&ratios),
                cpu_us: median(&rs.iter().map(Round::cpu_us_per_request).collect::<Vec<_>>()),
                cpu_ratio: median(&cpu_ratios),
                cpu_wait_share: wait / (run + wait).max(f64::MIN_POSITIVE),
                p50_us: median(&rs.iter().map(|r| r.latency_us(0.5)).collect::<Vec<_>>()),
                p99_us: median(&rs.iter().map(|r| r.latency_us(0.99)).collect::<Vec<_>>()),
                errors: rs.iter().map(|r| r.errors).sum(),
            });
        }
    }
    Ok(rows)
}

/// The rows as a markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| client | concurrency | requests/s | × bare | CPU µs/request | × bare (CPU) | p50 µs | p99 µs | CPU wait | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.3} | {:.1} | {:.3} | {:.1} | {:.1} | {:.0}% | {} |\n",
            r.name,
            r.concurrency,
            r.rps,
            r.ratio,
            r.cpu_us,
            r.cpu_ratio,
            r.p50_us,
            r.p99_us,
            r.cpu_wait_share * 100.0,
            r.errors
        ));
    }
    out
}
