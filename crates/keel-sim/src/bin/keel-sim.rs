//! `keel-sim`: run the Genesys Cloud simulator on loopback.
//!
//! Prints `listening on http://127.0.0.1:PORT` as its first stdout line, then serves until
//! interrupted. Counters (per OAuth client too) are at `GET /__stats`, churn's record at
//! `GET /__churn`, and the simulator clock at `GET /__clock` (moved by `POST /__clock` with
//! `{"advanceMs": N}` or `{"nowMs": T}`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use keel_sim::{parse_scripted_fault, Fault, RetryAfterFormat, Simulator};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RetryAfterArg {
    Seconds,
    HttpDate,
}

/// A Genesys Cloud simulator (OAuth + analytics) with token expiry, revocation, 429s and faults.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Conversations visible from the start.
    #[arg(long, default_value_t = 1_000)]
    conversations: u64,
    /// Seed of the data and of random faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Start of the data, Unix milliseconds (default 2026-01-01T00:00:00Z).
    #[arg(long, default_value_t = 1_767_225_600_000)]
    data_start_ms: i64,
    /// Time span the data covers, in seconds.
    #[arg(long, default_value_t = 7 * 86_400)]
    data_span_secs: u64,
    /// Users served by GET /api/v2/users.
    #[arg(long, default_value_t = 120)]
    users: u64,
    /// Accepted client id.
    #[arg(long, env = "KEEL_SIM_CLIENT_ID", default_value = "sim-client")]
    client_id: String,
    /// Accepted client secret.
    #[arg(
        long,
        env = "KEEL_SIM_CLIENT_SECRET",
        default_value = "sim-secret",
        hide_default_value = true
    )]
    client_secret: String,
    /// Advertised token lifetime, seconds.
    #[arg(long, default_value_t = 86_400)]
    token_lifetime_secs: u64,
    /// Revoke tokens this many milliseconds after issue.
    #[arg(long)]
    revoke_after_ms: Option<u64>,
    /// Revoke each token after this many authenticated API requests.
    #[arg(long)]
    revoke_after_requests: Option<u64>,
    /// Rate limit, requests per second.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Bucket size of the rate limit (default: the rate).
    #[arg(long)]
    rate_limit_burst: Option<u32>,
    /// Retry-After form on 429s.
    #[arg(long, value_enum, default_value = "seconds")]
    retry_after: RetryAfterArg,
    /// Probability of 503 per API request.
    #[arg(long, default_value_t = 0.0)]
    p503: f64,
    /// Every 503 carries Retry-After of this many seconds.
    #[arg(long)]
    retry_after_503: Option<u64>,
    /// Probability of a dropped connection per API request.
    #[arg(long, default_value_t = 0.0)]
    p_drop: f64,
    /// Latency added to every page, milliseconds.
    #[arg(long, default_value_t = 0)]
    page_latency_ms: u64,
    /// Scripted fault N=FAULT by API request number, repeatable: 429[:SECS], 503, status:CODE,
    /// drop, truncate, malformed, delay:MILLIS, revoke; after handling the request (a job is
    /// created): drop-after, status-after:CODE, delay-after:MILLIS.
    #[arg(long = "fault", value_parser = parse_scripted_fault)]
    faults: Vec<(u64, Fault)>,
    /// The token endpoint answers 503 to its first N requests.
    #[arg(long, default_value_t = 0)]
    token_outage_requests: u64,
    /// The token endpoint answers 503 for this many milliseconds after start.
    #[arg(long, default_value_t = 0)]
    token_outage_ms: u64,
    /// Milliseconds an async job stays QUEUED.
    #[arg(long, default_value_t = 0)]
    job_delay_ms: u64,
    /// Seconds before a job is forgotten.
    #[arg(long, default_value_t = 3_600)]
    job_ttl_secs: u64,
    /// 1-based job number that ends FAILED, repeatable.
    #[arg(long = "failing-job")]
    failing_jobs: Vec<u64>,
    /// Extra conversations that appear mid-export...
    #[arg(long, default_value_t = 0)]
    late_conversations: u64,
    /// ...once this many details pages were served.
    #[arg(long, default_value_t = 0)]
    late_after_pages: u64,
    /// Further accepted OAuth clients, ID:SECRET, comma-separated (from the environment so
    /// no secret is in argv); each has its own rate-limit bucket and counters.
    #[arg(
        long,
        env = "KEEL_SIM_EXTRA_CLIENTS",
        value_delimiter = ',',
        value_parser = parse_client,
        hide_env_values = true
    )]
    extra_clients: Vec<(String, String)>,
    /// New conversations inserted inside the queried interval after each details page.
    #[arg(long, default_value_t = 0)]
    churn_inserts_per_page: u64,
    /// Conversations of the queried result set removed after each details page.
    #[arg(long, default_value_t = 0)]
    churn_removals_per_page: u64,
    /// Stop inserting after this many insertions in all.
    #[arg(long)]
    churn_max_inserts: Option<u64>,
    /// Stop removing after this many removals in all.
    #[arg(long)]
    churn_max_removals: Option<u64>,
    /// Churn only after each of the first P details pages.
    #[arg(long)]
    churn_pages: Option<u64>,
    /// Live data: answer as of the simulator clock (in-progress conversations, arrivals).
    #[arg(long)]
    live: bool,
    /// Live data, with the simulator clock frozen at this Unix time in milliseconds (move it
    /// with POST /__clock).
    #[arg(long)]
    clock_at_ms: Option<i64>,
    /// Live data, with new conversations arriving after the data span at this rate per minute.
    #[arg(long)]
    arrivals_per_minute: Option<f64>,
}

