//! The shared rate state against a real redis-server.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{capture_logs, config, eventually, logged, prefix};
use futures_util::future::join_all;
use keel_redis::rate::FleetPacing;
use keel_redis::{RedisConnection, RedisRateState};
use keel_testkit::redis::RedisServer;
use tokio::time::Instant;

const NAME: &str = "api.example.com";

fn quiet_connect(url: &str, prefix: &str) -> RedisConnection {
    config(url, prefix)
        .health_interval(Duration::from_secs(60))
        .connect()
        .unwrap()
}

#[tokio::test]
async fn a_close_in_one_process_holds_waiters_in_another_without_round_trips() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let prefix = prefix();
    let (conn_a, conn_b) = (
        quiet_connect(&server.url(), &prefix),
        quiet_connect(&server.url(), &prefix),
    );
    let a = RedisRateState::new(conn_a.clone(), NAME);
    let b = RedisRateState::new(conn_b.clone(), NAME);
    a.synced().await;
    b.synced().await;
    // Loads the script, so the close below is one EVALSHA.
    RedisRateState::new(conn_a.clone(), "warm-up")
        .close_until(Instant::now() + Duration::from_millis(50))
        .await;
    server.command(&["CONFIG", "RESETSTAT"]);
    let b_calls = conn_b.calls();

    let until = Instant::now() + Duration::from_millis(300);
    a.close_until(until).await;
    assert!(
        eventually(Duration::from_secs(2), || b.closed_until().is_some()).await,
        "b never heard of the close"
    );
    let done = Arc::new(AtomicU64::new(0));
    let waiters = (0..100).map(|_| {
        let (b, done) = (b.clone(), done.clone());
        async move {
            b.acquire().await.unwrap();
            done.fetch_add(1, Ordering::Relaxed);
            Instant::now()
        }
    });
    let opened = join_all(waiters).await;
    for at in opened {
        assert!(
            at + Duration::from_millis(20) >= until,
            "went out before the gate opened"
        );
        assert!(at < until + Duration::from_millis(250), "woken late");
    }
    assert_eq!(done.load(Ordering::Relaxed), 100);
    assert_eq!(conn_b.calls(), b_calls, "b made a Redis call");
    assert_eq!(b.stats().remote_closes, 1);
    assert_eq!(server.command_calls("evalsha"), 1);
    let stats = server.command(&["INFO", "commandstats"]);
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        let command = &line["cmdstat_".len()..line.find([':', '|']).unwrap()];
        assert!(
            ["evalsha", "time", "get", "set", "publish", "info", "config"].contains(&command),
            "unexpected {command}: {stats}"
        );
    }
}

#[tokio::test]
async fn the_fast_path_makes_no_round_trip_and_permits_come_in_batches() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let conn = quiet_connect(&server.url(), &prefix);
    let open = RedisRateState::new(conn.clone(), NAME);
    open.synced().await;
    let before = conn.calls();
    for _ in 0..10_000 {
        open.acquire().await.unwrap();
    }
    assert_eq!(conn.calls(), before);

    let conn = quiet_connect(&server.url(), &prefix);
    let paced = RedisRateState::with_pacing(
        conn.clone(),
        NAME,
        FleetPacing::per_second(100_000.0).batch(100),
    );
    paced.synced().await;
    let before = conn.calls();
    for _ in 0..1_000 {
        paced.acquire().await.unwrap();
    }
    let refills = paced.stats().refills;
    assert!((10..=12).contains(&refills), "{refills}");
    assert_eq!(conn.calls() - before, refills);
}

