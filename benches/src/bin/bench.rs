//! The `bench` binary: runs keel's performance measurements and prints their tables.
//!
//! `cargo run --release -p keel-bench --bin bench -- all` runs everything in a few minutes;
//! each measurement also runs alone (`overhead`, `allocs`, …). See `BENCHMARKS.md`.

use std::time::Duration;

use clap::{Parser, Subcommand};
use genesys_export::Args as ExportArgs;
use keel_bench::alloc_counter::CountingAlloc;
use keel_bench::clients::{
    warm_tokens, AnyTarget, BareTarget, KeelLayersTarget, KeelTarget, ReqwestTarget,
};
use keel_bench::load::Target;
use keel_bench::machine::Machine;
use keel_bench::overhead::{Contender, OverheadConfig};
use keel_bench::server::LoopbackServer;
use keel_bench::sim::{fetch_token, SimPageTarget, SimThread};
use keel_bench::{allocs, export, instructions, memory, overhead, release, single_flight};
use keel_sim::Simulator;
use tower::BoxError;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A fixed, made-up bearer token for the contenders that send one.
const TOKEN: &str = "bench-token-0123456789abcdef0123456789abcdef";

#[derive(Debug, Parser)]
#[command(about = "keel's performance harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Rounds per concurrency level in `overhead`.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Measured milliseconds per contender per round in `overhead`.
    #[arg(long, default_value_t = 1000)]
    round_ms: u64,
    /// Fewer rounds and smaller exports: a smoke run of the whole harness.
    #[arg(long)]
    quick: bool,
    /// Requests per contender counted in `allocs`.
    #[arg(long, default_value_t = 5000)]
    alloc_requests: u64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every measurement, in order.
    All,
    /// 1. requests/s and p50/p99: bare hyper vs keel vs reqwest-middleware.
    Overhead,
    /// 2. allocations per request.
    Allocs,
    /// 3. single-flight refresh: 10,000 callers on an expired token.
    SingleFlight,
    /// 4. export pages/s against keel-sim at 0, 50, 200 ms per page: prefetch vs page by page.
    Export,
    /// 5. peak RSS of an export of 10k, 50k and 200k conversations (child processes).
    Memory,
    /// 6. keel-sim's own throughput (token-authenticated page requests/s).
    Sim,
    /// Measurement 8: per-request cost of the Redis-backed stack (shared token and gate, fleet
    /// pacing) vs the in-process stack (needs redis-server; not part of `all`).
    Fleet,
    /// Measurement 9: a sustained overload against a per-second limit, held requests released at once and
    /// paced; not part of `all` (two runs of `--secs` each).
    Release {
        /// The simulator's limit, requests per second.
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Concurrent callers.
        #[arg(long, default_value_t = 64)]
        callers: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 60)]
        secs: u64,
    },
    /// Instructions per request under callgrind (needs valgrind; part of `all` when found).
    Instructions,
    /// N sequential requests through one client, nothing else: for profilers (`valgrind
    /// --tool=callgrind`), where the difference of two request counts gives instructions per
    /// request.
    One {
        /// `bare`, `keel`, `keel-layers` (the retrying layers stacked separately) or `reqwest`.
        client: String,
        /// Requests to send.
        #[arg(default_value_t = 2_000)]
        requests: u64,
    },
    /// Runs `genesys-export` with these arguments (the child process of `memory`).
    #[command(hide = true)]
    ExportChild {
        /// `genesys-export`'s arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<(), BoxError> {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.rounds = cli.rounds.min(3);
        cli.round_ms = cli.round_ms.min(300);
        cli.alloc_requests = cli.alloc_requests.min(1_000);
    }
    if let Cmd::ExportChild { args } = &cli.command {
        return export_child(args);
    }
    if let Cmd::One { client, requests } = &cli.command {
        return one(client, *requests);
    }
    println!("# keel-bench on {}\n", Machine::detect());
    let all = matches!(cli.command, Cmd::All);
    if all || matches!(cli.command, Cmd::Overhead) {
        run_overhead(&cli)?;
    }
    if all || matches!(cli.command, Cmd::Instructions) {
        run_instructions(&cli)?;
    }
    if all || matches!(cli.command, Cmd::Allocs) {
        run_allocs(&cli)?;
    }
    if all || matches!(cli.command, Cmd::SingleFlight) {
        run_single_flight()?;
    }
    if all || matches!(cli.command, Cmd::Export) {
        run_export(&cli)?;
    }
    if all || matches!(cli.command, Cmd::Memory) {
        run_memory(&cli)?;
    }
    if let Cmd::Release {
        rate,
        callers,
        secs,
    } = cli.command
    {
        run_release(rate, callers, Duration::from_secs(secs))?;
    }
    if all || matches!(cli.command, Cmd::Sim) {
        run_sim(&cli)?;
    }
    if matches!(cli.command, Cmd::Fleet) {
        keel_bench::fleet::run(&OverheadConfig {
            rounds: cli.rounds,
            round_time: Duration::from_millis(cli.round_ms),
            concurrency: vec![1, 64],
            warm_up: 20,
        })?;
    }
    Ok(())
}

