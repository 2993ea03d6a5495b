//! `--redis`: one token and one rate budget for every export process of an OAuth client.
//!
//! Export workers for different intervals often share one OAuth client. Each would fetch its
//! own token and discover the API's rate limit alone; through Redis they share the token
//! (one grant per token lifetime, plus one per revocation, for the whole fleet) and the 429
//! gate (a 429 in one process holds them all until the server's reset time). Redis down at
//! start or mid-run: each process carries on alone with one warning (or stops, with
//! `--redis-fail-closed`); no record is lost or repeated because of Redis.
//!
//! The shared keys are named from the environment's login or API URL and the client id,
//! hashed; never from the secret. The Redis instance holds a live token: it must be
//! access-controlled.

use keel_genesys::{ClientBuilder, Environment};
use keel_layers::auth::TokenSource;
use keel_redis::config::{PASSWORD_ENV, URL_ENV};
use keel_redis::rate::FleetPacing;
use keel_redis::{RedisConfig, RedisRateState, RedisTokenSource};
use secrecy::SecretString;

use crate::cli::Args;
use crate::error::ExportError;

/// The Redis configuration `args` and the environment ask for, if any.
pub(crate) fn config(args: &Args) -> Result<Option<RedisConfig>, ExportError> {
    let usage = |e: keel_redis::ConfigError| ExportError::Usage(format!("--redis: {e}"));
    let config = match args.redis.as_deref() {
        Some(url) => {
            if has_password(url) {
                return Err(ExportError::Usage(format!(
                    "--redis: no password on the command line (any user of the machine can \
                     read it): put it in {PASSWORD_ENV}"
                )));
            }
            let mut config = RedisConfig::new(SecretString::from(url.to_owned())).map_err(usage)?;
            // NOTE: the URL from argv, the ACL credentials still from the environment.
            if let Some(user) = var(keel_redis::config::USERNAME_ENV) {
                config = config.username(user);
            }
            if let Some(password) = var(PASSWORD_ENV) {
                config = config.password(SecretString::from(password));
            }
            Some(config)
        }
        None => {
            RedisConfig::from_env().map_err(|e| ExportError::Usage(format!("{URL_ENV}: {e}")))?
        }
    };
    Ok(config.map(|c| c.fail_closed(args.redis_fail_closed)))
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether a URL's authority carries `user:password@`.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The names the fleet's processes share: the token per (token URL, client id), the rate
/// state per (API URL, client id), as Genesys Cloud limits each OAuth client. The axum
/// gateway example names them the same way, so exports and gateways of a client share.
fn names(env: &Environment, client_id: &str) -> (String, String) {
    let login = env.login_url().to_string();
    let token_url = format!("{}/oauth/token", login.trim_end_matches('/'));
    (
        format!("genesys-token {token_url} {client_id}"),
        format!("genesys-rate {} {client_id}", env.api_url()),
    )
}

/// `builder` with its token source and rate state shared through `config`'s Redis, pacing
/// the fleet at `fleet_rate` requests per second if given.
pub(crate) fn share(
    builder: ClientBuilder,
    config: &RedisConfig,
    env: &Environment,
    client_id: &str,
    fleet_rate: Option<u32>,
) -> Result<ClientBuilder, ExportError> {
    let (token_name, rate_name) = names(env, client_id);
    let conn = config
        .connect()
        .map_err(|e| ExportError::Usage(format!("--redis: {e}")))?;
    let rate = match fleet_rate {
        // NOTE: about ten round trips to Redis per second per process at the fleet's rate.
        Some(n) => {
            let pacing = FleetPacing::per_second(f64::from(n)).batch((n / 10).clamp(1, 50));
            RedisRateState::with_pacing(conn.clone(), &rate_name, pacing)
        }
        None => RedisRateState::new(conn.clone(), &rate_name),
    };
    Ok(builder
        .token_source(move |grant: Box<dyn TokenSource>| {
            RedisTokenSource::new(grant, conn, &token_name)
        })
        .rate_state(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_found() {
        assert!(has_password("redis://user:pw@host:6379/0"));
        assert!(has_password("rediss://:pw@host"));
        assert!(!has_password("redis://user@host:6379"));
        assert!(!has_password("redis://host:6379/0"));
        assert!(!has_password("redis://host:6379/0?x=a:b@c"));
    }

    #[test]
    fn a_password_on_the_command_line_is_a_usage_error_that_does_not_repeat_it() {
        use clap::Parser;
        let args = Args::try_parse_from([
            "genesys-export",
            "--redis",
            "redis://fleet:hunter2-secret@127.0.0.1:6379/0",
        ])
        .unwrap();
        let err = config(&args).unwrap_err();
        assert!(matches!(err, ExportError::Usage(_)), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(PASSWORD_ENV), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let args = Args::try_parse_from([
            "genesys-export",
            "--redis",
            "redis://127.0.0.1:6379/0",
            "--redis-fail-closed",
        ])
        .unwrap();
        assert!(config(&args).unwrap().is_some());
    }

    #[test]
    fn keys_are_named_from_urls_and_client_id_not_the_secret() {
        let env = Environment::custom("http://127.0.0.1:1", "http://127.0.0.1:2").unwrap();
        let (token, rate) = names(&env, "client-a");
        assert!(
            token.contains("client-a") && token.contains("127.0.0.1:2"),
            "{token}"
        );
        assert!(
            rate.contains("client-a") && rate.contains("127.0.0.1:1"),
            "{rate}"
        );
        let (other, _) = names(&env, "client-b");
        assert_ne!(token, other);
    }
}