#[tokio::test]
async fn batched_permits_keep_the_fleet_under_its_rate() {
    let Some(server) = RedisServer::shared() else {
        return;
    };
    let prefix = prefix();
    let (rate, burst) = (200.0, 10);
    let pacing = FleetPacing::per_second(rate).batch(10);
    let processes: Vec<_> = (0..4)
        .map(|_| RedisRateState::with_pacing(quiet_connect(&server.url(), &prefix), NAME, pacing))
        .collect();
    join_all(processes.iter().map(|p| p.synced())).await;

    let sent = Arc::new(AtomicU64::new(0));
    let start = std::time::Instant::now();
    let run_for = Duration::from_millis(1000);
    let workers = processes.iter().flat_map(|p| {
        (0..4).map(|_| {
            let (p, sent) = (p.clone(), sent.clone());
            async move {
                while start.elapsed() < run_for {
                    p.acquire().await.unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    join_all(workers).await;
    let elapsed = start.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    let ceiling = burst as f64 + rate * elapsed;
    assert!((sent as f64) <= ceiling, "{sent} > {ceiling}");
    assert!(sent as f64 >= rate * 0.5, "{sent}: the fleet starved");
    let refills: u64 = processes.iter().map(|p| p.stats().refills).sum();
    assert!(refills * 5 <= sent, "{refills} refills for {sent} permits");
}

#[tokio::test]
async fn redis_down_keeps_the_gate_local_paces_alone_and_recovers() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let prefix = prefix();
    let fast = |p: &str| {
        config(&server.url(), p)
            .health_interval(Duration::from_millis(50))
            .connect()
            .unwrap()
    };
    let a =
        RedisRateState::with_pacing(fast(&prefix), NAME, FleetPacing::per_second(50.0).burst(5));
    let b = RedisRateState::new(fast(&prefix), NAME);
    a.synced().await;
    b.synced().await;

    server.stop();
    a.close_until(Instant::now() + Duration::from_millis(100))
        .await;
    assert!(a.closed_until().is_some());
    let start = Instant::now();
    for _ in 0..10 {
        a.acquire().await.unwrap();
    }
    // 100 ms closed, then a burst of 5 and 5 more at 50/s.
    assert!(
        start.elapsed() >= Duration::from_millis(180),
        "{:?}",
        start.elapsed()
    );
    let commands = "carrying on in-process) paused";
    assert_eq!(
        logged(&logs).matches(commands).count(),
        1,
        "{}",
        logged(&logs)
    );

    server.start();
    let recovered = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        a.close_until(Instant::now() + Duration::from_millis(300))
            .await;
        if eventually(Duration::from_millis(200), || b.closed_until().is_some()).await {
            break;
        }
        assert!(
            std::time::Instant::now() < recovered,
            "b never heard a again"
        );
    }
    let log = logged(&logs);
    assert!(log.contains("redis reachable again"), "{log}");
    // One per connection that noticed: a's commands, a's and b's subscriptions.
    assert_eq!(log.matches(commands).count(), 1, "{log}");
    assert!(log.matches("WARN").count() <= 3, "{log}");
}

#[tokio::test]
async fn fail_closed_pacing_errors_when_redis_is_down() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    server.stop();
    let conn = config(&server.url(), &prefix())
        .fail_closed(true)
        .connect()
        .unwrap();
    let paced = RedisRateState::with_pacing(conn, NAME, FleetPacing::per_second(10.0));
    let err = paced.acquire().await.unwrap_err();
    assert!(err.to_string().contains("redis"), "{err}");
}

#[tokio::test]
async fn fail_closed_gate_errors_once_its_subscription_is_lost() {
    let Some(server) = RedisServer::spawn() else {
        return;
    };
    let conn = config(&server.url(), &prefix())
        .fail_closed(true)
        .health_interval(Duration::from_millis(20))
        .connect()
        .unwrap();
    let gate = RedisRateState::new(conn, NAME);
    gate.synced().await;
    gate.acquire().await.unwrap();
    server.stop();
    let failed = eventually(Duration::from_secs(5), || {
        futures_util::FutureExt::now_or_never(gate.acquire()).is_some_and(|r| r.is_err())
    })
    .await;
    assert!(failed, "still open for requests with no fleet gate");
}
