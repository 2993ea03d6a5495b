//! The background task of a [`RedisRateState`](super::RedisRateState): hears gate closures
//! from the rest of the fleet, and re-reads the gate after every (re)subscription.

use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use tokio::time::Instant;

use super::scripts::REMAINING;
use super::state::Inner;

/// Runs until the state it serves is dropped (it is also aborted then).
pub(super) async fn run(state: Weak<Inner>) {
    let Some(inner) = state.upgrade() else {
        return;
    };
    let (conn, health, channel, gate_key, origin) = (
        inner.conn.clone(),
        Arc::clone(&inner.gate_health),
        inner.channel.clone(),
        inner.gate_key.clone(),
        inner.origin.clone(),
    );
    drop(inner);
    let interval = conn.health_interval();
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let Ok(mut manager) = conn.push_manager(tx) else {
        return;
    };
    loop {
        let synced = async {
            conn.bounded("gate subscribe", manager.subscribe(&channel))
                .await?;
            conn.bounded(
                "gate read",
                REMAINING.key(&gate_key).invoke_async::<u64>(&mut manager),
            )
            .await
        }
        .await;
        match synced {
            Ok(remaining) => {
                health.up();
                let Some(inner) = state.upgrade() else {
                    return;
                };
                if remaining > 0 {
                    inner.close_remote(Instant::now() + Duration::from_millis(remaining), None);
                }
                inner.synced.send_replace(true);
            }
            Err(error) => {
                health.down(&error);
                tokio::time::sleep(interval).await;
                continue;
            }
        }
        loop {
            tokio::select! {
                push = pushes.recv() => {
                    let Some(push) = push else { return };
                    match push.kind {
                        PushKind::Message => {
                            let Some(inner) = state.upgrade() else { return };
                            if let Some((delay, rate)) = remote_close(&push, &origin) {
                                inner.close_remote(Instant::now() + delay, rate);
                            }
                        }
                        PushKind::Disconnection => break,
                        _ => {}
                    }
                }
                () = tokio::time::sleep(interval) => {
                    let ping = redis::cmd("PING");
                    let ping = ping.query_async::<()>(&mut manager);
                    if let Err(error) = conn.bounded("gate ping", ping).await {
                        health.down(&error);
                        break;
                    }
                }
            }
        }
        let Some(inner) = state.upgrade() else {
            return;
        };
        inner.synced.send_replace(false);
    }
}

/// The delay and advertised rate announced by another process's close: payload
/// `<origin> <delay ms> <rate>`, the rate empty when its 429 advertised none.
fn remote_close(push: &PushInfo, own: &str) -> Option<(Duration, Option<f64>)> {
    let Some(Value::BulkString(payload)) = push.data.get(1) else {
        return None;
    };
    let payload = std::str::from_utf8(payload).ok()?;
    let mut fields = payload.split(' ');
    if fields.next()? == own {
        return None;
    }
    let delay = fields.next()?.parse().ok().map(Duration::from_millis)?;
    let rate = fields
        .next()
        .and_then(|r| r.parse::<f64>().ok())
        .filter(|r| r.is_finite() && *r > 0.0);
    Some((delay, rate))
}
