//! [`RedisRateState`] as the backoff layer's [`RateState`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use keel_layers::backoff::{GateWait, RateState};
use tokio::time::Instant;

use super::state::{Inner, RedisRateState};

/// How long a fail-closed state holds requests before it asks Redis again.
const FAIL_CLOSED_RETRY: Duration = Duration::from_millis(200);
/// How long a process paces alone after a failed refill before it asks Redis again.
const ALONE_FOR: Duration = Duration::from_secs(1);

/// The fast path reads only local state: the mirror of the fleet's gate (an atomic flag,
/// then the deadline only while it is set) and the held permits. Redis is asked only for a
/// new batch of permits, in a background task started when half a batch is left (so that it
/// lands before the permits run out) that wakes [`wait`](RateState::wait)ers when it ends,
/// and to close the fleet's gate, also in the background.
impl RateState for RedisRateState {
    fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            if let Some(until) = *inner.deadline.borrow() {
                if until > now {
                    return Err(until);
                }
            }
            inner.reopen();
        }
        if inner.conn.fail_closed() && inner.gate_health.is_down() {
            return Err(now + FAIL_CLOSED_RETRY);
        }
        let Some(local) = &inner.local else {
            return inner
                .release
                .as_ref()
                .map_or(Ok(()), |release| release.try_acquire(now));
        };
        if let Some(left) = local.take_counting(now) {
            if local.is_low(left) {
                start_refill(inner);
            }
            return Ok(());
        }
        if local.is_alone(now) {
            return local.take_alone(now);
        }
        start_refill(inner);
        Err(now + local.pacing().permit_life())
    }

    fn wait(&self, until: Instant) -> GateWait {
        let inner = Arc::clone(&self.inner);
        // NOTE: subscribed before the future is first polled, so a refill or a close that
        // lands after `try_acquire` answered still wakes this waiter.
        let mut deadline = inner.deadline.subscribe();
        let mut refilled = inner.refilled.subscribe();
        Box::pin(async move {
            if let Some(local) = &inner.local {
                let now = Instant::now();
                let open = !inner.closed.load(Ordering::Acquire)
                    || (*inner.deadline.borrow()).is_none_or(|d| d <= now);
                // A refill ended between `try_acquire` and here: ask again at once (that
                // takes a permit or starts the next refill, so this never spins).
                let held = inner.conn.fail_closed() && inner.gate_health.is_down();
                let idle =
                    !(inner.refilling.load(Ordering::Acquire) || local.is_alone(now) || held);
                if open && (local.has_permits(now) || idle) {
                    return;
                }
            }
            // NOTE: waiting through the release counts this waiter among those it releases
            // when no rate was advertised.
            let timer: GateWait = match &inner.release {
                Some(release) => release.wait(until),
                None => Box::pin(tokio::time::sleep_until(until)),
            };
            tokio::select! {
                () = timer => {}
                _ = deadline.changed() => {}
                _ = refilled.changed() => {}
            }
        })
    }

    fn close_until(&self, until: Instant) {
        self.close_until_paced(until, None);
    }

    fn close_until_paced(&self, until: Instant, release_per_second: Option<f64>) {
        let fleet = self.close(until, release_per_second);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(fleet);
        }
    }

    fn pacing_rate(&self) -> Option<f64> {
        self.inner.local.as_ref().map(|l| l.pacing().per_second)
    }
}

/// Takes a batch of permits from the fleet's bucket in a background task, unless one is in
/// flight. Its end (permits held, or pacing alone for a while) wakes the waiters.
fn start_refill(inner: &Arc<Inner>) {
    if inner.refilling.swap(true, Ordering::AcqRel) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        inner.refilling.store(false, Ordering::Release);
        return;
    };
    let state = RedisRateState {
        inner: Arc::clone(inner),
    };
    runtime.spawn(async move {
        let inner = &state.inner;
        let local = inner.local.as_ref().expect("refills only with pacing");
        let asked = Instant::now();
        match state.take_batch(local.pacing()).await {
            Ok(wait_ms) => {
                inner.refills.fetch_add(1, Ordering::Relaxed);
                let ready = asked + Duration::from_millis(wait_ms);
                tokio::time::sleep_until(ready).await;
                local.hold_all(local.pacing().batch, ready);
            }
            Err(_) if inner.conn.fail_closed() => tokio::time::sleep(FAIL_CLOSED_RETRY).await,
            Err(_) => local.alone_until(Instant::now() + ALONE_FOR),
        }
        inner.refilling.store(false, Ordering::Release);
        inner.refilled.send_modify(|n| *n = n.wrapping_add(1));
    });
}