fn parse_client(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok((id.to_owned(), secret.to_owned()))
        }
        _ => Err("expected CLIENT_ID:SECRET".to_owned()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut b = Simulator::builder()
        .bind(a.bind)
        .conversations(a.conversations)
        .seed(a.seed)
        .data_start_ms(a.data_start_ms)
        .data_span(Duration::from_secs(a.data_span_secs))
        .users(a.users)
        .credentials(a.client_id, a.client_secret)
        .token_lifetime(Duration::from_secs(a.token_lifetime_secs))
        .retry_after_format(match a.retry_after {
            RetryAfterArg::Seconds => RetryAfterFormat::Seconds,
            RetryAfterArg::HttpDate => RetryAfterFormat::HttpDate,
        })
        .unavailable_probability(a.p503)
        .drop_probability(a.p_drop)
        .page_latency(Duration::from_millis(a.page_latency_ms))
        .faults(a.faults)
        .token_outage_requests(a.token_outage_requests)
        .token_outage_for(Duration::from_millis(a.token_outage_ms))
        .job_delay(Duration::from_millis(a.job_delay_ms))
        .job_ttl(Duration::from_secs(a.job_ttl_secs))
        .late_conversations(a.late_conversations, a.late_after_pages)
        .churn_inserts_per_page(a.churn_inserts_per_page)
        .churn_removals_per_page(a.churn_removals_per_page)
        .live(a.live);
    for (id, secret) in a.extra_clients {
        b = b.client(id, secret);
    }
    if let Some(n) = a.churn_max_inserts {
        b = b.churn_max_inserts(n);
    }
    if let Some(n) = a.churn_max_removals {
        b = b.churn_max_removals(n);
    }
    if let Some(n) = a.churn_pages {
        b = b.churn_pages(n);
    }
    if let Some(t) = a.clock_at_ms {
        b = b.clock_at_ms(t);
    }
    if let Some(r) = a.arrivals_per_minute {
        b = b.arrivals_per_minute(r);
    }
    if let Some(ms) = a.revoke_after_ms {
        b = b.revoke_after(Duration::from_millis(ms));
    }
    if let Some(n) = a.revoke_after_requests {
        b = b.revoke_after_requests(n);
    }
    if let Some(secs) = a.retry_after_503 {
        b = b.unavailable_retry_after_secs(secs);
    }
    if let Some(r) = a.rate_limit {
        b = b.rate_limit_per_sec(r);
    }
    if let Some(r) = a.rate_limit_burst {
        b = b.rate_limit_burst(r);
    }
    for job in a.failing_jobs {
        b = b.failing_job(job);
    }
    let sim = match b.start().await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("keel-sim: {e}");
            return ExitCode::from(2);
        }
    };
    println!("listening on {}", sim.base_url());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}
