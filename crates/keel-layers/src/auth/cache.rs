use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_util::future::{FutureExt, Shared};
use tokio::time::Instant;

use super::{FetchFuture, InvalidateFuture, Token, TokenError, TokenId, TokenSource};

/// How long after a failed background refresh the cache waits before starting another one
/// while the current token is still valid.
const BACKGROUND_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The default floor between two invalidation-driven refreshes.
const DEFAULT_INVALIDATION_FLOOR: Duration = Duration::from_secs(1);

/// A cache of one access token in front of a [`TokenSource`], with single-flight refresh.
///
/// - **Fast path**: while the cached token is fresh, [`token`](TokenCache::token) returns a
///   clone of it (one reference-count increment) after a brief read lock that no fetch ever
///   holds; it allocates nothing and awaits nothing.
/// - **Single flight**: callers that find no valid token join one shared fetch; however many
///   they are, the source is asked once and all of them get its token or its error. A failed
///   fetch is not remembered: the next caller fetches again.
/// - **Proactive refresh**: a token is refreshed [`refresh_before`](TokenCache::refresh_before)
///   its expiry (60 s by default, but never more than half its lifetime, so a 2-second token is
///   used for about a second). Inside that window callers keep getting the still-valid token
///   while one refresh runs in the background (on the current tokio runtime); if it fails they
///   keep the valid token and a new refresh is tried after a short pause.
/// - **Invalidation**: [`invalidate`](TokenCache::invalidate) drops the token only if it is
///   still the current one, so a burst of 401s for one token causes one refresh. It tells the
///   source too ([`TokenSource::invalidate`], for a store shared by many processes), and the
///   next fetch starts only once the source has forgotten the token.
/// - **Floor**: invalidation-driven refreshes are at least
///   [`invalidation_floor`](TokenCache::invalidation_floor) apart (1 s by default), so
///   callers who can provoke 401s at will (through a gateway) cannot make it fetch a token
///   per request. A rejection inside the floor keeps the current token in service until the
///   floor ends, when it counts as expired; a replay of the rejected request waits for
///   that ([`replay_not_before`](TokenCache::replay_not_before)).
/// - **Robust fetches**: on a tokio runtime a fetch runs as its own task, so a fetch every
///   waiter gave up on still finishes on its own clock (its timeouts are not counted from a
///   start long past); a source that panics fails that fetch (as a
///   [`TokenError::Source`]) and the next caller fetches again.
///
/// # Clone
///
/// `TokenCache` is a handle: clones share one cache (token, in-flight fetch, counters) behind
/// one `Arc`.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

/// A snapshot of a [`TokenCache`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheStats {
    /// Fetches started from the token source.
    pub fetches: u64,
    /// Fetches that ended in an error.
    pub failures: u64,
    /// Tokens dropped by [`TokenCache::invalidate`].
    pub invalidations: u64,
    /// Rejections of the current token held back by the
    /// [`invalidation_floor`](TokenCache::invalidation_floor).
    pub deferred_invalidations: u64,
}

type SharedFetch = Shared<FetchFuture>;

type SharedInvalidation = Shared<InvalidateFuture>;

// NOTE: lock order: `flight` before `current`, `current` before `invalidation`, `flight`
// before `invalidation`; `invalidation` is a leaf (nothing is locked while it is held).
struct Inner {
    source: Arc<dyn TokenSource>,
    current: RwLock<Option<Cached>>,
    flight: Mutex<Flight>,
    invalidation: Mutex<Invalidation>,
    refreshing: AtomicBool,
    refresh_before_nanos: AtomicU64,
    floor_nanos: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
    invalidations: AtomicU64,
    deferred: AtomicU64,
}

/// What the cache remembers of invalidations.
#[derive(Default)]
struct Invalidation {
    /// When the cache last dropped a token.
    last_drop: Option<Instant>,
    /// The source's [`TokenSource::invalidate`] of the last dropped token, which the next
    /// fetch waits for.
    pending: Option<SharedInvalidation>,
    /// A rejection held back by the floor: the source is told when the floor ends and the
    /// token is refreshed.
    deferred: Option<Token>,
}

