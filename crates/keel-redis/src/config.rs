//! Where the Redis server is and how to reach it: URL, ACL credentials, timeouts, failure mode.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;
use secrecy::{ExposeSecret, SecretString};

use crate::conn::RedisConnection;

/// The environment variable holding the Redis URL (`redis://host:port/db` or `rediss://…`).
pub const URL_ENV: &str = "KEEL_REDIS_URL";
/// The environment variable holding the ACL user name (overrides one in the URL).
pub const USERNAME_ENV: &str = "KEEL_REDIS_USERNAME";
/// The environment variable holding the ACL password (overrides one in the URL).
pub const PASSWORD_ENV: &str = "KEEL_REDIS_PASSWORD";

/// How to reach Redis, and what to do when it cannot be reached.
///
/// The URL and password are secrets (a URL may carry `user:password@`): `Debug` shows neither,
/// and no error repeats them. Take them from the environment ([`from_env`](Self::from_env)) or
/// a secret store, never from a command line, where any user of the machine can read them.
#[derive(Clone)]
pub struct RedisConfig {
    url: SecretString,
    username: Option<String>,
    password: Option<SecretString>,
    pub(crate) timeout: Duration,
    pub(crate) fail_closed: bool,
    pub(crate) prefix: String,
    pub(crate) health_interval: Duration,
}

/// A [`RedisConfig`] that cannot be used. Never holds the URL or the password.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL is not a Redis URL the client understands.
    #[error("invalid redis url (expected redis://host:port/db or rediss://…)")]
    InvalidUrl,
    /// A `rediss://` URL, but the crate was built without its `tls` feature.
    #[error("a rediss:// url needs keel-redis's `tls` feature")]
    TlsNotEnabled,
    /// An environment variable is set but is not valid UTF-8.
    #[error("environment variable {0} is not valid utf-8")]
    NotUnicode(&'static str),
}

impl RedisConfig {
    /// A configuration for the server at `url`, with a 250 ms timeout per Redis call,
    /// fail-open, and the key prefix `keel`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`], [`ConfigError::TlsNotEnabled`].
    pub fn new(url: SecretString) -> Result<Self, ConfigError> {
        let config = RedisConfig {
            url,
            username: None,
            password: None,
            timeout: Duration::from_millis(250),
            fail_closed: false,
            prefix: "keel".to_owned(),
            health_interval: Duration::from_secs(1),
        };
        config.connection_info()?;
        Ok(config)
    }

    /// The configuration named by the environment: [`URL_ENV`] (`None` when unset or empty),
    /// with [`USERNAME_ENV`] and [`PASSWORD_ENV`] when set.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`ConfigError::NotUnicode`].
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(url) = env(URL_ENV)? else {
            return Ok(None);
        };
        let mut config = RedisConfig::new(SecretString::from(url))?;
        if let Some(username) = env(USERNAME_ENV)? {
            config = config.username(username);
        }
        if let Some(password) = env(PASSWORD_ENV)? {
            config = config.password(SecretString::from(password));
        }
        Ok(Some(config))
    }

    /// The ACL user name (overrides one in the URL).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The ACL password (overrides one in the URL).
    pub fn password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// The longest any one Redis call (connecting included) may take before it counts as
    /// Redis being unreachable (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether an unreachable Redis is an error (`true`) rather than a reason to carry on
    /// in-process with one warning (`false`, the default).
    pub fn fail_closed(mut self, fail_closed: bool) -> Self {
        self.fail_closed = fail_closed;
        self
    }

    /// The prefix of every key and channel name (default `keel`), to share one Redis between
    /// unrelated fleets.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often a [`RedisRateState`](crate::RedisRateState)'s background task checks its
    /// subscription's connection (default 1 s): how soon after an outage the fleet's gate is
    /// heard again. One `PING` per interval per process.
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health_interval = every.max(Duration::from_millis(10));
        self
    }

    /// A connection handle. Nothing is sent yet: the first call connects, so a Redis that is
    /// down at start is handled like one that goes down later.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn connect(&self) -> Result<RedisConnection, ConfigError> {
        RedisConnection::new(self.clone(), self.connection_info()?)
    }

    pub(crate) fn connection_info(&self) -> Result<redis::ConnectionInfo, ConfigError> {
        let url = self.url.expose_secret();
        if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            return Err(ConfigError::TlsNotEnabled);
        }
        let info = url
            .into_connection_info()
            .map_err(|_| ConfigError::InvalidUrl)?;
        if !info.addr().is_supported() {
            return Err(ConfigError::InvalidUrl);
        }
        let mut settings = info.redis_settings().clone();
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose_secret());
        }
        Ok(info.set_redis_settings(settings))
    }
}

fn env(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode(name)),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &format_args!("[redacted]"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("fail_closed", &self.fail_closed)
            .field("prefix", &self.prefix)
            .field("health_interval", &self.health_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_hold_no_secret() {
        let config = RedisConfig::new(SecretString::from(
            "redis://fleet:URL-SECRET@127.0.0.1:6379/0".to_owned(),
        ))
        .unwrap()
        .password(SecretString::from("PASSWORD-SECRET".to_owned()));
        let shown = format!("{config:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");

        let err =
            RedisConfig::new(SecretString::from("http://u:URL-SECRET@x/".to_owned())).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn password_overrides_the_url() {
        let config = RedisConfig::new(SecretString::from("redis://a:b@127.0.0.1/".to_owned()))
            .unwrap()
            .username("fleet")
            .password(SecretString::from("c".to_owned()));
        let info = config.connection_info().unwrap();
        assert_eq!(info.redis_settings().username(), Some("fleet"));
        assert_eq!(info.redis_settings().password(), Some("c"));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rediss_is_accepted_with_the_tls_feature() {
        let config =
            RedisConfig::new(SecretString::from("rediss://redis.example.com/".to_owned())).unwrap();
        let info = config.connection_info().unwrap();
        assert!(matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }));
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn rediss_needs_the_tls_feature() {
        let err = RedisConfig::new(SecretString::from("rediss://127.0.0.1/".to_owned()));
        assert!(matches!(err, Err(ConfigError::TlsNotEnabled)));
    }
}
