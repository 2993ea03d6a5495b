//! Per-request cost of the Redis-backed fast path: a cached token and an open gate.
//!
//! Compares, in one run, the in-process fast path (a `TokenCache` hit) with the same hit over
//! a `RedisTokenSource`, plus `RedisRateState::acquire` with the gate open (no pacing, and
//! pacing in batches of 100), and counts Redis round trips per request: the target is none
//! for a cached token and an open gate, and one per batch with pacing.
//!
//! `cargo bench -p keel-redis --bench fast_path` (needs `redis-server`, started here).

use std::hint::black_box;
use std::time::{Duration, Instant};

use keel_layers::auth::{token_source_fn, Token, TokenCache};
use keel_redis::rate::FleetPacing;
use keel_redis::{RedisConfig, RedisConnection, RedisRateState, RedisTokenSource};
use keel_testkit::redis::RedisServer;
use secrecy::SecretString;

const N: u32 = 1_000_000;

fn connect(url: &str) -> RedisConnection {
    RedisConfig::new(SecretString::from(url.to_owned()))
        .unwrap()
        .prefix("bench")
        .health_interval(Duration::from_secs(3600))
        .connect()
        .unwrap()
}

fn report(name: &str, started: Instant, n: u32, round_trips: u64) {
    let per = started.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "{name:<44} {per:>8.1} ns/request  {:>8.4} redis round trips/request",
        round_trips as f64 / f64::from(n)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let source =
        || token_source_fn(|| async { Token::bearer("t", Some(Duration::from_secs(3600))) });

    let local = TokenCache::new(source());
    local.token().await.unwrap();
    let started = Instant::now();
    for _ in 0..N {
        black_box(local.cached());
    }
    report("in-process TokenCache hit", started, N, 0);

    let conn = connect(&server.url());
    let shared = TokenCache::new(RedisTokenSource::new(source(), conn.clone(), "bench"));
    shared.token().await.unwrap();
    let before = conn.calls();
    let started = Instant::now();
    for _ in 0..N {
        black_box(shared.cached());
    }
    report(
        "TokenCache hit over RedisTokenSource",
        started,
        N,
        conn.calls() - before,
    );

    let conn = connect(&server.url());
    let gate = RedisRateState::new(conn.clone(), "bench");
    gate.synced().await;
    let before = conn.calls();
    let started = Instant::now();
    for _ in 0..N {
        gate.acquire().await.unwrap();
    }
    report(
        "RedisRateState::acquire, gate open",
        started,
        N,
        conn.calls() - before,
    );

    let conn = connect(&server.url());
    let n = N / 10;
    let paced = RedisRateState::with_pacing(
        conn.clone(),
        "bench-paced",
        FleetPacing::per_second(1e9).batch(100),
    );
    paced.synced().await;
    let before = conn.calls();
    let started = Instant::now();
    for _ in 0..n {
        paced.acquire().await.unwrap();
    }
    report(
        "RedisRateState::acquire, pacing batch 100",
        started,
        n,
        conn.calls() - before,
    );
}
