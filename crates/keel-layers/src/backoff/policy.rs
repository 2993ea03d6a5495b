//! [`BackoffPolicy`]: what to retry, how long to wait, and the limits that stop retrying.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use super::pacing::{LocalRateState, Pacing};
use super::rate_state::RateState;
use super::stats::{BackoffStats, RetryKind};
use crate::hints::DelaySource;
use crate::jitter::full_jitter;

/// Configuration and shared state of a [`BackoffLayer`](super::BackoffLayer).
///
/// Builder setters take `mut self` and return `Self`:
///
/// ```
/// use std::time::Duration;
/// use keel_layers::backoff::{BackoffPolicy, Pacing};
///
/// let policy = BackoffPolicy::new()
///     .max_attempts(8)
///     .max_elapsed(Duration::from_secs(600))
///     .max_delay(Duration::from_secs(90))
///     .exponential(Duration::from_millis(100), Duration::from_secs(20))
///     .retry_gateway_errors(true)
///     .pacing(Pacing::adaptive(10.0));
/// let stats = policy.stats();
/// assert_eq!(stats.retries(), 0);
/// ```
///
/// Defaults: 429 and 503 are retried; at most 5 attempts, 5 minutes in all, and a single
/// wait of at most 60 s; exponential schedule from 250 ms capped at 30 s with full jitter;
/// a [`TpsBudget::default`] retry budget; the cooperative 429 gate on; no client pacing.
///
/// # Clone
///
/// The retry budget, the pacing gate and bucket, and the [`BackoffStats`] live behind
/// `Arc`s: every clone of a policy, and every layer and service built from it, shares
/// them. That is the point (a retry storm spends one budget; a 429 seen by one clone holds
/// back all of them). A policy built separately with [`BackoffPolicy::new`] has its own.
/// [`pacing`](Self::pacing), [`rate_state`](Self::rate_state), [`budget`](Self::budget) and
/// [`stats_handle`](Self::stats_handle)
/// replace the shared piece for this value only, so call them before cloning.
#[derive(Clone)]
pub struct BackoffPolicy {
    pub(super) max_attempts: u32,
    pub(super) max_elapsed: Duration,
    pub(super) max_delay: Duration,
    base: Duration,
    cap: Duration,
    pub(super) retry_gateway: bool,
    pub(super) retry_transport: bool,
    pub(super) gate: bool,
    pub(super) drain_limit: usize,
    pub(super) budget: Arc<dyn Budget + Send + Sync>,
    pub(super) rate: Arc<dyn RateState>,
    /// Whether `rate` learns from successful responses (asked once, when it is set).
    pub(super) learns: bool,
    pub(super) stats: BackoffStats,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(300),
            max_delay: Duration::from_secs(60),
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            retry_gateway: false,
            retry_transport: false,
            gate: true,
            drain_limit: 64 * 1024,
            budget: Arc::new(TpsBudget::default()),
            rate: Arc::new(LocalRateState::default()),
            learns: false,
            stats: BackoffStats::new(),
        }
    }
}

