//! One Redis connection per process, every call bounded by a timeout, and one warning per
//! outage.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, RedisResult};

use crate::config::{ConfigError, RedisConfig};

/// Why a Redis call did not give an answer. Holds no URL, key value or password.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// Redis could not be reached, or answered with an error.
    #[error("redis unavailable during {operation}: {reason}")]
    Unavailable {
        /// What was being done (`token read`, `gate close`, …).
        operation: &'static str,
        /// The client's description of the failure.
        reason: String,
    },
    /// A Redis call took longer than the configured timeout.
    #[error("redis call timed out during {operation} after {timeout:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Another process held the fetch lock for longer than this process would wait, and no
    /// token appeared.
    #[error("waited {0:?} for another process to fetch the shared token")]
    WaitTimedOut(Duration),
}

/// A handle on one Redis server, shared by a process's [`RedisTokenSource`]s and
/// [`RedisRateState`]s.
///
/// It connects lazily and reconnects on its own after errors; each call is bounded by the
/// configured timeout. The first failed call of an outage logs one `WARN` (the process
/// carries on in-process, or fails if configured fail-closed), the first success after it one
/// `INFO`; calls in between log nothing. A rate state's subscription has a connection of its
/// own, with its own pair of messages.
///
/// [`RedisTokenSource`]: crate::RedisTokenSource
/// [`RedisRateState`]: crate::RedisRateState
///
/// # Clone
///
/// Clones share the connection and the outage state behind one `Arc`.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    info: ConnectionInfo,
    config: RedisConfig,
    health: Health,
    calls: AtomicU64,
}

/// Whether one connection is in an outage; logs its start (`WARN`) and end (`INFO`) once.
#[derive(Debug)]
pub(crate) struct Health {
    down: AtomicBool,
    /// What stops working while this connection is down.
    what: &'static str,
}

impl Health {
    pub(crate) fn new(what: &'static str) -> Self {
        Health {
            down: AtomicBool::new(false),
            what,
        }
    }

    pub(crate) fn up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("redis reachable again: {} resumed", self.what);
        }
    }

    pub(crate) fn down(&self, error: &RedisStoreError) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "redis unreachable: {} paused until it is back", self.what);
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

impl RedisConnection {
    pub(crate) fn new(config: RedisConfig, info: ConnectionInfo) -> Result<Self, ConfigError> {
        let client = redis::Client::open(info.clone()).map_err(|_| ConfigError::InvalidUrl)?;
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config(&config))
            .map_err(|_| ConfigError::InvalidUrl)?;
        let fail_closed = config.fail_closed;
        Ok(RedisConnection {
            inner: Arc::new(Inner {
                manager,
                info,
                config,
                health: Health::new(if fail_closed {
                    "fleet-wide state (failing closed)"
                } else {
                    "fleet-wide state (carrying on in-process)"
                }),
                calls: AtomicU64::new(0),
            }),
        })
    }

    /// Whether the last Redis call failed (Redis is treated as down until one succeeds).
    pub fn is_down(&self) -> bool {
        self.inner.health.is_down()
    }

    /// How many Redis calls this handle has made (each one round trip).
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn fail_closed(&self) -> bool {
        self.inner.config.fail_closed
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    pub(crate) fn health_interval(&self) -> Duration {
        self.inner.config.health_interval
    }

    /// A connection manager of its own speaking RESP3, whose pub/sub messages (and a
    /// `Disconnection` notice) go to `sender`.
    pub(crate) fn push_manager(
        &self,
        sender: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> RedisResult<ConnectionManager> {
        let settings = self
            .inner
            .info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(self.inner.info.clone().set_redis_settings(settings))?;
        let config = manager_config(&self.inner.config).set_push_sender(sender);
        ConnectionManager::new_lazy_with_config(client, config)
    }

    /// Runs `op` on the shared connection, bounded by the timeout, and keeps the outage
    /// state (and its one warning) up to date.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        op: F,
    ) -> Result<T, RedisStoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = self
            .bounded(operation, op(self.inner.manager.clone()))
            .await;
        match &result {
            Ok(_) => self.inner.health.up(),
            Err(error) => self.inner.health.down(error),
        }
        result
    }

    /// `fut` bounded by the timeout, without touching the outage state.
    pub(crate) async fn bounded<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, RedisStoreError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let timeout = self.inner.config.timeout;
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(RedisStoreError::Unavailable {
                operation,
                reason: error.to_string(),
            }),
            Err(_) => Err(RedisStoreError::Timeout { operation, timeout }),
        }
    }
}

fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100))
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("config", &self.inner.config)
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}
