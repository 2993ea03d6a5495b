//! Fleet-wide pacing: permits taken from a shared bucket in batches, held locally.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Fleet-wide pacing for a [`RedisRateState`](super::RedisRateState): every process using the
/// same Redis and name together stays under [`per_second`](Self::per_second) requests.
///
/// A process reserves [`batch`](Self::batch) permits at a time from a token bucket in Redis
/// and hands them out locally, so Redis sees one round trip per batch, not per request. At
/// the fleet's limit a reservation comes with a wait (the bucket's debt, shared fairly by
/// the processes in the order they asked); the price of batching is granularity: a process
/// may wait up to `batch / rate` for its next batch. The next batch is asked for in the
/// background when half of the current one is left, so a process whose batch holds several
/// times its requests in flight does not wait for the round trip. Permits a
/// process does not use within [`batch / rate`] (at least 50 ms, at most 1 s) lapse, so a
/// quiet process cannot hoard them (it holds at most a batch and a half). Over any window the
/// fleet sends at most `burst + rate × window` requests.
///
/// While Redis is unreachable, each process paces alone at the same rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetPacing {
    pub(super) per_second: f64,
    pub(super) burst: u32,
    pub(super) batch: u32,
}

impl FleetPacing {
    /// At most `n` requests per second for the whole fleet (at least 0.001), in batches of
    /// one permit, with a burst of one.
    pub fn per_second(n: f64) -> Self {
        FleetPacing {
            per_second: if n.is_finite() { n.max(0.001) } else { 0.001 },
            burst: 1,
            batch: 1,
        }
    }

    /// Permits taken from Redis per round trip (at least 1). The bucket's burst is raised to
    /// the batch size if it is smaller.
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch.max(1);
        self.burst = self.burst.max(self.batch);
        self
    }

    /// How many permits the fleet's bucket holds when full (at least the batch size).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(self.batch);
        self
    }

    /// How long unused local permits stay usable.
    pub(super) fn permit_life(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.batch) / self.per_second)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Permits this process holds, and the bucket it paces with while Redis is down.
#[derive(Debug)]
pub(super) struct Local {
    state: Mutex<LocalState>,
    pacing: FleetPacing,
}

#[derive(Debug)]
struct LocalState {
    permits: u32,
    lapse_at: Instant,
    /// The fallback bucket, used only while Redis is unreachable.
    tokens: f64,
    /// Until when the [`RateState`](keel_layers::backoff::RateState) path paces alone after
    /// a failed refill, before it asks Redis again.
    alone_until: Option<Instant>,
    updated: Instant,
}

impl Local {
    pub(super) fn new(pacing: FleetPacing) -> Self {
        let now = Instant::now();
        Local {
            pacing,
            state: Mutex::new(LocalState {
                permits: 0,
                lapse_at: now,
                tokens: f64::from(pacing.burst),
                updated: now,
                alone_until: None,
            }),
        }
    }

    pub(super) fn pacing(&self) -> &FleetPacing {
        &self.pacing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one held permit, if there is an unlapsed one.
    pub(super) fn take(&self, now: Instant) -> bool {
        self.take_counting(now).is_some()
    }

    /// Takes one held permit, if there is an unlapsed one, and says how many are left.
    pub(super) fn take_counting(&self, now: Instant) -> Option<u32> {
        let mut state = self.lock();
        if state.permits > 0 && now < state.lapse_at {
            state.permits -= 1;
            Some(state.permits)
        } else {
            None
        }
    }

    /// Whether `left` held permits are few enough to take the next batch now, so that it
    /// arrives before they run out: half a batch (the refill's round trip is short next to
    /// the time half a batch lasts at any rate worth batching for).
    pub(super) fn is_low(&self, left: u32) -> bool {
        self.pacing.batch > 1 && left <= self.pacing.batch / 2
    }

    /// Adds `granted - 1` permits (one is used by the caller) to those still held, all
    /// usable until the new batch lapses.
    pub(super) fn hold(&self, granted: u32, now: Instant) {
        self.add(granted.saturating_sub(1), now);
    }

    /// Adds all `granted` permits (no caller used one) to those still held from `at`.
    pub(super) fn hold_all(&self, granted: u32, at: Instant) {
        self.add(granted, at);
        self.lock().alone_until = None;
    }

    // NOTE: a batch taken at the low-water mark joins the permits left of the previous one;
    // the lapse moves to the new batch's, so a process holds at most a batch and a half.
    fn add(&self, granted: u32, at: Instant) {
        let mut state = self.lock();
        let left = if at < state.lapse_at {
            state.permits
        } else {
            0
        };
        state.permits = left.saturating_add(granted);
        state.lapse_at = at + self.pacing.permit_life();
    }

    /// Whether an unlapsed permit is held.
    pub(super) fn has_permits(&self, now: Instant) -> bool {
        let state = self.lock();
        state.permits > 0 && now < state.lapse_at
    }

    /// Paces alone (Redis unreachable) until `until`.
    pub(super) fn alone_until(&self, until: Instant) {
        self.lock().alone_until = Some(until);
    }

    /// Whether this process paces alone at `now`.
    pub(super) fn is_alone(&self, now: Instant) -> bool {
        self.lock().alone_until.is_some_and(|until| now < until)
    }

    /// The in-process bucket: one permit now, or when to ask again.
    pub(super) fn take_alone(&self, now: Instant) -> Result<(), Instant> {
        let mut state = self.lock();
        let rate = self.pacing.per_second;
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(f64::from(self.pacing.burst));
        state.updated = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::try_from_secs_f64((1.0 - state.tokens) / rate)
                .unwrap_or(Duration::from_secs(1));
            Err(now + wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn held_permits_lapse() {
        let local = Local::new(FleetPacing::per_second(100.0).batch(10));
        let now = Instant::now();
        local.hold(10, now);
        assert!((0..9).all(|_| local.take(now)));
        assert!(!local.take(now));
        local.hold(10, now);
        assert!(!local.take(now + Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_taken_at_low_water_joins_the_permits_left() {
        let local = Local::new(FleetPacing::per_second(100.0).batch(10));
        let now = Instant::now();
        local.hold_all(10, now);
        let left: Vec<u32> = (0..5).filter_map(|_| local.take_counting(now)).collect();
        assert_eq!(left, [9, 8, 7, 6, 5]);
        assert!(local.is_low(5) && !local.is_low(6));
        local.hold_all(10, now + Duration::from_millis(10));
        let later = now + Duration::from_millis(20);
        assert_eq!((0..20).filter(|_| local.take(later)).count(), 15);
        // Lapsed permits are not carried over.
        local.hold_all(10, now + Duration::from_secs(5));
        assert_eq!(
            (0..20)
                .filter(|_| local.take(now + Duration::from_secs(5)))
                .count(),
            10
        );
        assert!(
            !Local::new(FleetPacing::per_second(100.0)).is_low(0),
            "no batching"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn alone_it_paces_at_the_fleet_rate() {
        let local = Local::new(FleetPacing::per_second(10.0).burst(2));
        let start = Instant::now();
        let mut now = start;
        let mut sent = 0;
        while now < start + Duration::from_secs(10) {
            match local.take_alone(now) {
                Ok(()) => sent += 1,
                Err(at) => now = at,
            }
        }
        assert!((100..=102).contains(&sent), "{sent}");
    }
}
