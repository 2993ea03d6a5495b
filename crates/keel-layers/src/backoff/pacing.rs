//! The in-process rate state shared by every clone: the 429 reset gate and an optional
//! token bucket.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use tokio::time::Instant;

use super::rate_state::GateWait;
use super::RateState;
use crate::hints::{
    parse_ratelimit_reset, ININ_RATELIMIT_RESET, RATELIMIT_RESET, X_RATELIMIT_RESET,
};

/// A 429 is expected to have been caused by requests already sent at most this long ago;
/// further 429s inside the window do not lower the adaptive rate again.
const MIN_DECREASE_INTERVAL: Duration = Duration::from_secs(1);
/// Tolerance for floating-point refill arithmetic.
const EPSILON: f64 = 1e-9;
/// Release pacing at an advertised rate ends once no attempt has had to wait for its slot
/// for this long (the client's demand fell below the pace).
const RELEASE_QUIET: Duration = Duration::from_secs(1);
/// How long the release pace holds without a 429 before it first doubles.
const LIFT_WINDOW: Duration = Duration::from_secs(1);
/// Consecutive lifts that met a 429 double the window, up to `LIFT_WINDOW << MAX_FAILED_LIFTS`.
const MAX_FAILED_LIFTS: u32 = 5;
/// Release pacing ends once its pace has doubled up to this multiple of the advertised rate.
const MAX_LIFT: f64 = 64.0;
/// The shortest window an advertised rate is measured over.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// The rate a 429's headers advertise, in requests per second: `inin-ratelimit-allowed`,
/// `ratelimit-limit` or `x-ratelimit-limit` requests over the matching reset window (at least
/// a second; a second when the reset header is missing).
pub(crate) fn advertised_rate(headers: &HeaderMap, now: SystemTime) -> Option<f64> {
    [
        ("inin-ratelimit-allowed", ININ_RATELIMIT_RESET),
        ("ratelimit-limit", RATELIMIT_RESET),
        ("x-ratelimit-limit", X_RATELIMIT_RESET),
    ]
    .into_iter()
    .find_map(|(limit, reset)| {
        let value = headers.get(limit)?.to_str().ok()?;
        // NOTE: draft RateLimit headers may append a policy (`100, 100;w=60`).
        let allowed: u32 = value.split([',', ';']).next()?.trim().parse().ok()?;
        let window = headers
            .get(reset)
            .and_then(|v| parse_ratelimit_reset(v, now))
            .unwrap_or(MIN_WINDOW)
            .max(MIN_WINDOW);
        (allowed > 0).then(|| f64::from(allowed) / window.as_secs_f64())
    })
}

/// Optional client-side pacing for a [`BackoffPolicy`](super::BackoffPolicy): a token
/// bucket shared by every clone of the layer, with a fixed or adaptive rate.
///
/// - [`Pacing::per_second`]: at most `n` requests per second (a token bucket holding
///   [`burst`](Pacing::burst) tokens, one by default, so requests are spread evenly).
/// - [`Pacing::adaptive`]: starts at a guess and learns the server's limit from 429s,
///   AIMD style: each 429 multiplies the rate by [`decrease`](Pacing::decrease) (at most
///   once a second, as one overshoot makes several in-flight requests fail together), and
///   each success adds [`increase`](Pacing::increase) requests per second per second.
///   Close below the rate where the last 429 happened it probes ten times more slowly, so
///   a long job settles just under the limit instead of oscillating around it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pacing {
    per_second: f64,
    burst: f64,
    adaptive: Option<Adaptive>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Adaptive {
    min: f64,
    max: f64,
    decrease: f64,
    increase: f64,
}

impl Pacing {
    /// At most `n` requests per second across all clones (`0` is raised to `1`).
    pub fn per_second(n: u32) -> Self {
        Pacing {
            per_second: f64::from(n.max(1)),
            burst: 1.0,
            adaptive: None,
        }
    }

    /// A rate learned from 429s, starting at `initial_per_second`.
    ///
    /// Defaults: decrease ×0.9 per 429, increase 0.5 requests/s per second, between
    /// 0.1 and 10 000 requests per second. A non-finite or non-positive start becomes 1.
    pub fn adaptive(initial_per_second: f64) -> Self {
        let initial = if initial_per_second.is_finite() && initial_per_second > 0.0 {
            initial_per_second
        } else {
            1.0
        };
        Pacing {
            per_second: initial,
            burst: 1.0,
            adaptive: Some(Adaptive {
                min: 0.1,
                max: 10_000.0,
                decrease: 0.9,
                increase: 0.5,
            }),
        }
    }

