use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use futures_util::future::{FutureExt, Shared};
use tokio::time::Instant;

use super::{FetchFuture, Token, TokenError, TokenId, TokenSource};

/// How long after a failed background refresh the cache waits before starting another one
/// while the current token is still valid.
const BACKGROUND_RETRY_PAUSE: Duration = Duration::from_secs(1);

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
///   still the current one, so a burst of 401s for one token causes one refresh.
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
}

type SharedFetch = Shared<FetchFuture>;

struct Inner {
    source: Box<dyn TokenSource>,
    current: RwLock<Option<Cached>>,
    flight: Mutex<Flight>,
    refreshing: AtomicBool,
    refresh_before_nanos: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
    invalidations: AtomicU64,
}

/// The current token and when it is due for a refresh, worked out when it is stored (or the
/// lead changes), so the fast path compares two instants instead of redoing that arithmetic.
struct Cached {
    token: Token,
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
                source: Box::new(source),
                current: RwLock::new(None),
                flight: Mutex::new(Flight::default()),
                refreshing: AtomicBool::new(false),
                refresh_before_nanos: AtomicU64::new(Duration::from_secs(60).as_nanos() as u64),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
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
            // path stored its token before clearing `running`, so it is seen here.
            if let Some(token) = self.cached() {
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

    /// [`cached`](Self::cached) without the `Token` clone: `read` gets the token while the
    /// read lock is held (it must not call into this cache).
    pub(crate) fn with_cached<T>(&self, read: impl FnOnce(&Token) -> T) -> Option<T> {
        let now = Instant::now();
        let current = self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Cached { token, due } = current.as_ref()?;
        match freshness(token.expires_at(), *due, now) {
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
    /// alone, so many rejections of one token cause one refresh.
    pub fn invalidate(&self, rejected: impl Into<TokenId>) -> bool {
        let rejected = rejected.into();
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.token.id() == rejected) {
            *current = None;
            self.inner.invalidations.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(token = ?rejected, "access token invalidated");
            true
        } else {
            false
        }
    }

    /// The cache's counters so far.
    pub fn stats(&self) -> TokenCacheStats {
        TokenCacheStats {
            fetches: self.inner.fetches.load(Ordering::Relaxed),
            failures: self.inner.failures.load(Ordering::Relaxed),
            invalidations: self.inner.invalidations.load(Ordering::Relaxed),
        }
    }

    fn refresh_in_background(&self, now: Instant) {
        if self.inner.refreshing.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let fetch = {
            let mut flight = lock(&self.inner.flight);
            if flight.running.is_some() || flight.background_not_before.is_some_and(|t| now < t) {
                return;
            }
            self.start_fetch(&mut flight)
        };
        tracing::debug!("refreshing access token before it expires");
        runtime.spawn(async move {
            let _ = fetch.await;
        });
    }

    fn start_fetch(&self, flight: &mut Flight) -> SharedFetch {
        flight.generation += 1;
        let generation = flight.generation;
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        self.inner.refreshing.store(true, Ordering::Release);
        tracing::debug!("fetching access token");
        let source_fetch = self.inner.source.fetch();
        let cache: Weak<Inner> = Arc::downgrade(&self.inner);
        let fetch: FetchFuture = Box::pin(async move {
            let result = source_fetch.await;
            if let Some(inner) = cache.upgrade() {
                inner.complete(generation, &result);
            }
            result
        });
        let fetch = fetch.shared();
        flight.running = Some((generation, fetch.clone()));
        fetch
    }
}

/// Whether a token that expires at `expires_at` and is due for a refresh at `due` is still
/// fresh at `now`.
fn freshness(expires_at: Option<Instant>, due: Option<Instant>, now: Instant) -> Freshness {
    match (expires_at, due) {
        (Some(expires_at), _) if now >= expires_at => Freshness::Expired,
        (Some(_), Some(due)) if now >= due => Freshness::Due,
        // NOTE: a lead too long to subtract makes any unexpired token due.
        (Some(_), None) => Freshness::Due,
        _ => Freshness::Fresh,
    }
}

impl Inner {
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
                    due: self.due(token),
                };
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(cached);
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
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
