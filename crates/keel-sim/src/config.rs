//! Every knob of the simulator, in one plain struct with a builder.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// How a 429 says when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryAfterFormat {
    /// `Retry-After: 3` (delta-seconds).
    #[default]
    Seconds,
    /// `Retry-After: Wed, 25 Nov 2026 20:00:03 GMT` (an HTTP-date, rounded up to the second).
    HttpDate,
}

/// A fault the simulator injects on one API request, chosen by its 1-based API request number
/// (see [`SimConfig::faults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` of this many seconds (in the configured format), recorded as a
    /// Retry-After deadline like a rate-limit 429.
    TooManyRequests {
        /// The advertised wait, in seconds.
        retry_after_secs: u64,
    },
    /// 503 with a Genesys error body.
    Unavailable,
    /// Any status with a Genesys error body (e.g. 500, 502, 504).
    Status(u16),
    /// Close the connection without writing a response.
    Drop,
    /// Serve the normal response headers and `Content-Length`, then half the body, then close
    /// the connection.
    TruncatedBody,
    /// Serve 200 with a body that is not valid JSON (the normal body cut in half, with a
    /// consistent `Content-Length`).
    MalformedJson,
    /// Wait this long before handling the request normally (a slow page).
    Delay(Duration),
    /// Revoke the token the request carries, then answer 401 as for a revoked token.
    RevokeToken,
    /// Handle the request normally (an async job is created), then close the connection
    /// without writing the response: a reset after the request reached the server.
    DropAfter,
    /// Handle the request normally (an async job is created), then answer this status with a
    /// Genesys error body instead (e.g. a gateway's 502 or 504 after the upstream acted).
    StatusAfter(u16),
    /// Handle the request normally (an async job is created), then wait this long before
    /// answering (a client timeout after the server acted).
    DelayAfter(Duration),
}

/// Error from parsing a [`Fault`] or a `N=FAULT` scripted fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid fault {0:?}: expected 429[:SECS], 503, status:CODE, drop, truncate, malformed, delay:MILLIS, revoke, drop-after, status-after:CODE or delay-after:MILLIS")]
pub struct ParseFaultError(String);

impl FromStr for Fault {
    type Err = ParseFaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseFaultError(s.to_owned());
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let num = |a: Option<&str>| a.ok_or_else(err)?.parse::<u64>().map_err(|_| err());
        Ok(match kind {
            "429" => Fault::TooManyRequests {
                retry_after_secs: arg.map(|a| num(Some(a))).transpose()?.unwrap_or(1),
            },
            "503" => Fault::Unavailable,
            "status" => Fault::Status(u16::try_from(num(arg)?).map_err(|_| err())?),
            "drop" => Fault::Drop,
            "truncate" => Fault::TruncatedBody,
            "malformed" => Fault::MalformedJson,
            "delay" => Fault::Delay(Duration::from_millis(num(arg)?)),
            "revoke" => Fault::RevokeToken,
            "drop-after" => Fault::DropAfter,
            "status-after" => Fault::StatusAfter(u16::try_from(num(arg)?).map_err(|_| err())?),
            "delay-after" => Fault::DelayAfter(Duration::from_millis(num(arg)?)),
            _ => return Err(err()),
        })
    }
}

/// Parses `N=FAULT` (e.g. `5=429:1`, `12=drop`) into a request number and a fault.
pub fn parse_scripted_fault(s: &str) -> Result<(u64, Fault), ParseFaultError> {
    let (n, f) = s
        .split_once('=')
        .ok_or_else(|| ParseFaultError(s.to_owned()))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| ParseFaultError(s.to_owned()))?;
    Ok((n, f.trim().parse()?))
}

