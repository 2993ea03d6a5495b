use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use keel_layers::backoff::{LocalRateState, RateState};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::pacing::{FleetPacing, Local};
use super::scripts::{CLOSE, TAKE};
use crate::conn::{Health, RedisConnection, RedisStoreError};

/// The 429 gate and optional pacing of a fleet, shared through Redis (see the
/// [module docs](super)).
///
/// # Clone
///
/// Clones share the local deadline cache, the held permits and the background listener
/// behind one `Arc`; the listener stops when the last clone is dropped.
#[derive(Clone)]
pub struct RedisRateState {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) conn: RedisConnection,
    pub(super) gate_key: String,
    pub(super) channel: String,
    pub(super) origin: String,
    bucket_key: String,
    /// Set while `deadline` may hold a time (written inside `deadline`'s lock): with it
    /// clear and no pacing, [`RedisRateState::acquire`] returns at once.
    pub(super) closed: AtomicBool,
    pub(super) deadline: watch::Sender<Option<Instant>>,
    pub(super) synced: watch::Sender<bool>,
    /// The subscription's connection (kept by the listener).
    pub(super) gate_health: Arc<Health>,
    pub(super) local: Option<Local>,
    /// Without fleet pacing: this process's release after the gate opens (paced at the
    /// advertised rate and lifted as [`LocalRateState`] does). With fleet pacing, the fleet's
    /// bucket paces the release and this is `None`.
    pub(super) release: Option<LocalRateState>,
    refill: tokio::sync::Mutex<()>,
    /// Set while a background refill (started by the [`RateState`] path) is in flight.
    pub(super) refilling: AtomicBool,
    /// Bumped when a background refill ends, to wake [`RateState::wait`]ers.
    ///
    /// [`RateState`]: keel_layers::backoff::RateState
    /// [`RateState::wait`]: keel_layers::backoff::RateState::wait
    pub(super) refilled: watch::Sender<u64>,
    listener: std::sync::Mutex<Option<AbortHandle>>,
    closes: AtomicU64,
    remote_closes: AtomicU64,
    pub(super) refills: AtomicU64,
}

/// A snapshot of a [`RedisRateState`]'s counters (this process only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisRateStats {
    /// Gate closures this process asked for (its 429s).
    pub closes: u64,
    /// Gate closures learned from other processes.
    pub remote_closes: u64,
    /// Batches of permits taken from the fleet's bucket.
    pub refills: u64,
}

