use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_layers::auth::{FetchFuture, InvalidateFuture, Token, TokenError, TokenSource};
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::scripts::{INVALIDATE, READ_OR_LOCK, RELEASE, STORE_AND_RELEASE};
use super::value::{decode, encode, fingerprint};
use crate::conn::{RedisConnection, RedisStoreError};

/// A [`TokenSource`] that shares one token between every process using the same Redis and
/// name (see the [module docs](super)).
///
/// Put it under a [`TokenCache`](keel_layers::auth::TokenCache): the cache keeps the
/// in-process fast path and single flight, this source is asked only when the cache needs a
/// token. The token a process gets expires (for its cache) when the shared key does, so no
/// process keeps a token the fleet has dropped.
///
/// # Clone
///
/// Clones share the inner source, the connection and the counters behind one `Arc`.
pub struct RedisTokenSource<S> {
    shared: Arc<Shared<S>>,
    settings: Settings,
}

impl<S> Clone for RedisTokenSource<S> {
    fn clone(&self) -> Self {
        RedisTokenSource {
            shared: Arc::clone(&self.shared),
            settings: self.settings,
        }
    }
}

struct Shared<S> {
    inner: S,
    conn: RedisConnection,
    token_key: String,
    lock_key: String,
    inner_fetches: AtomicU64,
    shared_reads: AtomicU64,
    fallbacks: AtomicU64,
    invalidations: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    lock_ttl: Duration,
    max_wait: Duration,
    expiry_margin: Duration,
    refresh_before: Duration,
    no_expiry_ttl: Duration,
}

/// A snapshot of a [`RedisTokenSource`]'s counters (this process only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTokenStats {
    /// Fetches from the inner source made while holding the fleet's lock.
    pub inner_fetches: u64,
    /// Tokens read from Redis (fetched by this or another process).
    pub shared_reads: u64,
    /// Fetches from the inner source made in-process because Redis was unreachable.
    pub fallbacks: u64,
    /// Shared tokens this process deleted because they were rejected.
    pub invalidations: u64,
}

/// First and longest pause between two polls of a waiter.
const POLL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(200));

enum Read {
    Fresh(Token),
    Won,
    Held(Option<Token>),
}

impl<S: TokenSource> RedisTokenSource<S> {
    /// Shares the tokens of `inner` through `conn` under `name` (for example the OAuth
    /// client id and token URL: processes with the same name share a token). The key is
    /// `<prefix>:token:{<hash of name>}`.
    pub fn new(inner: S, conn: RedisConnection, name: &str) -> Self {
        let hash = Sha256::digest(name.as_bytes());
        let hash: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        let token_key = format!("{}:token:{{{hash}}}", conn.prefix());
        RedisTokenSource {
            shared: Arc::new(Shared {
                inner,
                lock_key: format!("{token_key}:lock"),
                token_key,
                conn,
                inner_fetches: AtomicU64::new(0),
                shared_reads: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
            }),
            settings: Settings {
                lock_ttl: Duration::from_secs(30),
                max_wait: Duration::from_secs(60),
                expiry_margin: Duration::from_secs(30),
                refresh_before: Duration::from_secs(60),
                no_expiry_ttl: Duration::from_secs(3600),
            },
        }
    }

    /// How long the fetch lock lives (default 30 s): the longest a holder that dies can keep
    /// the fleet waiting. Make it longer than the inner source's slowest fetch. Waiters give
    /// up after twice this.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.settings.lock_ttl = ttl.max(Duration::from_millis(1));
        self.settings.max_wait = ttl * 2;
        self
    }

    /// How long before the token expires its shared copy does (default 30 s, at most a
    /// quarter of the token's lifetime).
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.settings.expiry_margin = margin;
        self
    }

    /// How long before the shared copy expires a process fetches a new token for the fleet
    /// (default 60 s, at most half the shared copy's lifetime). Match the cache's
    /// `refresh_before`.
    pub fn refresh_before(mut self, lead: Duration) -> Self {
        self.settings.refresh_before = lead;
        self
    }

    /// The inner source.
    pub fn get_ref(&self) -> &S {
        &self.shared.inner
    }
}

impl<S: TokenSource> TokenSource for RedisTokenSource<S> {
    fn fetch(&self) -> FetchFuture {
        let this = self.clone();
        Box::pin(async move { this.fetch_shared().await })
    }

