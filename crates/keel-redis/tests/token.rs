//! The shared token store against a real redis-server.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{capture_logs, connect, counting_source, logged, prefix};
use futures_util::future::join_all;
use keel_layers::auth::{token_source_fn, Token, TokenCache, TokenError, TokenSource};
use keel_redis::RedisTokenSource;
use keel_testkit::redis::RedisServer;

const HOUR: Duration = Duration::from_secs(3600);
const NAME: &str = "client-id@login.example.com";

/// One simulated process: its own connection, shared source and cache.
fn process<S: keel_layers::auth::TokenSource + Clone>(
    url: &str,
    prefix: &str,
    inner: &S,
) -> (TokenCache, RedisTokenSource<S>) {
    let shared = RedisTokenSource::new(inner.clone(), connect(url, prefix), NAME);
    // NOTE: no invalidation floor: these tests reject tokens back to back on purpose.
    let cache = TokenCache::new(shared.clone()).invalidation_floor(Duration::ZERO);
    (cache, shared)
}

/// A 401 for `token`: the cache drops it (and tells its source, the shared store), then
/// fetches again once the store dropped it too.
async fn reject(cache: &TokenCache, token: &Token) -> Token {
    cache.invalidate(token);
    cache.token().await.unwrap()
}

#[tokio::test]
async fn concurrent_processes_fetch_once() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (inner, fetches) = counting_source(HOUR, Duration::from_millis(50));
    let processes: Vec<_> = (0..8)
        .map(|_| process(&server.url(), &prefix, &inner))
        .collect();
    let tokens = join_all(processes.iter().map(|(cache, _)| cache.token())).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    for token in tokens {
        assert_eq!(token.unwrap().header_value(), "Bearer SECRET-TOKEN-1");
    }
    let inner_fetches: u64 = processes.iter().map(|(_, s)| s.stats().inner_fetches).sum();
    assert_eq!(inner_fetches, 1);
}

#[tokio::test]
async fn shared_copy_expires_before_the_token_and_its_key_hides_it() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (inner, _) = counting_source(Duration::from_secs(40), Duration::ZERO);
    let (cache, _) = process(&server.url(), &prefix, &inner);
    let token = cache.token().await.unwrap();

    let keys = server.command(&["KEYS", &format!("{prefix}:*")]);
    let key = keys
        .lines()
        .find(|l| l.starts_with(&prefix))
        .expect("a token key");
    assert!(!key.contains("SECRET"), "{key}");
    assert!(!keys.contains(":lock"), "lock released: {keys}");
    let pttl: i64 = server
        .command(&["PTTL", key])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    // 40 s token, margin capped at a quarter of its lifetime: the copy lives about 30 s.
    assert!(pttl > 25_000 && pttl <= 30_000, "{pttl}");
    let left = token.expires_at().unwrap() - tokio::time::Instant::now();
    assert!(left <= Duration::from_secs(30), "{left:?}");
}

#[tokio::test]
async fn one_token_rejected_by_100_processes_causes_one_fetch() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (inner, fetches) = counting_source(HOUR, Duration::from_millis(20));
    let processes: Vec<_> = (0..100)
        .map(|_| process(&server.url(), &prefix, &inner))
        .collect();
    let first = join_all(processes.iter().map(|(cache, _)| cache.token())).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    let second = join_all(
        processes
            .iter()
            .zip(&first)
            .map(|((cache, _), token)| reject(cache, token.as_ref().unwrap())),
    )
    .await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    for token in &second {
        assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-2");
    }
    let deleted: u64 = processes.iter().map(|(_, s)| s.stats().invalidations).sum();
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn invalidating_a_replaced_token_is_a_no_op() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (inner, fetches) = counting_source(HOUR, Duration::ZERO);
    let (cache, _) = process(&server.url(), &prefix, &inner);
    let first = cache.token().await.unwrap();
    let second = reject(&cache, &first).await;
    assert_eq!(second.header_value(), "Bearer SECRET-TOKEN-2");

    // A late 401 for the first token, in another process.
    let (late_cache, late_shared) = process(&server.url(), &prefix, &inner);
    late_shared.invalidate(&first).await;
    assert_eq!(late_shared.stats().invalidations, 0);
    let token = late_cache.token().await.unwrap();
    assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-2");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dead_lock_holder_blocks_the_fleet_until_its_lock_expires() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let lock_ttl = Duration::from_millis(400);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let hangs = token_source_fn(move || {
        if let Some(tx) = started_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        std::future::pending::<Result<Token, TokenError>>()
    });
    let holder =
        RedisTokenSource::new(hangs, connect(&server.url(), &prefix), NAME).lock_ttl(lock_ttl);
    let dying = tokio::spawn(async move { TokenCache::new(holder).token().await });
    started_rx.await.unwrap();
    dying.abort();

    let (inner, fetches) = counting_source(HOUR, Duration::ZERO);
    let other =
        RedisTokenSource::new(inner, connect(&server.url(), &prefix), NAME).lock_ttl(lock_ttl);
    let waited = std::time::Instant::now();
    let token = TokenCache::new(other.clone()).token().await.unwrap();
    let waited = waited.elapsed();
    assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-1");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(
        waited >= lock_ttl / 2,
        "did not wait for the lock: {waited:?}"
    );
    assert!(
        waited < lock_ttl * 2,
        "waited past the lock's expiry: {waited:?}"
    );
}