impl RedisRateState {
    /// The rate state shared under `name` (for example the API host: processes with the same
    /// name share a gate and a budget), with no pacing.
    ///
    /// A background task on the current tokio runtime subscribes to the fleet's gate and
    /// reconnects after outages.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(conn: RedisConnection, name: &str) -> Self {
        Self::build(conn, name, None)
    }

    /// Like [`new`](Self::new), with fleet-wide pacing (see [`FleetPacing`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn with_pacing(conn: RedisConnection, name: &str, pacing: FleetPacing) -> Self {
        Self::build(conn, name, Some(pacing))
    }

    fn build(conn: RedisConnection, name: &str, pacing: Option<FleetPacing>) -> Self {
        let hash = Sha256::digest(name.as_bytes());
        let hash: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        let base = format!("{}:rate:{{{hash}}}", conn.prefix());
        let inner = Arc::new(Inner {
            gate_key: format!("{base}:gate"),
            channel: format!("{base}:gate"),
            bucket_key: format!("{base}:bucket"),
            origin: format!("{:016x}", rand::random::<u64>()),
            conn,
            closed: AtomicBool::new(false),
            deadline: watch::Sender::new(None),
            synced: watch::Sender::new(false),
            gate_health: Arc::new(Health::new("hearing the fleet's 429 gate")),
            release: pacing.is_none().then(LocalRateState::default),
            local: pacing.map(Local::new),
            refill: tokio::sync::Mutex::new(()),
            refilling: AtomicBool::new(false),
            refilled: watch::Sender::new(0),
            listener: std::sync::Mutex::new(None),
            closes: AtomicU64::new(0),
            remote_closes: AtomicU64::new(0),
            refills: AtomicU64::new(0),
        });
        let handle = tokio::spawn(super::listener::run(Arc::downgrade(&inner))).abort_handle();
        *inner.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        RedisRateState { inner }
    }

    /// Closes the gate until at least `until`: at once for this process, then for the fleet
    /// (an atomic max in Redis and a notification to the other processes) when the returned
    /// future runs. A later deadline already set wins. Redis unreachable: the local close
    /// stands (one warning).
    pub fn close_until(&self, until: Instant) -> BoxFuture<'static, ()> {
        self.close(until, None)
    }

    /// [`close_until`](Self::close_until), telling every process the rate the 429
    /// advertised (requests per second), at which each paces its release.
    pub(super) fn close(&self, until: Instant, rate: Option<f64>) -> BoxFuture<'static, ()> {
        let now = Instant::now();
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        self.inner.closes.fetch_add(1, Ordering::Relaxed);
        if let Some(release) = &self.inner.release {
            release.close_until_paced(until, rate);
        }
        self.inner.close_locally(until);
        let inner = Arc::clone(&self.inner);
        let delay_ms = until.saturating_duration_since(now).as_millis() as u64;
        Box::pin(async move {
            if delay_ms == 0 {
                return;
            }
            let (key, channel, origin) = (
                inner.gate_key.clone(),
                inner.channel.clone(),
                inner.origin.clone(),
            );
            let rate = rate.map_or_else(String::new, |r| r.to_string());
            let _ = inner
                .conn
                .call("gate close", |mut c| async move {
                    CLOSE
                        .key(key)
                        .arg(delay_ms)
                        .arg(channel)
                        .arg(origin)
                        .arg(rate)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
        })
    }

    /// Until when the gate is closed, as known locally (no Redis round trip); `None` when
    /// open.
    pub fn closed_until(&self) -> Option<Instant> {
        if !self.inner.closed.load(Ordering::Acquire) {
            return None;
        }
        (*self.inner.deadline.borrow()).filter(|at| *at > Instant::now())
    }

    /// Waits until the gate is open. Waiters are woken by the deadline passing or moving
    /// (a close by this or another process), never by polling Redis.
    pub async fn wait_open(&self) {
        if !self.inner.closed.load(Ordering::Acquire) {
            return;
        }
        let mut changes = self.inner.deadline.subscribe();
        loop {
            let until = *changes.borrow_and_update();
            match until {
                Some(at) if at > Instant::now() => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        _ = changes.changed() => {}
                    }
                }
                _ => {
                    self.inner.reopen();
                    return;
                }
            }
        }
    }

    /// Waits for the gate, then for a pacing permit (if pacing is on). With the gate open and
    /// a held permit (or no pacing) it returns without a Redis round trip.
    ///
    /// # Errors
    ///
    /// Only when configured fail-closed and Redis is unreachable: the fleet's gate cannot be
    /// heard, or (with pacing) no permits can be taken.
    pub async fn acquire(&self) -> Result<(), RedisStoreError> {
        self.wait_open().await;
        if self.inner.conn.fail_closed() && self.inner.gate_health.is_down() {
            return Err(RedisStoreError::Unavailable {
                operation: "gate subscription",
                reason: "not subscribed to the fleet's gate".to_owned(),
            });
        }
        let Some(local) = &self.inner.local else {
            if let Some(release) = &self.inner.release {
                // NOTE: the release hears every close (local and remote), so this also
                // waits out a close that lands while it waits for its slot.
                while let Err(slot) = release.try_acquire(Instant::now()) {
                    release.wait(slot).await;
                }
            }
            return Ok(());
        };
        if local.take(Instant::now()) {
            return Ok(());
        }
        let _refill = self.inner.refill.lock().await;
        loop {
            // NOTE: re-checked after waiting for the refill lock: the previous holder may have
            // refilled, and a 429 may have closed the gate meanwhile.
            self.wait_open().await;
            let now = Instant::now();
            if local.take(now) {
                return Ok(());
            }
            match self.take_batch(local.pacing()).await {
                Ok(wait_ms) => {
                    self.inner.refills.fetch_add(1, Ordering::Relaxed);
                    // NOTE: the refill lock is held while waiting out the fleet's debt, so
                    // this process's other callers queue locally instead of calling Redis.
                    let ready = if wait_ms == 0 {
                        Instant::now()
                    } else {
                        let ready = now + Duration::from_millis(wait_ms);
                        tokio::time::sleep_until(ready).await;
                        ready
                    };
                    local.hold(local.pacing().batch, ready);
                    return Ok(());
                }
                Err(error) if self.inner.conn.fail_closed() => return Err(error),
                Err(_) => match local.take_alone(now) {
                    Ok(()) => return Ok(()),
                    Err(at) => tokio::time::sleep_until(at).await,
                },
            }
        }
    }

    pub(super) async fn take_batch(&self, pacing: &FleetPacing) -> Result<u64, RedisStoreError> {
        let key = self.inner.bucket_key.clone();
        let pacing = *pacing;
        self.inner
            .conn
            .call("pacing permits", |mut c| async move {
                TAKE.key(key)
                    .arg(pacing.per_second)
                    .arg(pacing.burst)
                    .arg(pacing.batch)
                    .invoke_async::<u64>(&mut c)
                    .await
            })
            .await
    }

    /// Waits until this process has read the fleet's gate and subscribed to its changes
    /// (at start, and again after a Redis outage).
    pub async fn synced(&self) {
        let mut synced = self.inner.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// This process's counters.
    pub fn stats(&self) -> RedisRateStats {
        RedisRateStats {
            closes: self.inner.closes.load(Ordering::Relaxed),
            remote_closes: self.inner.remote_closes.load(Ordering::Relaxed),
            refills: self.inner.refills.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// Moves the local deadline to `until` if that is later; wakes waiters if it moved.
    pub(super) fn close_locally(&self, until: Instant) -> bool {
        self.deadline.send_if_modified(|deadline| {
            if deadline.is_some_and(|d| d >= until) {
                return false;
            }
            *deadline = Some(until);
            self.closed.store(true, Ordering::Release);
            true
        })
    }

    /// A close learned from another process, with the rate its 429 advertised.
    pub(super) fn close_remote(&self, until: Instant, rate: Option<f64>) {
        if let Some(release) = &self.release {
            release.close_until_paced(until, rate);
        }
        if self.close_locally(until) {
            self.remote_closes.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn reopen(&self) {
        let now = Instant::now();
        self.deadline.send_if_modified(|deadline| {
            if deadline.is_some_and(|d| d <= now) {
                *deadline = None;
                self.closed.store(false, Ordering::Release);
            }
            false
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = self
            .listener
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            listener.abort();
        }
    }
}

impl fmt::Debug for RedisRateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateState")
            .field("conn", &self.inner.conn)
            .field("closed_until", &self.closed_until())
            .field("pacing", &self.inner.local.as_ref().map(|l| l.pacing()))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisConfig;

    /// A state whose Redis never answers: only the local part of the gate works.
    fn unreachable() -> RedisRateState {
        let config = RedisConfig::new(secrecy::SecretString::from(
            "redis://127.0.0.1:1/".to_owned(),
        ))
        .unwrap();
        RedisRateState::new(config.connect().unwrap(), "local")
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_open_at_the_latest_deadline() {
        let gate = unreachable();
        let start = Instant::now();
        gate.close_until(start + Duration::from_secs(5)).await;
        // An earlier deadline does not shorten the wait, a later one lengthens it.
        gate.close_until(start + Duration::from_secs(2)).await;
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.wait_open().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        gate.close_until(start + Duration::from_secs(8)).await;
        assert_eq!(waiter.await.unwrap(), start + Duration::from_secs(8));
        assert_eq!(gate.closed_until(), None);
        assert_eq!(gate.stats().closes, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_gate_does_not_wait() {
        let gate = unreachable();
        let start = Instant::now();
        gate.acquire().await.unwrap();
        assert_eq!(Instant::now(), start);
        assert_eq!(gate.closed_until(), None);
    }
}