    /// How many requests may go out back to back after an idle spell (default 1).
    pub fn burst(mut self, n: u32) -> Self {
        self.burst = f64::from(n.max(1));
        self
    }

    /// Adaptive mode: the factor applied to the rate on a 429, clamped to `0.05..=1.0`.
    pub fn decrease(mut self, factor: f64) -> Self {
        if let Some(a) = &mut self.adaptive {
            if factor.is_finite() {
                a.decrease = factor.clamp(0.05, 1.0);
            }
        }
        self
    }

    /// Adaptive mode: requests per second gained per second of successes (at least 0).
    pub fn increase(mut self, per_second: f64) -> Self {
        if let Some(a) = &mut self.adaptive {
            if per_second.is_finite() {
                a.increase = per_second.max(0.0);
            }
        }
        self
    }

    /// Adaptive mode: the lowest and highest rates it may choose.
    pub fn bounds(mut self, min_per_second: f64, max_per_second: f64) -> Self {
        if let Some(a) = &mut self.adaptive {
            if min_per_second.is_finite() && max_per_second.is_finite() {
                a.min = min_per_second.max(0.001);
                a.max = max_per_second.max(a.min);
                self.per_second = self.per_second.clamp(a.min, a.max);
            }
        }
        self
    }
}

/// The default [`RateState`]: the 429 gate and an optional [`Pacing`] token bucket, in this
/// process, shared through one `Arc` by every clone of a [`BackoffPolicy`](super::BackoffPolicy).
///
/// All methods take a lock briefly and never across an await (with the gate open and no
/// pacing, [`try_acquire`](RateState::try_acquire) takes none: one atomic load), and waiting
/// is a plain timer, so a dropped waiter holds nothing.
///
/// # Release after a 429
///
/// The attempts held at the gate are not all let go when it opens (they would trip the
/// next 429 at once). After a 429 that advertised the server's rate
/// ([`close_until_paced`](RateState::close_until_paced)), attempts go out one every
/// `1 / pace` from the reopening on, held and new alike, the pace starting at the advertised
/// rate `r`:
///
/// - each window without a 429 doubles the pace. The window is a second, doubled for each
///   consecutive release that met a 429 once its pace had grown above `r` (a failed lift),
///   up to 32 s: a momentary limit is lifted within seconds, and a limit the server keeps
///   enforcing is probed ever more rarely, each probe costing the 429s of the attempts sent
///   before the first of them came back.
/// - pacing ends once no attempt has needed to wait for a second (the demand fell below the
///   pace) or once the pace reached 64 × `r`; either forgets the failed lifts.
/// - any 429 closes the gate again, and the release that follows starts over at `r`.
///
/// Without an advertised rate, the attempts held when the gate opens are spread over one
/// interval as long as the gate was closed (at most a second), and later ones go straight
/// through.
#[derive(Debug)]
pub struct LocalRateState {
    state: Mutex<PacerState>,
    /// Whether there is a token bucket (fixed for the pacer's life).
    has_bucket: bool,
    /// Whether the bucket's rate is adaptive (fixed for the pacer's life).
    adaptive: bool,
    /// Set while `blocked_until` or `release` may be set (written under the lock): without
    /// a bucket, an attempt checks this flag instead of taking the lock.
    blocked: AtomicBool,
    /// Attempts waiting in a [`wait`](RateState::wait) future right now (a dropped waiter
    /// is not counted): how many a reopening gate has to release.
    waiting: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct PacerState {
    blocked_until: Option<Instant>,
    release: Option<Release>,
    bucket: Option<Bucket>,
    /// Consecutive releases whose pace had grown above the advertised rate when a 429 came
    /// (at most `MAX_FAILED_LIFTS`); zero once a release ends without a 429.
    failed_lifts: u32,
}

/// How the attempts held by a 429 are let go when the gate opens.
#[derive(Debug)]
struct Release {
    /// The rate the server advertised, if it did.
    rate: Option<f64>,
    /// When the gate closed for this release (the start of the interval it was closed).
    closed_at: Instant,
    /// When the gate opens.
    opens_at: Instant,
    /// The next free slot and the spacing between slots; `None` until the gate opens.
    schedule: Option<(Instant, Duration)>,
    /// With an advertised rate: the pace slots are spaced at (requests per second; the
    /// advertised rate times a power of two), and when its current window began.
    pace: f64,
    lift_started: Instant,
    /// How long the pace holds without a 429 before it doubles.
    lift_window: Duration,
    /// With an advertised rate: the last time an attempt was told to wait for its slot (the
    /// reopening until one is).
    last_held: Instant,
    /// Slots left to hand out (without an advertised rate: the attempts held at reopening).
    remaining: usize,
    /// 429s seen while the gate was closed: requests that will retry at the reopening.
    throttled: usize,
}

/// Decrements the waiting count when a [`LocalRateState::wait`] future ends or is dropped.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    updated: Instant,
    adaptive: Option<Adaptive>,
    last_decrease: Option<Instant>,
    ceiling: Option<f64>,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.updated = now;
    }
}