/// The current token and when it is due for a refresh, worked out when it is stored (or the
/// lead changes), so the fast path compares two instants instead of redoing that arithmetic.
struct Cached {
    token: Token,
    /// The token's expiry, or the end of the invalidation floor for a token rejected inside
    /// it (whichever comes first).
    expires_at: Option<Instant>,
    /// `None` for a token that never expires.
    due: Option<Instant>,
}

#[derive(Default)]
struct Flight {
    running: Option<(u64, SharedFetch)>,
    generation: u64,
    background_not_before: Option<Instant>,
}

enum Freshness {
    Fresh,
    Due,
    Expired,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenCache {
    /// Makes an empty cache in front of `source`; the first call to
    /// [`token`](TokenCache::token) fetches.
    pub fn new(source: impl TokenSource) -> Self {
        TokenCache {
            inner: Arc::new(Inner {
                source: Arc::new(source),
                current: RwLock::new(None),
                flight: Mutex::new(Flight::default()),
                invalidation: Mutex::new(Invalidation::default()),
                refreshing: AtomicBool::new(false),
                refresh_before_nanos: AtomicU64::new(Duration::from_secs(60).as_nanos() as u64),
                floor_nanos: AtomicU64::new(DEFAULT_INVALIDATION_FLOOR.as_nanos() as u64),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
            }),
        }
    }

    /// Sets how long before expiry a token is refreshed (default 60 s). The lead actually used
    /// for a token is at most half of its lifetime. Applies to every clone of this cache.
    pub fn refresh_before(self, lead: Duration) -> Self {
        let nanos = u64::try_from(lead.as_nanos()).unwrap_or(u64::MAX);
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner
            .refresh_before_nanos
            .store(nanos, Ordering::Relaxed);
        if let Some(cached) = current.as_mut() {
            cached.due = self.inner.due(&cached.token);
        }
        drop(current);
        self
    }

    /// Sets the least time between two refreshes caused by [`invalidate`](Self::invalidate)
    /// (default 1 s; zero turns the floor off). A rejection of the current token inside the
    /// floor is deferred: callers keep getting the current token until the floor ends, then
    /// it is refreshed. Applies to every clone of this cache.
    pub fn invalidation_floor(self, floor: Duration) -> Self {
        let nanos = u64::try_from(floor.as_nanos()).unwrap_or(u64::MAX);
        self.inner.floor_nanos.store(nanos, Ordering::Relaxed);
        self
    }

    /// Returns a valid token: the cached one, or a freshly fetched one.
    ///
    /// # Errors
    ///
    /// The error of the fetch this call waited for; every caller waiting for the same fetch
    /// gets the same error.
    pub async fn token(&self) -> Result<Token, TokenError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let fetch = {
            let mut flight = lock(&self.inner.flight);
            // NOTE: re-checked under the flight lock: a fetch that completed since the fast
            // path stored its token before clearing `running`, so it is seen here. Without
            // side effects: a background refresh would take the flight lock again.
            if let Some(token) = self.peek() {
                return Ok(token);
            }
            match &flight.running {
                Some((_, fetch)) => fetch.clone(),
                None => self.start_fetch(&mut flight),
            }
        };
        fetch.await
    }

    /// Returns the cached token if it is still valid, without waiting. Inside the refresh
    /// window this starts a background refresh (when called on a tokio runtime).
    pub fn cached(&self) -> Option<Token> {
        self.with_cached(Token::clone)
    }

    /// The cached token if it has not expired, with no side effect (no background refresh).
    fn peek(&self) -> Option<Token> {
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Cached {
            token,
            expires_at,
            due,
        } = current.as_ref()?;
        match freshness(*expires_at, *due, Instant::now()) {
            Freshness::Fresh | Freshness::Due => Some(token.clone()),
            Freshness::Expired => None,
        }
    }

    /// [`cached`](Self::cached) without the `Token` clone: `read` gets the token while the
    /// read lock is held (it must not call into this cache).
    pub(crate) fn with_cached<T>(&self, read: impl FnOnce(&Token) -> T) -> Option<T> {
        let now = Instant::now();
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Cached {
            token,
            expires_at,
            due,
        } = current.as_ref()?;
        match freshness(*expires_at, *due, now) {
            Freshness::Fresh => Some(read(token)),
            Freshness::Expired => None,
            Freshness::Due => {
                let value = read(token);
                drop(current);
                self.refresh_in_background(now);
                Some(value)
            }
        }
    }