    /// Deletes the shared token if it is still `rejected`, for the whole fleet; a token that
    /// was already replaced is left alone. `TokenCache` calls it when it drops `rejected` (a
    /// 401) and waits for it before its next fetch. Redis unreachable: nothing to do (one
    /// warning).
    fn invalidate(&self, rejected: &Token) -> InvalidateFuture {
        let shared = Arc::clone(&self.shared);
        let fp = fingerprint(rejected.header_value());
        Box::pin(async move {
            let key = shared.token_key.clone();
            let result = shared
                .conn
                .call("token invalidate", |mut c| async move {
                    INVALIDATE
                        .key(key)
                        .arg(fp)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
            if let Ok(1) = result {
                shared.invalidations.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("shared access token invalidated");
            }
        })
    }
}

impl<S: TokenSource> RedisTokenSource<S> {
    async fn fetch_shared(&self) -> Result<Token, TokenError> {
        let owner = format!("{:032x}", rand::rng().random::<u128>());
        let started = Instant::now();
        let mut pause = POLL.0;
        loop {
            match self.read_or_lock(&owner).await {
                Err(error) => return self.fetch_in_process(error).await,
                Ok(Read::Fresh(token)) => {
                    self.shared.shared_reads.fetch_add(1, Ordering::Relaxed);
                    return Ok(token);
                }
                Ok(Read::Won) => return self.fetch_and_store(&owner).await,
                Ok(Read::Held(due)) => {
                    // NOTE: a token due for refresh is still valid: better than no token when
                    // the holder is slow.
                    if started.elapsed() >= self.settings.max_wait {
                        return match due {
                            Some(token) => Ok(token),
                            None => Err(TokenError::source_error(RedisStoreError::WaitTimedOut(
                                self.settings.max_wait,
                            ))),
                        };
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(POLL.1);
                }
            }
        }
    }

    async fn read_or_lock(&self, owner: &str) -> Result<Read, RedisStoreError> {
        let keys = (self.shared.token_key.clone(), self.shared.lock_key.clone());
        let args = (owner.to_owned(), self.settings.lock_ttl.as_millis() as u64);
        let (state, value, pttl): (i64, Vec<u8>, i64) = self
            .shared
            .conn
            .call("token read", |mut c| async move {
                READ_OR_LOCK
                    .key(keys.0)
                    .key(keys.1)
                    .arg(args.0)
                    .arg(args.1)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let token = (!value.is_empty()).then(|| decode(&value, pttl)).flatten();
        Ok(match (state, token) {
            (1, Some(token)) => Read::Fresh(token),
            // NOTE: the script vouched for the value's shape; only bytes that are no header
            // value end here, and they expire with the key.
            (1, None) => Read::Held(None),
            (2, _) => Read::Won,
            (_, due) => Read::Held(due),
        })
    }

    async fn fetch_and_store(&self, owner: &str) -> Result<Token, TokenError> {
        self.shared.inner_fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = self.shared.inner.fetch().await;
        let token = match fetched {
            Ok(token) => token,
            Err(error) => {
                let (lock, owner) = (self.shared.lock_key.clone(), owner.to_owned());
                let _ = self
                    .shared
                    .conn
                    .call("token lock release", |mut c| async move {
                        RELEASE
                            .key(lock)
                            .arg(owner)
                            .invoke_async::<i64>(&mut c)
                            .await
                    })
                    .await;
                return Err(error);
            }
        };
        let now = Instant::now();
        let ttl = match token.expires_at() {
            Some(at) => {
                let lifetime = at.saturating_duration_since(now);
                lifetime.saturating_sub(self.settings.expiry_margin.min(lifetime / 4))
            }
            None => self.settings.no_expiry_ttl,
        };
        let ttl_ms = ttl.as_millis() as u64;
        let refresh = self.settings.refresh_before.min(ttl / 2);
        let value = encode(&token, refresh);
        let keys = (self.shared.token_key.clone(), self.shared.lock_key.clone());
        let owner = owner.to_owned();
        // NOTE: a TTL under 1 ms cannot be stored; the lock is released all the same.
        let store = self
            .shared
            .conn
            .call("token store", |mut c| async move {
                STORE_AND_RELEASE
                    .key(keys.0)
                    .key(keys.1)
                    .arg(owner)
                    .arg(value)
                    .arg(ttl_ms.max(1))
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        if let Ok(0) = store {
            tracing::debug!("fetch lock expired before the token was stored: not shared");
        }
        Ok(Token::new(
            token.header_value().clone(),
            now.checked_add(ttl),
        ))
    }

    async fn fetch_in_process(&self, error: RedisStoreError) -> Result<Token, TokenError> {
        if self.shared.conn.fail_closed() {
            return Err(TokenError::source_error(error));
        }
        self.shared.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.shared.inner.fetch().await
    }
}

impl<S: fmt::Debug> fmt::Debug for RedisTokenSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenSource")
            .field("inner", &self.shared.inner)
            .field("conn", &self.shared.conn)
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S> RedisTokenSource<S> {
    /// This process's counters.
    pub fn stats(&self) -> RedisTokenStats {
        let s = &self.shared;
        RedisTokenStats {
            inner_fetches: s.inner_fetches.load(Ordering::Relaxed),
            shared_reads: s.shared_reads.load(Ordering::Relaxed),
            fallbacks: s.fallbacks.load(Ordering::Relaxed),
            invalidations: s.invalidations.load(Ordering::Relaxed),
        }
    }
}