#[tokio::test]
async fn redis_down_falls_back_in_process_with_one_warning_and_recovers() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let prefix = prefix();
    let (logs, _guard) = capture_logs();
    let (inner, fetches) = counting_source(HOUR, Duration::ZERO);

    // Down at start.
    server.stop();
    let (cache, shared) = process(&server.url(), &prefix, &inner);
    let mut token = cache.token().await.unwrap();
    for _ in 0..3 {
        token = reject(&cache, &token).await;
    }
    assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-4");
    assert_eq!(shared.stats().fallbacks, 4);
    assert_eq!(
        logged(&logs).matches("WARN").count(),
        1,
        "{}",
        logged(&logs)
    );

    // Back: the next fetch is shared again, and a second process reads it.
    server.start();
    let token = reject(&cache, &token).await;
    assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-5");
    assert_eq!(shared.stats().inner_fetches, 1);
    let (other, _) = process(&server.url(), &prefix, &inner);
    assert_eq!(
        other.token().await.unwrap().header_value(),
        "Bearer SECRET-TOKEN-5"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 5);
    assert!(logged(&logs).contains("redis reachable again"));

    // Down mid-run: one more warning for the new outage, not one per fetch.
    server.stop();
    let mut token = reject(&cache, &token).await;
    token = reject(&cache, &token).await;
    assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-7");
    let log = logged(&logs);
    assert_eq!(log.matches("WARN").count(), 2, "{log}");
    assert!(!log.contains("SECRET"), "{log}");
}

#[tokio::test]
async fn fail_closed_errors_instead_of_fetching_in_process() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    server.stop();
    let (inner, fetches) = counting_source(HOUR, Duration::ZERO);
    let conn = common::config(&server.url(), &prefix())
        .fail_closed(true)
        .connect()
        .unwrap();
    let cache = TokenCache::new(RedisTokenSource::new(inner, conn, NAME));
    let err = cache.token().await.unwrap_err();
    assert!(err.to_string().contains("redis"), "{err}");
    assert_eq!(fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn secrets_never_reach_debug_or_logs() {
    let Some(server) = RedisServer::spawn_with_password("PASSWORD-SECRET") else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let prefix = prefix();
    let url = format!("redis://:URL-SECRET@127.0.0.1:{}/", server.port());
    let config = common::config(&url, &prefix)
        .password(secrecy::SecretString::from("PASSWORD-SECRET".to_owned()));
    let (inner, _) = counting_source(HOUR, Duration::ZERO);
    let shared = RedisTokenSource::new(inner, config.connect().unwrap(), NAME);
    let cache = TokenCache::new(shared.clone()).invalidation_floor(Duration::ZERO);
    let token = cache.token().await.unwrap();
    let token = reject(&cache, &token).await;
    assert_eq!(
        shared.stats().inner_fetches,
        2,
        "authenticated with the password"
    );
    assert_eq!(shared.stats().fallbacks, 0);

    let shown = format!(
        "{config:?} {shared:?} {cache:?} {token:?} {}",
        logged(&logs)
    );
    for secret in ["SECRET-TOKEN", "PASSWORD-SECRET", "URL-SECRET"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[tokio::test]
async fn a_busy_fleet_fetches_once_per_shared_lifetime() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    // 4 s tokens: shared for 3 s, refreshed by the fleet once 1.5 s of that is left.
    let (inner, fetches) = counting_source(Duration::from_secs(4), Duration::from_millis(5));
    let processes: Vec<_> = (0..4)
        .map(|_| process(&server.url(), &prefix, &inner))
        .collect();
    let run_for = Duration::from_millis(4_600);
    let start = std::time::Instant::now();
    let callers = processes.iter().map(|(cache, _)| async move {
        let mut calls = 0u32;
        while start.elapsed() < run_for {
            let token = cache.token().await.unwrap();
            assert!(!token.is_expired_at(tokio::time::Instant::now()));
            calls += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        calls
    });
    let calls: u32 = join_all(callers).await.into_iter().sum();
    let fetches = fetches.load(Ordering::SeqCst);
    // One at start, then one per 1.5 s: 4 in 4.6 s (each process alone would make 3 or 4).
    assert!(calls > 400, "{calls}");
    assert!((3..=5).contains(&fetches), "{fetches} fetches");
}

#[tokio::test]
async fn a_malformed_shared_value_is_replaced() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (inner, fetches) = counting_source(HOUR, Duration::ZERO);
    let (cache, _) = process(&server.url(), &prefix, &inner);
    let first = cache.token().await.unwrap();
    let keys = server.command(&["KEYS", &format!("{prefix}:*")]);
    let key = keys.lines().find(|l| l.starts_with(&prefix)).unwrap();
    server.command(&["SET", key, "not a token", "PX", "60000"]);

    let (other, _) = process(&server.url(), &prefix, &inner);
    let token = other.token().await.unwrap();
    assert_eq!(token.header_value(), "Bearer SECRET-TOKEN-2");
    assert_ne!(token.header_value(), first.header_value());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}