fn run_release(rate: u32, callers: usize, duration: Duration) -> Result<(), BoxError> {
    println!(
        "## 8. Release after a 429\n\n{callers} callers send `POST …/details/query` pages (pageSize 1) \
         back to back for {} s through `Backoff` (default policy) on a hyper-util client; \
         keel-sim allows {rate} requests/s (bucket of {rate}) and answers the rest 429 with \
         `Retry-After` and `inin-ratelimit-*`.\n",
        duration.as_secs()
    );
    let reports = [false, true]
        .into_iter()
        .map(|paced_release| {
            release::run(&release::ReleaseConfig {
                rate,
                callers,
                duration,
                paced_release,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!("{}", release::table(&reports));
    Ok(())
}

fn run_single_flight() -> Result<(), BoxError> {
    const CALLERS: usize = 10_000;
    println!(
        "## 3. Single-flight refresh\n\n{CALLERS} tasks on a 2-worker runtime ask a `TokenCache` \
         whose token has expired; the source holds the refresh until all have asked.\n"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(single_flight::run(CALLERS))?;
    println!("{}", single_flight::table(&report));
    if report.fetches != 1 {
        return Err(format!("single flight broken: {} fetches", report.fetches).into());
    }
    Ok(())
}

fn run_sim(cli: &Cli) -> Result<(), BoxError> {
    let server = LoopbackServer::start()?;
    let sim = SimThread::start(Simulator::builder().conversations(10_000))?;
    let config = OverheadConfig {
        rounds: cli.rounds.div_ceil(2),
        round_time: Duration::from_millis(cli.round_ms),
        concurrency: vec![64],
        warm_up: 5,
    };
    println!(
        "## 6. keel-sim throughput\n\nBare hyper client, 64 concurrent callers, token fetched \
         once; `POST …/details/query` page 1 with pageSize 1 and 100 (about 3 kB per \
         conversation), against the simulator on its own thread. The first row is the bench's \
         own loopback server of measurement 1, for scale; {} rounds × {} ms.\n",
        config.rounds, cli.round_ms
    );
    let rt = current_thread()?;
    let rows = rt.block_on(async {
        let token = fetch_token(&sim).await?;
        let url = server.url("/api/v2/ping");
        let contenders = vec![
            Contender::new(
                "bench server GET (bare)",
                AnyTarget::Bare(BareTarget::new(&url)?),
            ),
            Contender::new(
                "keel-sim page, pageSize 1",
                AnyTarget::SimPage(SimPageTarget::new(&sim, &token, 1)?),
            ),
            Contender::new(
                "keel-sim page, pageSize 100",
                AnyTarget::SimPage(SimPageTarget::new(&sim, &token, 100)?),
            ),
        ];
        overhead::run(&contenders, &config).await
    })?;
    println!("{}", overhead::table(&rows));
    let stats = sim.handle().stats();
    println!(
        "keel-sim served {} pages, {} 401s, {} 429s.\n",
        stats.pages_served, stats.unauthorized, stats.rate_limited
    );
    Ok(())
}

fn one(client: &str, requests: u64) -> Result<(), BoxError> {
    let server = LoopbackServer::start()?;
    let rt = current_thread()?;
    rt.block_on(async {
        let contenders = contenders(&server).await?;
        let index = CLIENTS
            .iter()
            .position(|c| *c == client)
            .ok_or("the client is one of bare, keel, keel-layers, reqwest")?;
        let mut target = contenders[index].target.clone();
        for _ in 0..requests {
            target.call().await?;
        }
        Ok::<(), BoxError>(())
    })?;
    println!("{client}: {requests} requests, {} served", server.served());
    println!("{}", keel_bench::clients::future_sizes());
    Ok(())
}

fn export_child(args: &[String]) -> Result<(), BoxError> {
    let args = ExportArgs::try_parse_from(
        std::iter::once("genesys-export".to_owned()).chain(args.iter().cloned()),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(genesys_export::run(args))?;
    Ok(())
}

fn run_export(cli: &Cli) -> Result<(), BoxError> {
    const CONVERSATIONS: u64 = 3_000;
    const PREFETCH: u32 = 4;
    println!(
        "## 4. Export throughput\n\n`genesys-export --sim --sim-conversations {CONVERSATIONS} \
         --sim-page-latency L --prefetch P --out <file in /dev/shm>` in this process (2-worker runtime, \
         like the binary), faults off unless said; pages/s from the export's own summary, \
         median of the runs, prefetch 1 and {PREFETCH} (the default) alternating.\n"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let runs = if cli.quick { 1 } else { 3 };
    let mut rows = Vec::new();
    for (ms, faults, runs) in [
        (0, false, runs),
        (50, false, runs),
        (200, false, 1),
        (200, true, 1),
    ] {
        let latency = Duration::from_millis(ms);
        rows.push(rt.block_on(export::compare(
            latency,
            PREFETCH,
            CONVERSATIONS,
            faults,
            runs,
        ))?);
    }
    println!("{}", export::table(&rows));
    Ok(())
}

fn run_memory(cli: &Cli) -> Result<(), BoxError> {
    let sizes: &[u64] = if cli.quick {
        &[10_000, 50_000]
    } else {
        &[10_000, 50_000, 200_000]
    };
    println!(
        "## 5. Peak memory\n\nAn export to stdout = `/dev/null` (embedded sim, faults off, no page \
         latency, prefetch 4) in a child process (this binary's `export-child` mode: `genesys-export`'s `main`). VmHWM sampled every 2 ms by the parent, \
         and as the export's summary reports it.\n"
    );
    let rows = sizes
        .iter()
        .map(|&n| memory::measure(n))
        .collect::<Result<Vec<_>, _>>()?;
    println!("{}", memory::table(&rows));
    Ok(())
}

fn run_instructions(cli: &Cli) -> Result<(), BoxError> {
    let (low, high) = if cli.quick {
        (200, 600)
    } else {
        (1_000, 3_000)
    };
    println!(
        "## 1b. Instructions per request\n\n`valgrind --tool=callgrind bench one <client> N` for \
         N = {low} and {high}; (Ir({high}) − Ir({low})) / {}: client and server threads, user \
         space only, the same from run to run.\n",
        high - low
    );
    if !instructions::valgrind_available() {
        println!("Skipped: valgrind is not installed.\n");
        return Ok(());
    }
    let rows = instructions::measure(&CLIENTS, low, high)?;
    println!("{}", instructions::table(&rows));
    Ok(())
}

/// The clients of `one` and `instructions`, in the order of `contenders`.
const CLIENTS: [&str; 4] = ["bare", "keel", "keel-layers", "reqwest"];

fn current_thread() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn contenders(server: &LoopbackServer) -> Result<Vec<Contender>, BoxError> {
    let url = server.url("/api/v2/ping");
    Ok(vec![
        Contender::new("bare hyper-util", AnyTarget::Bare(BareTarget::new(&url)?)),
        Contender::new(
            "keel stack",
            AnyTarget::Keel(KeelTarget::keel(&url, warm_tokens(TOKEN).await?)?),
        ),
        Contender::new(
            "keel, separate retry layers",
            AnyTarget::KeelLayers(KeelLayersTarget::keel_layers(
                &url,
                warm_tokens(TOKEN).await?,
            )?),
        ),
        Contender::new(
            "reqwest-middleware",
            AnyTarget::Reqwest(ReqwestTarget::new(&url, TOKEN)?),
        ),
    ])
}

fn run_overhead(cli: &Cli) -> Result<(), BoxError> {
    let server = LoopbackServer::start()?;
    let config = OverheadConfig {
        rounds: cli.rounds,
        round_time: Duration::from_millis(cli.round_ms),
        concurrency: vec![1, 64],
        warm_up: 20,
    };
    println!(
        "## 1. Overhead per request\n\nGET with a {}-byte JSON answer, loopback hyper server on its own \
         thread, clients on a current-thread runtime; {} rounds × {} ms per contender, order \
         rotating; medians over rounds.\n",
        keel_bench::server::BODY.len(),
        config.rounds,
        cli.round_ms
    );
    let rt = current_thread()?;
    let rows = rt.block_on(async {
        let contenders = contenders(&server).await?;
        overhead::run(&contenders, &config).await
    })?;
    println!("{}", overhead::table(&rows));
    Ok(())
}

fn run_allocs(cli: &Cli) -> Result<(), BoxError> {
    let server = LoopbackServer::start()?;
    println!(
        "## 2. Allocations per request\n\nClient thread only (the server runs on its own), \
         steady state, {} sequential requests per contender, lowest of 3 passes.\n",
        cli.alloc_requests
    );
    let rt = current_thread()?;
    let rows = rt.block_on(async {
        let contenders = contenders(&server).await?;
        allocs::measure(&contenders, cli.alloc_requests).await
    })?;
    println!("{}", allocs::table(&rows));
    println!(
        "Per layer: each row adds one layer on top of the row above it (the top row is the \
         client called as a tower `Service`).\n"
    );
    let rows = rt.block_on(async {
        let url = server.url("/api/v2/ping");
        allocs::keel_breakdown(&url, warm_tokens(TOKEN).await?, cli.alloc_requests).await
    })?;
    println!("{}", allocs::table(&rows));
    Ok(())
}
