//! Counters shared by every clone of one backoff policy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of what a [`BackoffPolicy`](super::BackoffPolicy) did, shared by all its clones.
///
/// A cheap `Clone` handle: every clone reads and writes the same counters, so a batch job
/// can keep one and print it at the end ("429 waits", "other retries").
#[derive(Clone, Debug, Default)]
pub struct BackoffStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    throttled_waits: AtomicU64,
    unavailable_retries: AtomicU64,
    other_retries: AtomicU64,
    wait_nanos: AtomicU64,
    paced_requests: AtomicU64,
    pacing_nanos: AtomicU64,
    gave_up: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl BackoffStats {
    /// A fresh set of counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries after a `429 Too Many Requests`.
    pub fn throttled_waits(&self) -> u64 {
        self.inner.throttled_waits.load(Ordering::Relaxed)
    }

    /// Retries after a `503 Service Unavailable`.
    pub fn unavailable_retries(&self) -> u64 {
        self.inner.unavailable_retries.load(Ordering::Relaxed)
    }

    /// Retries after anything else: 502, 504, transport failures.
    pub fn other_retries(&self) -> u64 {
        self.inner.other_retries.load(Ordering::Relaxed)
    }

    /// All retries: the sum of the three counters above.
    pub fn retries(&self) -> u64 {
        self.throttled_waits() + self.unavailable_retries() + self.other_retries()
    }

    /// Total time spent waiting between attempts (header hints and schedule).
    pub fn total_wait(&self) -> Duration {
        Duration::from_nanos(self.inner.wait_nanos.load(Ordering::Relaxed))
    }

    /// Attempts that had to wait at the shared pacing gate or token bucket before going out.
    pub fn paced_requests(&self) -> u64 {
        self.inner.paced_requests.load(Ordering::Relaxed)
    }

    /// Total time attempts spent waiting at the pacing gate or token bucket.
    pub fn pacing_wait(&self) -> Duration {
        Duration::from_nanos(self.inner.pacing_nanos.load(Ordering::Relaxed))
    }

    /// Retryable outcomes returned to the caller as they were, because a limit (attempts,
    /// elapsed time, `max_delay`, budget) or a non-replayable body stopped the retries.
    pub fn gave_up(&self) -> u64 {
        self.inner.gave_up.load(Ordering::Relaxed)
    }

    pub(super) fn record_retry(&self, kind: RetryKind, wait: Duration) {
        let counter = match kind {
            RetryKind::Throttled => &self.inner.throttled_waits,
            RetryKind::Unavailable => &self.inner.unavailable_retries,
            RetryKind::Other => &self.inner.other_retries,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner
            .wait_nanos
            .fetch_add(nanos(wait), Ordering::Relaxed);
    }

    pub(super) fn record_paced(&self, wait: Duration) {
        self.inner.paced_requests.fetch_add(1, Ordering::Relaxed);
        self.inner
            .pacing_nanos
            .fetch_add(nanos(wait), Ordering::Relaxed);
    }

    pub(super) fn record_gave_up(&self) {
        self.inner.gave_up.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which counter a retry goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RetryKind {
    Throttled,
    Unavailable,
    Other,
}

impl RetryKind {
    /// The `cause` label of [`RETRIES`](crate::metrics::RETRIES).
    pub(super) fn label(self) -> &'static str {
        match self {
            RetryKind::Throttled => "throttled",
            RetryKind::Unavailable => "unavailable",
            RetryKind::Other => "other",
        }
    }
}