impl fmt::Debug for BackoffPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("max_delay", &self.max_delay)
            .field("base", &self.base)
            .field("cap", &self.cap)
            .field("retry_gateway", &self.retry_gateway)
            .field("retry_transport", &self.retry_transport)
            .field("gate", &self.gate)
            .field("rate_state", &self.rate)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl BackoffPolicy {
    /// The default policy (see the type docs), with its own budget, gate and stats.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total attempts per request, the first included (at least 1; 1 turns retries off).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// No retry starts after this much time since the request was first called; a wait
    /// that would end past it returns the response instead.
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The longest single wait the server may ask for; a longer `Retry-After` or rate-limit
    /// reset returns the response to the caller at once.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The schedule used without a server hint: retry `n` (from 1) waits a random time in
    /// `0..=min(cap, base * 2^(n-1))` ("full jitter").
    pub fn exponential(mut self, base: Duration, cap: Duration) -> Self {
        self.base = base;
        self.cap = cap.max(base);
        self
    }

    /// Retry `502 Bad Gateway` and `504 Gateway Timeout` for every request (default off;
    /// per request, see [`RetrySafe`](super::RetrySafe)).
    pub fn retry_gateway_errors(mut self, enabled: bool) -> Self {
        self.retry_gateway = enabled;
        self
    }

    /// Retry transport failures (connection refused, reset, closed before a response) and
    /// timed-out attempts (a timeout layer inside this one) for every request (default off; per request, see [`RetrySafe`](super::RetrySafe)).
    pub fn retry_transport_errors(mut self, enabled: bool) -> Self {
        self.retry_transport = enabled;
        self
    }

    /// Whether a 429 with a reset time holds new requests through every clone until that
    /// time (default on).
    pub fn cooperative_gate(mut self, enabled: bool) -> Self {
        self.gate = enabled;
        self
    }

    /// The retry budget shared by all clones: each request deposits, each retry withdraws,
    /// and an empty budget returns the response instead of retrying.
    pub fn budget<T: Budget + Send + Sync + 'static>(mut self, budget: T) -> Self {
        self.budget = Arc::new(budget);
        self
    }

    /// Client-side pacing shared by all clones (default none).
    pub fn pacing(self, pacing: Pacing) -> Self {
        self.rate_state(LocalRateState::new(Some(&pacing)))
    }

    /// Where the 429 gate and pacing permits live (default: a [`LocalRateState`] in this
    /// process, with no pacing). Replaces [`pacing`](Self::pacing); a shared implementation
    /// makes many processes hold back together (see [`RateState`]).
    pub fn rate_state(mut self, state: impl RateState) -> Self {
        self.learns = state.learns();
        self.rate = Arc::new(state);
        self
    }

    /// How many bytes of a retryable response's body are read (during the wait) so the
    /// connection can be reused; past this the body is dropped (default 64 KiB).
    pub fn drain_limit(mut self, bytes: usize) -> Self {
        self.drain_limit = bytes;
        self
    }

    /// Count into `stats` (e.g. one handle shared by several policies) instead of this
    /// policy's own counters.
    pub fn stats_handle(mut self, stats: BackoffStats) -> Self {
        self.stats = stats;
        self
    }

    /// The counters shared by every clone of this policy.
    pub fn stats(&self) -> BackoffStats {
        self.stats.clone()
    }

    /// The current client-side rate in requests per second, if pacing is on (in adaptive
    /// mode, what it has learned so far).
    pub fn pacing_rate(&self) -> Option<f64> {
        self.rate.pacing_rate()
    }

    /// Which counter a retryable status goes to, or `None` if it is not retried.
    pub(super) fn classify(&self, status: StatusCode, retry_safe: bool) -> Option<RetryKind> {
        match status {
            StatusCode::TOO_MANY_REQUESTS => Some(RetryKind::Throttled),
            StatusCode::SERVICE_UNAVAILABLE => Some(RetryKind::Unavailable),
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
                if self.retry_gateway || retry_safe =>
            {
                Some(RetryKind::Other)
            }
            _ => None,
        }
    }

    /// The wait before retry number `retry` (from 1), or why there is none.
    pub(super) fn next_delay(
        &self,
        retry: u32,
        started: Instant,
        now: Instant,
        hint: Option<(Duration, DelaySource)>,
    ) -> Result<(Duration, DelaySource), GiveUp> {
        if retry >= self.max_attempts {
            return Err(GiveUp::Attempts);
        }
        let (delay, source) = match hint {
            Some((delay, _)) if delay > self.max_delay => return Err(GiveUp::DelayTooLong),
            Some(hint) => hint,
            None => (
                full_jitter(self.base, self.cap, retry, &mut rand::rng()),
                DelaySource::Schedule,
            ),
        };
        let deadline = started.checked_add(self.max_elapsed);
        match now.checked_add(delay) {
            Some(at) if deadline.is_none_or(|d| at <= d) => Ok((delay, source)),
            _ => Err(GiveUp::Elapsed),
        }
    }
}

/// Why a retryable outcome went back to the caller as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GiveUp {
    Attempts,
    DelayTooLong,
    Elapsed,
    Budget,
    NotReplayable,
}

impl GiveUp {
    /// The `reason` label of [`GAVE_UP`](crate::metrics::GAVE_UP).
    pub(super) fn label(self) -> &'static str {
        match self {
            GiveUp::Attempts => "attempts",
            GiveUp::DelayTooLong => "max_delay",
            GiveUp::Elapsed => "max_elapsed",
            GiveUp::Budget => "budget",
            GiveUp::NotReplayable => "not_replayable",
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            GiveUp::Attempts => "attempts exhausted",
            GiveUp::DelayTooLong => "server asked for a wait longer than max_delay",
            GiveUp::Elapsed => "wait would end past max_elapsed",
            GiveUp::Budget => "retry budget exhausted",
            GiveUp::NotReplayable => "request body cannot be replayed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_429_and_503_are_retried_by_default() {
        let policy = BackoffPolicy::new();
        assert_eq!(
            policy.classify(StatusCode::TOO_MANY_REQUESTS, false),
            Some(RetryKind::Throttled)
        );
        assert_eq!(
            policy.classify(StatusCode::SERVICE_UNAVAILABLE, false),
            Some(RetryKind::Unavailable)
        );
        for status in [502, 504, 500, 401, 200] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(policy.classify(status, false), None, "{status}");
        }
        assert_eq!(
            policy.classify(StatusCode::BAD_GATEWAY, true),
            Some(RetryKind::Other)
        );
        let opted_in = BackoffPolicy::new().retry_gateway_errors(true);
        assert_eq!(
            opted_in.classify(StatusCode::GATEWAY_TIMEOUT, false),
            Some(RetryKind::Other)
        );
        assert_eq!(
            opted_in.classify(StatusCode::INTERNAL_SERVER_ERROR, false),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delays_respect_max_delay_and_deadline() {
        let policy = BackoffPolicy::new()
            .max_delay(Duration::from_secs(10))
            .max_elapsed(Duration::from_secs(30));
        let start = Instant::now();
        let hint = |s| Some((Duration::from_secs(s), DelaySource::RetryAfter));
        assert_eq!(
            policy.next_delay(1, start, start, hint(10)),
            Ok((Duration::from_secs(10), DelaySource::RetryAfter))
        );
        assert_eq!(
            policy.next_delay(1, start, start, hint(11)),
            Err(GiveUp::DelayTooLong)
        );
        let late = start + Duration::from_secs(25);
        assert_eq!(
            policy.next_delay(1, start, late, hint(6)),
            Err(GiveUp::Elapsed)
        );
        assert_eq!(
            policy.next_delay(5, start, start, hint(1)),
            Err(GiveUp::Attempts)
        );
    }
}