    /// Drops the cached token if it is still `rejected`; returns whether it did.
    ///
    /// A token that was already replaced (by a refresh after an earlier rejection) is left
    /// alone, so many rejections of one token cause one refresh. When it drops the token it
    /// calls the source's [`TokenSource::invalidate`] (on the current tokio runtime, if any)
    /// and the next fetch waits for that to finish.
    ///
    /// Within the [`invalidation_floor`](Self::invalidation_floor) of the last drop, the
    /// token is kept (and `false` returned) until the floor ends, when it counts as expired.
    pub fn invalidate(&self, rejected: impl Into<TokenId>) -> bool {
        let rejected = rejected.into();
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(cached) = current.as_mut().filter(|c| c.token.id() == rejected) else {
            return false;
        };
        let now = Instant::now();
        let floor = Duration::from_nanos(self.inner.floor_nanos.load(Ordering::Relaxed));
        let mut invalidation = lock(&self.inner.invalidation);
        let floor_ends = invalidation
            .last_drop
            .and_then(|at| at.checked_add(floor))
            .filter(|end| now < *end);
        if let Some(end) = floor_ends {
            if invalidation.deferred.is_none() {
                self.inner.deferred.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(token = ?rejected, "access token rejected again within the invalidation floor; refreshing when it ends");
            }
            invalidation.deferred = Some(cached.token.clone());
            cached.expires_at = Some(cached.expires_at.map_or(end, |at| at.min(end)));
            cached.due = Some(cached.due.map_or(end, |due| due.min(end)));
            return false;
        }
        let token = current.take().map(|c| c.token);
        drop(current);
        invalidation.last_drop = Some(now);
        invalidation.deferred = None;
        if let Some(token) = token {
            invalidation.pending = Some(self.inner.tell_source(&token));
        }
        drop(invalidation);
        self.inner.invalidations.fetch_add(1, Ordering::Relaxed);
        crate::metrics::count(crate::metrics::TOKEN_INVALIDATIONS);
        tracing::debug!(token = ?rejected, "access token invalidated");
        true
    }

    /// When a request rejected with `rejected` may be replayed: `Some(end of the floor)` if
    /// that rejection was deferred by the [`invalidation_floor`](Self::invalidation_floor)
    /// (the token is still served until then), `None` if it may be replayed at once.
    pub fn replay_not_before(&self, rejected: impl Into<TokenId>) -> Option<Instant> {
        let rejected = rejected.into();
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let cached = current.as_ref().filter(|c| c.token.id() == rejected)?;
        cached
            .expires_at
            .filter(|at| cached.token.expires_at() != Some(*at) && Instant::now() < *at)
    }

    /// The cache's counters so far.
    pub fn stats(&self) -> TokenCacheStats {
        TokenCacheStats {
            fetches: self.inner.fetches.load(Ordering::Relaxed),
            failures: self.inner.failures.load(Ordering::Relaxed),
            invalidations: self.inner.invalidations.load(Ordering::Relaxed),
            deferred_invalidations: self.inner.deferred.load(Ordering::Relaxed),
        }
    }

    fn refresh_in_background(&self, now: Instant) {
        if self.inner.refreshing.load(Ordering::Acquire) {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        {
            let mut flight = lock(&self.inner.flight);
            if flight.running.is_some() || flight.background_not_before.is_some_and(|t| now < t) {
                return;
            }
            // NOTE: started as its own task by `start_fetch`; nobody needs to wait for it.
            drop(self.start_fetch(&mut flight));
        }
        tracing::debug!("refreshing access token before it expires");
    }

    fn start_fetch(&self, flight: &mut Flight) -> SharedFetch {
        flight.generation += 1;
        let generation = flight.generation;
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        crate::metrics::count(crate::metrics::TOKEN_FETCHES);
        self.inner.refreshing.store(true, Ordering::Release);
        tracing::debug!("fetching access token");
        let pending = self.inner.pending_invalidation();
        let source = Arc::clone(&self.inner.source);
        let cache: Weak<Inner> = Arc::downgrade(&self.inner);
        let fetch: FetchFuture = Box::pin(async move {
            if let Some(pending) = pending {
                pending.await;
            }
            let result = fetch_catching_panics(source.as_ref()).await;
            if let Some(inner) = cache.upgrade() {
                inner.complete(generation, &result);
            }
            result
        });
        let fetch = fetch.shared();
        flight.running = Some((generation, fetch.clone()));
        // NOTE: run as a task, so a fetch every waiter dropped still finishes now, not when
        // a later caller polls it again with its timeouts long expired.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = fetch.clone();
            runtime.spawn(async move {
                let _ = task.await;
            });
        }
        fetch
    }
}