/// The client secret the simulator accepts; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself (for tests that need to present it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// The simulator's configuration. Every field has a default ([`SimConfig::default`]); the
/// builder ([`crate::Simulator::builder`]) sets them one by one.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// Conversations visible from the start (default 1,000).
    pub conversations: u64,
    /// Extra conversations that appear mid-run (default 0): see [`SimConfig::late_after_pages`].
    pub late_conversations: u64,
    /// After this many details-query pages have been served, the late conversations become
    /// visible (default 0). They have the latest start times of the data set, so `totalHits`
    /// grows between pages; with `order: desc` they land on the first pages and shift the rest.
    pub late_after_pages: u64,
    /// Seed of every generated value and of the probabilistic faults (default 0).
    pub seed: u64,
    /// Unix milliseconds of the start of the data (default 2026-01-01T00:00:00Z).
    pub data_start_ms: i64,
    /// How much time the data covers (default 7 days); starts are spread evenly over it.
    pub data_span: Duration,
    /// Number of users served by `GET /api/v2/users` (default 120).
    pub users: u64,
    /// Accepted client id (default `sim-client`).
    pub client_id: String,
    /// Accepted client secret (default `sim-secret`).
    pub client_secret: ClientSecret,
    /// `expires_in` advertised with each token, and its real lifetime (default 24 h).
    pub token_lifetime: Duration,
    /// Revoke each token this long after issue, earlier than advertised (default none).
    pub revoke_after: Option<Duration>,
    /// Revoke each token after this many authenticated API requests: the next one gets 401
    /// (default none). Deterministic, unlike time.
    pub revoke_after_requests: Option<u64>,
    /// Token-bucket rate limit on authenticated API requests, per second (default none).
    pub rate_limit_per_sec: Option<u32>,
    /// Bucket size (default: the per-second rate).
    pub rate_limit_burst: Option<u32>,
    /// Form of `Retry-After` on 429s (default seconds).
    pub retry_after_format: RetryAfterFormat,
    /// Probability that an API request gets 503 (default 0).
    pub unavailable_probability: f64,
    /// When set, every 503 (API and token endpoint) carries `Retry-After` of this many seconds
    /// (in [`SimConfig::retry_after_format`]) and records it as a deadline (default none).
    pub unavailable_retry_after_secs: Option<u64>,
    /// Probability that an API request's connection is closed without a response (default 0).
    pub drop_probability: f64,
    /// Added latency of every page (details query, job results, users) (default 0).
    pub page_latency: Duration,
    /// Scripted faults by 1-based API request number (requests under `/api/`, counted in
    /// arrival order). Applied before authentication, so they do not use up a token's
    /// request allowance.
    pub faults: BTreeMap<u64, Fault>,
    /// The token endpoint answers 503 to its first N requests (default 0).
    pub token_outage_requests: u64,
    /// The token endpoint answers 503 for this long after start (default zero).
    pub token_outage_for: Duration,
    /// Time an async job stays QUEUED before it is FULFILLED (default zero).
    pub job_delay: Duration,
    /// Time after creation when a job is forgotten (404) (default 1 h).
    pub job_ttl: Duration,
    /// 1-based job creation numbers that end FAILED instead of FULFILLED.
    pub failing_jobs: Vec<u64>,
    /// Further accepted OAuth clients (id, secret) besides [`SimConfig::client_id`] (default
    /// none). Every client has its own rate-limit bucket (same rate and burst) shared by all
    /// its tokens and connections, and its own counters ([`crate::SimStats::clients`]).
    pub extra_clients: Vec<(String, ClientSecret)>,
    /// After each details-query page served, this many new conversations are inserted with a
    /// `conversationStart` drawn uniformly (seeded) inside that query's interval, so they land
    /// before and after the page just served (default 0).
    pub churn_inserts_per_page: u64,
    /// After each details-query page served, this many conversations that query selects are
    /// removed, drawn uniformly (seeded) from its whole result set (default 0).
    pub churn_removals_per_page: u64,
    /// Stop inserting after this many insertions in all (default unbounded).
    pub churn_max_inserts: Option<u64>,
    /// Stop removing after this many removals in all (default unbounded).
    pub churn_max_removals: Option<u64>,
    /// Churn only after each of the first P details pages served (default: after every page).
    pub churn_pages: Option<u64>,
    /// Live data (default off): the details query and jobs answer as of the simulator clock
    /// ([`crate::SimHandle::now_ms`]): conversations that have not started by then are absent,
    /// those still in progress have no `conversationEnd`, open segments and only the metrics
    /// emitted so far; they reach their final state as the clock passes their end.
    pub live: bool,
    /// Unix milliseconds the simulator clock is set to at start, frozen until moved by
    /// [`crate::SimHandle::advance`] or [`crate::SimHandle::set_now_ms`] (default none: real
    /// time). Only live data reads the clock.
    pub clock_start_ms: Option<i64>,
    /// Live arrivals (default none; needs [`SimConfig::live`]): after the end of the data
    /// span, new conversations keep starting at this mean rate per minute (each in its own
    /// seeded, jittered slot of `1/rate`), forever. At least 0.001; not with late
    /// conversations.
    pub arrivals_per_minute: Option<f64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            conversations: 1_000,
            late_conversations: 0,
            late_after_pages: 0,
            seed: 0,
            data_start_ms: 1_767_225_600_000,
            data_span: Duration::from_secs(7 * 86_400),
            users: 120,
            client_id: "sim-client".to_owned(),
            client_secret: ClientSecret::new("sim-secret"),
            token_lifetime: Duration::from_secs(86_400),
            revoke_after: None,
            revoke_after_requests: None,
            rate_limit_per_sec: None,
            rate_limit_burst: None,
            retry_after_format: RetryAfterFormat::Seconds,
            unavailable_probability: 0.0,
            unavailable_retry_after_secs: None,
            drop_probability: 0.0,
            page_latency: Duration::ZERO,
            faults: BTreeMap::new(),
            token_outage_requests: 0,
            token_outage_for: Duration::ZERO,
            job_delay: Duration::ZERO,
            job_ttl: Duration::from_secs(3_600),
            failing_jobs: Vec::new(),
            extra_clients: Vec::new(),
            churn_inserts_per_page: 0,
            churn_removals_per_page: 0,
            churn_max_inserts: None,
            churn_max_removals: None,
            churn_pages: None,
            live: false,
            clock_start_ms: None,
            arrivals_per_minute: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_faults_parse() {
        assert_eq!(
            parse_scripted_fault("5=429:2").unwrap(),
            (
                5,
                Fault::TooManyRequests {
                    retry_after_secs: 2
                }
            )
        );
        assert_eq!(
            parse_scripted_fault("5=429").unwrap().1,
            Fault::TooManyRequests {
                retry_after_secs: 1
            }
        );
        assert_eq!(
            parse_scripted_fault("9=503").unwrap(),
            (9, Fault::Unavailable)
        );
        assert_eq!(
            parse_scripted_fault("1=status:502").unwrap().1,
            Fault::Status(502)
        );
        assert_eq!(parse_scripted_fault("12=drop").unwrap().1, Fault::Drop);
        assert_eq!(
            parse_scripted_fault("15=truncate").unwrap().1,
            Fault::TruncatedBody
        );
        assert_eq!(
            parse_scripted_fault("20=malformed").unwrap().1,
            Fault::MalformedJson
        );
        assert_eq!(
            parse_scripted_fault("3=delay:250").unwrap().1,
            Fault::Delay(Duration::from_millis(250))
        );
        assert_eq!(
            parse_scripted_fault("3=revoke").unwrap().1,
            Fault::RevokeToken
        );
        assert_eq!(
            parse_scripted_fault("1=drop-after").unwrap().1,
            Fault::DropAfter
        );
        assert_eq!(
            parse_scripted_fault("1=status-after:504").unwrap().1,
            Fault::StatusAfter(504)
        );
        assert_eq!(
            parse_scripted_fault("1=delay-after:900").unwrap().1,
            Fault::DelayAfter(Duration::from_millis(900))
        );
        assert!(parse_scripted_fault("1=status-after").is_err());
        assert!(parse_scripted_fault("x=drop").is_err());
        assert!(parse_scripted_fault("3=explode").is_err());
        assert!(parse_scripted_fault("3=delay").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let mut config = SimConfig::default();
        config
            .extra_clients
            .push(("other".into(), ClientSecret::new("other-secret")));
        let shown = format!("{config:?}");
        assert!(!shown.contains("sim-secret"), "{shown}");
        assert!(!shown.contains("other-secret"), "{shown}");
    }
}