impl Release {
    /// Takes a release slot at `now` once the gate has opened: `Some(Ok)` to go,
    /// `Some(Err(t))` to come back at `t`, `None` when release pacing is over.
    fn take_slot(&mut self, now: Instant, waiting: &AtomicUsize) -> Option<Result<(), Instant>> {
        let (mut next, mut spacing) = *self.schedule.get_or_insert_with(|| {
            let spacing = match self.rate {
                Some(rate) => {
                    self.pace = rate;
                    spacing_at(rate)
                }
                None => {
                    // NOTE: the held attempts are those waiting at the gate and those whose
                    // 429 closed it (each retries after its own wait), give or take the
                    // one asking now.
                    let held = (waiting.load(Ordering::Acquire) + self.throttled).max(1);
                    self.remaining = held;
                    let interval = (self.opens_at - self.closed_at).min(MIN_WINDOW);
                    interval / u32::try_from(held).unwrap_or(u32::MAX)
                }
            };
            (self.opens_at, spacing)
        });
        if let Some(rate) = self.rate {
            // NOTE: every 429 replaces the release, so each window that has passed since
            // `lift_started` had none. Bounded: the pace reaches the cap after
            // log2(MAX_LIFT) doublings.
            while now >= self.lift_started + self.lift_window {
                self.lift_started += self.lift_window;
                self.pace *= 2.0;
                if self.pace >= MAX_LIFT * rate {
                    return None;
                }
                // NOTE: the next slot stays one (new) spacing after the last one handed out.
                let faster = spacing_at(self.pace);
                next = next.checked_sub(spacing).map_or(next, |last| last + faster);
                spacing = faster;
                self.schedule = Some((next, spacing));
            }
        }
        let over = match self.rate {
            Some(_) => now > self.last_held + RELEASE_QUIET,
            None => self.remaining == 0,
        };
        if over {
            return None;
        }
        if now < next {
            self.last_held = now;
            return Some(Err(next));
        }
        // NOTE: an attempt up to one spacing late keeps the cadence (timers and scheduling
        // make every wake a little late, which would otherwise lower the rate); later than
        // that, the schedule restarts from now.
        let base = now
            .checked_sub(spacing)
            .map_or(next, |early| next.max(early));
        self.schedule = Some((base + spacing, spacing));
        self.remaining = self.remaining.saturating_sub(1);
        Some(Ok(()))
    }

    /// Whether the pace has grown above the advertised rate since the gate opened.
    fn lifting(&self) -> bool {
        self.schedule.is_some() && self.rate.is_some_and(|rate| self.pace > rate)
    }
}

/// The time between two slots at `rate` requests per second.
fn spacing_at(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate).unwrap_or(MIN_WINDOW)
}

impl Default for LocalRateState {
    fn default() -> Self {
        Self::new(None)
    }
}