/// Calls `source.fetch()` and awaits it, turning a panic in either into an error.
async fn fetch_catching_panics(source: &dyn TokenSource) -> Result<Token, TokenError> {
    let panicked = || TokenError::source_error("token source panicked");
    let Ok(fetch) = std::panic::catch_unwind(AssertUnwindSafe(|| source.fetch())) else {
        return Err(panicked());
    };
    AssertUnwindSafe(fetch)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(panicked()))
}

/// Whether a token that expires at `expires_at` and is due for a refresh at `due` is still
/// fresh at `now`.
fn freshness(expires_at: Option<Instant>, due: Option<Instant>, now: Instant) -> Freshness {
    match (expires_at, due) {
        (Some(expires_at), _) if now >= expires_at => Freshness::Expired,
        (_, Some(due)) if now >= due => Freshness::Due,
        // NOTE: a lead too long to subtract makes any unexpired token due.
        (Some(_), None) => Freshness::Due,
        _ => Freshness::Fresh,
    }
}

impl Inner {
    /// Starts the source's invalidation of `token` (as a task, on a tokio runtime) and returns
    /// a handle the next fetch waits for. A panic in it counts as done.
    fn tell_source(&self, token: &Token) -> SharedInvalidation {
        let told = std::panic::catch_unwind(AssertUnwindSafe(|| self.source.invalidate(token)));
        let future: InvalidateFuture = match told {
            Ok(future) => Box::pin(AssertUnwindSafe(future).catch_unwind().map(drop)),
            Err(_) => Box::pin(std::future::ready(())),
        };
        let shared = future.shared();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(shared.clone());
        }
        shared
    }

    /// The invalidation the next fetch must wait for: the last one, or a deferred rejection
    /// of the still-current token (whose floor has ended, as a fetch is starting).
    fn pending_invalidation(&self) -> Option<SharedInvalidation> {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|c| c.token.id());
        let mut invalidation = lock(&self.invalidation);
        if let Some(deferred) = invalidation.deferred.take() {
            if current == Some(deferred.id()) {
                invalidation.last_drop = Some(Instant::now());
                invalidation.pending = Some(self.tell_source(&deferred));
            }
        }
        if invalidation
            .pending
            .as_ref()
            .is_some_and(|p| p.peek().is_some())
        {
            invalidation.pending = None;
        }
        invalidation.pending.clone()
    }

    /// When `token` is due for a refresh: the configured lead before its expiry, but never
    /// more than half its lifetime. `None` for a token that never expires, or (with
    /// `expires_at`) when that instant cannot be represented: the token is due at once.
    fn due(&self, token: &Token) -> Option<Instant> {
        let expires_at = token.expires_at()?;
        let configured = Duration::from_nanos(self.refresh_before_nanos.load(Ordering::Relaxed));
        let half_life = expires_at.saturating_duration_since(token.issued_at()) / 2;
        expires_at.checked_sub(configured.min(half_life))
    }

    fn complete(&self, generation: u64, result: &Result<Token, TokenError>) {
        match result {
            Ok(token) => {
                tracing::debug!(token = ?token.id(), expires_at = ?token.expires_at(), "access token fetched");
                let cached = Cached {
                    token: token.clone(),
                    expires_at: token.expires_at(),
                    due: self.due(token),
                };
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                crate::metrics::count(crate::metrics::TOKEN_FETCH_FAILURES);
                tracing::warn!(%error, "access token fetch failed");
            }
        }
        let mut flight = lock(&self.flight);
        if flight
            .running
            .as_ref()
            .is_some_and(|(g, _)| *g == generation)
        {
            flight.running = None;
            self.refreshing.store(false, Ordering::Release);
        }
        flight.background_not_before = result
            .is_err()
            .then(|| Instant::now() + BACKGROUND_RETRY_PAUSE);
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field(
                "refresh_before",
                &Duration::from_nanos(self.inner.refresh_before_nanos.load(Ordering::Relaxed)),
            )
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
