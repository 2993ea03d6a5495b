//! The rate-state seam: where the cooperative 429 gate and client-side pacing permits live.
//!
//! [`Backoff`](super::Backoff) asks a [`RateState`] before every attempt and tells it about
//! every 429. By default that state is in-process ([`LocalRateState`](super::LocalRateState), one `Arc` shared by
//! every clone of a policy), so one process behaves as one client. A fleet of processes that
//! share one API client and one rate limit plugs a shared implementation (Redis, a
//! database) in through [`BackoffPolicy::rate_state`](super::BackoffPolicy::rate_state),
//! without touching the retry loop.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::time::Instant;

/// The future of [`RateState::wait`].
pub type GateWait = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The state that paces a client's requests: the cooperative 429 gate and, optionally, a
/// token bucket of pacing permits.
///
/// The retry loop uses only this trait:
///
/// - before each attempt, [`try_acquire`](Self::try_acquire), a synchronous check: `Ok` lets
///   the attempt go now (having taken a permit, if pacing is on); `Err(t)` asks it to wait.
///   This is the hot path: with the gate open and no pacing it must cost an atomic load or
///   two, take no lock that is held across an await, and allocate nothing.
/// - only when told to wait, [`wait(t)`](Self::wait), the slow path: a future that resolves
///   when it is worth calling `try_acquire` again (by `t` at the latest, or earlier if the
///   implementation learns the gate opened). Then `try_acquire` again.
/// - after a 429 that says when the server's window resets,
///   [`close_until_paced(t, rate)`](Self::close_until_paced) (by default
///   [`close_until(t)`](Self::close_until)): hold every new attempt until *at least* `t` (a
///   later deadline already set wins: an atomic max), then release the held attempts at a
///   pace rather than all at once.
/// - after each response, [`throttled`](Self::throttled) (a 429) or, if
///   [`learns`](Self::learns), [`succeeded`](Self::succeeded), for adaptive pacing.
///
/// # A shared implementation
///
/// A store shared by many processes (Redis) plugs in like this:
///
/// - `close_until` is an atomic max on the stored deadline (a script: set it if greater),
///   followed by a notification (pub/sub) to the other processes.
/// - each process keeps a local mirror of the deadline, updated by those notifications, so
///   `try_acquire` reads it without a round trip; `wait` returns a future that resolves on
///   the next notification or at the deadline, whichever comes first, so waiters are woken
///   rather than each polling the store.
/// - pacing permits are taken from the store in batches (a token bucket or GCRA evaluated in
///   the store hands out, say, 20 permits at once); `try_acquire` takes from the local batch,
///   and when it is empty answers `Err(now)` after starting one refill, which `wait`
///   resolves on. At high rates the store sees one round trip per batch, not per request.
/// - if the store is unreachable, fall back to in-process behaviour (a [`LocalRateState`](super::LocalRateState)
///   inside it) rather than holding requests.
///
/// # Example
///
/// A gate shared by two policies that were built separately (as two processes would be),
/// with waiters woken through a `tokio::sync::watch` channel instead of timers:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use keel_layers::backoff::{BackoffPolicy, GateWait, RateState};
/// use tokio::sync::watch;
/// use tokio::time::Instant;
///
/// #[derive(Debug, Clone)]
/// struct SharedGate {
///     deadline: Arc<Mutex<Option<Instant>>>,
///     changed: watch::Sender<()>,
/// }
///
/// impl RateState for SharedGate {
///     fn try_acquire(&self, now: Instant) -> Result<(), Instant> {
///         match *self.deadline.lock().unwrap() {
///             Some(until) if until > now => Err(until),
///             _ => Ok(()),
///         }
///     }
///
///     fn wait(&self, until: Instant) -> GateWait {
///         let mut changed = self.changed.subscribe();
///         Box::pin(async move {
///             tokio::select! {
///                 _ = changed.changed() => {}
///                 _ = tokio::time::sleep_until(until) => {}
///             }
///         })
///     }
///
///     fn close_until(&self, until: Instant) {
///         let mut deadline = self.deadline.lock().unwrap();
///         *deadline = Some(deadline.map_or(until, |d| d.max(until)));
///         self.changed.send_replace(());
///     }
/// }
///
/// let gate = SharedGate { deadline: Arc::default(), changed: watch::channel(()).0 };
/// let worker_a = BackoffPolicy::new().rate_state(gate.clone());
/// let worker_b = BackoffPolicy::new().rate_state(gate);
/// # let _ = (worker_a, worker_b);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a rate state",
    note = "`BackoffPolicy::rate_state` takes a `RateState` (`LocalRateState`, or a shared implementation); for client pacing alone use `BackoffPolicy::pacing`"
)]
pub trait RateState: fmt::Debug + Send + Sync + 'static {
    /// Lets one attempt go now (taking a pacing permit, if pacing is on), or says when to
    /// ask again. Synchronous and cheap: called before every attempt.
    fn try_acquire(&self, now: Instant) -> Result<(), Instant>;

    /// Resolves when it is worth calling [`try_acquire`](Self::try_acquire) again: at
    /// `until`, or earlier when the implementation learns that the gate opened. The default
    /// is a timer until `until`.
    fn wait(&self, until: Instant) -> GateWait {
        Box::pin(tokio::time::sleep_until(until))
    }

    /// Holds every new attempt until at least `until`; a later deadline already set wins.
    fn close_until(&self, until: Instant);

    /// [`close_until(until)`](Self::close_until), after a 429 whose headers advertised the
    /// server's rate (`release_per_second`, from `inin-ratelimit-allowed`, `RateLimit-Limit`
    /// or `X-RateLimit-Limit` over the reset window): when the gate opens, the held attempts
    /// should go out at a pace (at most that rate, or spread over the interval the gate was
    /// closed when the rate is unknown) rather than all at the same instant, which would
    /// trip the next 429 at once. The pace should lift once the server stops throttling, so
    /// that a momentary limit does not hold a busy client at the advertised rate for good.
    ///
    /// The default ignores the rate and calls `close_until`; [`LocalRateState`](super::LocalRateState)
    /// paces the release and lifts the pace after windows without a 429 (see its
    /// "Release after a 429").
    fn close_until_paced(&self, until: Instant, release_per_second: Option<f64>) {
        let _ = release_per_second;
        self.close_until(until);
    }

    /// A 429 came back (adaptive pacing slows down). The default does nothing.
    fn throttled(&self, now: Instant) {
        let _ = now;
    }

    /// A response that was neither a 429 nor a 5xx came back; called only if
    /// [`learns`](Self::learns). The default does nothing.
    fn succeeded(&self, now: Instant) {
        let _ = now;
    }

    /// Whether [`succeeded`](Self::succeeded) does anything (asked once, when the policy
    /// takes this state, so responses cost nothing for a state that does not learn).
    fn learns(&self) -> bool {
        false
    }

    /// The current pacing rate in requests per second, if this state paces.
    fn pacing_rate(&self) -> Option<f64> {
        None
    }
}
