//! Measurement 8: what sharing the token and the rate state through Redis costs per request.
//!
//! The same loopback server and contenders as measurement 1, with keel's stack three ways:
//! in-process (a `TokenCache` over a plain source, the default `LocalRateState`); with the
//! token shared through a `RedisTokenSource` and the 429 gate through a `RedisRateState`;
//! and the same with fleet pacing, permits taken from Redis in batches of 100. In steady
//! state a cached token and an open gate make no Redis round trip; pacing makes one per batch.
//! The Redis calls each connection made are printed after the table.

use std::time::Duration;

use keel_layers::auth::{token_source_fn, Token, TokenCache};
use keel_layers::backoff::BackoffPolicy;
use keel_redis::rate::FleetPacing;
use keel_redis::{RedisConfig, RedisConnection, RedisRateState, RedisTokenSource};
use keel_testkit::redis::RedisServer;
use secrecy::SecretString;
use tower::BoxError;

use crate::clients::{AnyTarget, BareTarget, KeelTarget};
use crate::overhead::{self, Contender, OverheadConfig};
use crate::server::LoopbackServer;

const TOKEN: &str = "bench-token-0123456789abcdef0123456789abcdef";

fn connect(url: &str) -> Result<RedisConnection, BoxError> {
    Ok(RedisConfig::new(SecretString::from(url.to_owned()))?
        .prefix("bench")
        .health_interval(Duration::from_secs(3600))
        .connect()?)
}

async fn shared_tokens(conn: &RedisConnection) -> Result<TokenCache, BoxError> {
    let source =
        token_source_fn(|| async { Token::bearer(TOKEN, Some(Duration::from_secs(3600))) });
    let tokens = TokenCache::new(RedisTokenSource::new(source, conn.clone(), "bench"));
    tokens.token().await?;
    Ok(tokens)
}

/// Runs measurement 8 and prints its table (skipped with a note without `redis-server`).
///
/// # Errors
///
/// When a server cannot start or a request fails.
pub fn run(config: &OverheadConfig) -> Result<(), BoxError> {
    let Some(redis) = RedisServer::spawn() else {
        println!("## 8. Redis-backed stack\n\nskipped: redis-server is not installed\n");
        return Ok(());
    };
    let server = LoopbackServer::start()?;
    println!(
        "## 8. Redis-backed stack vs in-process\n\nAs measurement 1 (GET, loopback server on its \
         own thread, clients on a current-thread runtime), redis-server on loopback; {} rounds × \
         {} ms per contender.\n",
        config.rounds,
        config.round_time.as_millis()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (rows, calls) = rt.block_on(async {
        let url = server.url("/api/v2/ping");
        let local = TokenCache::new(token_source_fn(|| async {
            Token::bearer(TOKEN, Some(Duration::from_secs(3600)))
        }));
        local.token().await?;

        let gate_conn = connect(&redis.url())?;
        let gate = RedisRateState::new(gate_conn.clone(), "bench-gate");
        gate.synced().await;
        let paced_conn = connect(&redis.url())?;
        let pacing = FleetPacing::per_second(10_000_000.0).batch(100);
        let paced = RedisRateState::with_pacing(paced_conn.clone(), "bench-paced", pacing);
        paced.synced().await;

        let contenders = vec![
            Contender::new("bare hyper-util", AnyTarget::Bare(BareTarget::new(&url)?)),
            Contender::new(
                "keel stack, in-process",
                AnyTarget::Keel(KeelTarget::keel(&url, local)?),
            ),
            Contender::new(
                "keel stack, token + gate in Redis",
                AnyTarget::Keel(KeelTarget::keel_with(
                    &url,
                    shared_tokens(&gate_conn).await?,
                    BackoffPolicy::default().rate_state(gate),
                )?),
            ),
            Contender::new(
                "…and fleet pacing, batches of 100",
                AnyTarget::Keel(KeelTarget::keel_with(
                    &url,
                    shared_tokens(&paced_conn).await?,
                    BackoffPolicy::default().rate_state(paced.clone()),
                )?),
            ),
        ];
        let (gate_before, paced_before) = (gate_conn.calls(), paced_conn.calls());
        let rows = overhead::run(&contenders, config).await?;
        let refills = paced.stats().refills;
        Ok::<_, BoxError>((
            rows,
            (
                gate_conn.calls() - gate_before,
                paced_conn.calls() - paced_before,
                refills,
            ),
        ))
    })?;
    println!("{}", overhead::table(&rows));
    println!(
        "Redis calls during the measured rounds: token + gate {}, with pacing {} ({} batches \
         of permits).\n",
        calls.0, calls.1, calls.2
    );
    Ok(())
}