impl LocalRateState {
    /// The gate alone (no pacing) with `None`, or the gate and a token bucket.
    pub fn new(pacing: Option<&Pacing>) -> Self {
        let bucket = pacing.map(|p| Bucket {
            rate: p.per_second,
            capacity: p.burst,
            tokens: p.burst,
            updated: Instant::now(),
            adaptive: p.adaptive,
            last_decrease: None,
            ceiling: None,
        });
        LocalRateState {
            has_bucket: bucket.is_some(),
            adaptive: bucket.as_ref().is_some_and(|b| b.adaptive.is_some()),
            blocked: AtomicBool::new(false),
            waiting: Arc::new(AtomicUsize::new(0)),
            state: Mutex::new(PacerState {
                blocked_until: None,
                release: None,
                bucket,
                failed_lifts: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        // NOTE: no code panics while holding the lock; recover rather than propagate.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RateState for LocalRateState {
    fn learns(&self) -> bool {
        self.adaptive
    }

    fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
        // NOTE: an attempt racing with a 429's `block_until` may go out as if it had come
        // just before the 429; with no gate set and no bucket there is nothing to lock.
        if !self.has_bucket && !self.blocked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut state = self.lock();
        if let Some(until) = state.blocked_until {
            if until > now {
                return Err(until);
            }
            state.blocked_until = None;
        }
        if let Some(release) = &mut state.release {
            match release.take_slot(now, &self.waiting) {
                Some(Ok(())) => {}
                Some(Err(slot)) => return Err(slot),
                None => {
                    state.release = None;
                    state.failed_lifts = 0;
                }
            }
        }
        if state.blocked_until.is_none() && state.release.is_none() {
            self.blocked.store(false, Ordering::Release);
        }
        let Some(bucket) = &mut state.bucket else {
            return Ok(());
        };
        bucket.refill(now);
        if bucket.tokens >= 1.0 - EPSILON {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = (1.0 - bucket.tokens) / bucket.rate;
        Err(now + Duration::try_from_secs_f64(missing).unwrap_or(Duration::from_secs(1)))
    }

    fn wait(&self, until: Instant) -> GateWait {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(self.waiting.clone());
        Box::pin(async move {
            tokio::time::sleep_until(until).await;
            drop(waiting);
        })
    }

    fn close_until(&self, until: Instant) {
        self.close_until_paced(until, None);
    }

    fn close_until_paced(&self, until: Instant, release_per_second: Option<f64>) {
        let now = Instant::now();
        let rate = release_per_second.filter(|r| r.is_finite() && *r > 0.0);
        let mut state = self.lock();
        let opens_at = state.blocked_until.map_or(until, |u| u.max(until));
        state.blocked_until = Some(opens_at);
        let (closed_at, throttled) = match &state.release {
            // NOTE: a 429 while the gate is still closed extends this closure.
            Some(r) if r.schedule.is_none() => (r.closed_at, r.throttled + 1),
            _ => (now, 1),
        };
        if state.release.as_ref().is_some_and(Release::lifting) {
            state.failed_lifts = (state.failed_lifts + 1).min(MAX_FAILED_LIFTS);
        }
        let rate = rate.or(state.release.as_ref().and_then(|r| r.rate));
        state.release = Some(Release {
            rate,
            closed_at,
            opens_at,
            schedule: None,
            pace: 0.0,
            lift_started: opens_at,
            lift_window: LIFT_WINDOW * (1 << state.failed_lifts),
            last_held: opens_at,
            remaining: 0,
            throttled,
        });
        self.blocked.store(true, Ordering::Release);
    }

    fn throttled(&self, now: Instant) {
        if !self.adaptive {
            return;
        }
        let mut state = self.lock();
        let Some(bucket) = &mut state.bucket else {
            return;
        };
        let Some(adaptive) = bucket.adaptive else {
            return;
        };
        let recent = bucket
            .last_decrease
            .is_some_and(|at| now.saturating_duration_since(at) < MIN_DECREASE_INTERVAL);
        bucket.refill(now);
        bucket.tokens = bucket.tokens.min(0.0);
        if recent {
            return;
        }
        bucket.ceiling = Some(bucket.rate);
        bucket.rate = (bucket.rate * adaptive.decrease).clamp(adaptive.min, adaptive.max);
        bucket.last_decrease = Some(now);
    }

    fn succeeded(&self, now: Instant) {
        if !self.adaptive {
            return;
        }
        let mut state = self.lock();
        let Some(bucket) = &mut state.bucket else {
            return;
        };
        let Some(adaptive) = bucket.adaptive else {
            return;
        };
        bucket.refill(now);
        let near_limit = bucket
            .ceiling
            .is_some_and(|c| bucket.rate >= 0.95 * c && bucket.rate <= c);
        let step = if near_limit {
            adaptive.increase / 10.0
        } else {
            adaptive.increase
        };
        bucket.rate = (bucket.rate + step / bucket.rate).clamp(adaptive.min, adaptive.max);
    }

    fn pacing_rate(&self) -> Option<f64> {
        self.lock().bucket.as_ref().map(|b| b.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_spaces_requests_evenly() {
        let pacer = LocalRateState::new(Some(&Pacing::per_second(4)));
        let now = Instant::now();
        assert_eq!(pacer.try_acquire(now), Ok(()));
        let next = pacer.try_acquire(now).unwrap_err();
        assert_eq!(next - now, Duration::from_millis(250));
        assert_eq!(pacer.try_acquire(next), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn gate_holds_until_the_latest_reset() {
        let pacer = LocalRateState::new(None);
        let now = Instant::now();
        pacer.close_until(now + Duration::from_secs(5));
        pacer.close_until(now + Duration::from_secs(2));
        assert_eq!(pacer.try_acquire(now), Err(now + Duration::from_secs(5)));
        assert_eq!(pacer.try_acquire(now + Duration::from_secs(5)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_rate_decreases_once_per_burst_and_creeps_back() {
        let pacer = LocalRateState::new(Some(&Pacing::adaptive(10.0).decrease(0.5).increase(1.0)));
        let now = Instant::now();
        pacer.throttled(now);
        pacer.throttled(now + Duration::from_millis(10));
        assert_eq!(pacer.pacing_rate(), Some(5.0));
        pacer.succeeded(now + Duration::from_millis(20));
        assert_eq!(pacer.pacing_rate(), Some(5.2));
        pacer.throttled(now + Duration::from_secs(2));
        assert!((pacer.pacing_rate().unwrap() - 2.6).abs() < 1e-9);
    }

    #[test]
    fn advertised_rate_is_the_limit_over_its_reset_window() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, http::HeaderValue::from_static(value));
            }
            h
        };
        let now = SystemTime::now();
        let genesys = headers(&[
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-reset", "60"),
        ]);
        assert_eq!(advertised_rate(&genesys, now), Some(5.0));
        let draft = headers(&[
            ("ratelimit-limit", "100, 100;w=60"),
            ("ratelimit-reset", "0"),
        ]);
        assert_eq!(
            advertised_rate(&draft, now),
            Some(100.0),
            "a window under 1 s counts as 1 s"
        );
        let no_reset = headers(&[("x-ratelimit-limit", "20")]);
        assert_eq!(advertised_rate(&no_reset, now), Some(20.0));
        let garbage = headers(&[("inin-ratelimit-allowed", "lots"), ("ratelimit-limit", "0")]);
        assert_eq!(advertised_rate(&garbage, now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn release_pacing_ends_a_second_after_the_last_attempt_that_had_to_wait() {
        let pacer = LocalRateState::new(None);
        let start = Instant::now();
        pacer.close_until_paced(start + Duration::from_secs(1), Some(10.0));
        let opened = start + Duration::from_secs(1);
        assert_eq!(pacer.try_acquire(opened), Ok(()));
        let held = opened + Duration::from_millis(50);
        assert_eq!(
            pacer.try_acquire(held),
            Err(opened + Duration::from_millis(100))
        );
        // Demand below the pace from then on (one attempt every 200 ms): none waits.
        let mut at = held;
        while at < held + Duration::from_millis(1_000) {
            at += Duration::from_millis(200);
            assert_eq!(pacer.try_acquire(at), Ok(()));
            assert!(pacer.lock().release.is_some(), "still pacing at {at:?}");
        }
        at += Duration::from_millis(200);
        assert_eq!(pacer.try_acquire(at), Ok(()));
        assert!(pacer.lock().release.is_none());
        assert!(
            !pacer.blocked.load(Ordering::Acquire),
            "back on the fast path"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_is_not_counted_as_held() {
        let pacer = LocalRateState::new(None);
        let wait = pacer.wait(Instant::now() + Duration::from_secs(1));
        assert_eq!(pacer.waiting.load(Ordering::Acquire), 1);
        drop(wait);
        assert_eq!(pacer.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn fixed_pacing_ignores_adaptive_settings() {
        let fixed = Pacing::per_second(3)
            .decrease(0.5)
            .increase(9.0)
            .bounds(1.0, 2.0);
        assert_eq!(fixed, Pacing::per_second(3));
    }
}
