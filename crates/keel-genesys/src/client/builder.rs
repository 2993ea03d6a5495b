//! Configuration of a [`Client`].

use std::fmt;
use std::time::Duration;

use super::{Client, Credentials};
use keel_layers::auth::TokenSource;
use keel_layers::backoff::{BackoffPolicy, RateState};

use crate::details::SplitPolicy;
use crate::environment::Environment;
use crate::error::Error;
use crate::models::MAX_PAGE_SIZE;

/// Largest page of async job results the API serves (`pageSize` of `…/jobs/{id}/results`).
pub(crate) const MAX_JOB_PAGE_SIZE: u32 = 1_000;

/// Settings shared by the exports of a client.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) prefetch: usize,
    pub(crate) page_size: u32,
    pub(crate) job_page_size: u32,
    pub(crate) max_parallel_parts: usize,
    pub(crate) split: SplitPolicy,
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) refresh_before: Duration,
    pub(crate) job_poll_initial: Duration,
    pub(crate) job_poll_max: Duration,
    pub(crate) job_timeout: Duration,
    pub(crate) decode_retries: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            prefetch: 4,
            page_size: MAX_PAGE_SIZE,
            job_page_size: MAX_JOB_PAGE_SIZE,
            max_parallel_parts: 2,
            split: SplitPolicy::default(),
            request_timeout: Duration::from_secs(60),
            max_body_bytes: 64 * 1024 * 1024,
            refresh_before: Duration::from_secs(60),
            job_poll_initial: Duration::from_secs(1),
            job_poll_max: Duration::from_secs(30),
            job_timeout: Duration::from_secs(6 * 3600),
            decode_retries: 2,
        }
    }
}

/// Wraps the client-credentials grant in another token source (a shared store).
pub(crate) type WrapTokenSource =
    Box<dyn FnOnce(Box<dyn TokenSource>) -> Box<dyn TokenSource> + Send + Sync>;

/// Puts a rate state into the backoff policy.
pub(crate) type SetRateState = Box<dyn FnOnce(BackoffPolicy) -> BackoffPolicy + Send + Sync>;

/// Builds a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    pub(crate) env: Environment,
    pub(crate) creds: Credentials,
    pub(crate) settings: Settings,
    pub(crate) backoff: Option<BackoffPolicy>,
    pub(crate) wrap_tokens: Option<WrapTokenSource>,
    pub(crate) rate_state: Option<SetRateState>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("env", &self.env)
            .field("creds", &self.creds)
            .field("settings", &self.settings)
            .field("backoff", &self.backoff)
            .field("wraps_token_source", &self.wrap_tokens.is_some())
            .field("rate_state", &self.rate_state.is_some())
            .finish()
    }
}

impl ClientBuilder {
    pub(crate) fn new(env: Environment, creds: Credentials) -> Self {
        Self {
            env,
            creds,
            settings: Settings::default(),
            backoff: None,
            wrap_tokens: None,
            rate_state: None,
        }
    }

    /// Pages in flight per part while exporting (default 4; at least 1).
    pub fn prefetch(mut self, pages: usize) -> Self {
        self.settings.prefetch = pages.max(1);
        self
    }

    /// Results per page of the details query, 1..=100 (default 100), checked by `build`.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.settings.page_size = page_size;
        self
    }

    /// Timeout of one request attempt (default 60 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// Parts of a split interval fetched at once (default 2; at least 1). Pages are still
    /// yielded in interval order.
    pub fn max_parallel_parts(mut self, parts: usize) -> Self {
        self.settings.max_parallel_parts = parts.max(1);
        self
    }

    /// The backoff policy for 429/503 and transport errors (default: [`BackoffPolicy::default`]).
    /// The read-only queries also retry 502/504, transport errors and timed-out attempts; a
    /// job submission does not (it is repeated at most once after such a failure, see
    /// [`details::jobs`](crate::details::jobs)), whatever the policy's
    /// `retry_transport_errors` and `retry_gateway_errors` say.
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = Some(policy);
        self
    }

    /// Where the backoff layer's 429 gate and pacing permits live (default: in this process).
    ///
    /// A fleet of processes sharing one OAuth client passes a shared implementation (such as
    /// keel-redis's `RedisRateState`), so a 429 in one process holds them all. Applies to
    /// the policy of [`backoff`](Self::backoff) whichever is called first.
    pub fn rate_state<R: RateState + Clone>(mut self, state: R) -> Self {
        self.rate_state = Some(Box::new(move |policy: BackoffPolicy| {
            policy.rate_state(state)
        }));
        self
    }

    /// Wraps the client-credentials grant in another [`TokenSource`] before the client's
    /// token cache uses it (default: the grant itself).
    ///
    /// A fleet of processes sharing one OAuth client wraps it in a shared token store (such as
    /// keel-redis's `RedisTokenSource`), so the fleet fetches one token per lifetime; the
    /// cache tells the store when a token is rejected. `wrap` is called once, by
    /// [`build`](Self::build).
    ///
    /// ```
    /// use keel_genesys::{Client, Credentials, Environment};
    /// use keel_layers::auth::TokenSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let client = Client::builder(
    ///     Environment::custom("https://api.example.com", "https://login.example.com").unwrap(),
    ///     Credentials::new("client-id", "client-secret".to_owned().into()),
    /// )
    /// .token_source(|grant: Box<dyn TokenSource>| grant) // a shared store would wrap `grant`
    /// .build()
    /// .unwrap();
    /// # drop(client);
    /// # }
    /// ```
    pub fn token_source<F, S>(mut self, wrap: F) -> Self
    where
        F: FnOnce(Box<dyn TokenSource>) -> S + Send + Sync + 'static,
        S: TokenSource,
    {
        self.wrap_tokens = Some(Box::new(move |grant| Box::new(wrap(grant))));
        self
    }

    /// How intervals are split (default: days, halved while over 100,000 results).
    pub fn split_policy(mut self, policy: crate::details::SplitPolicy) -> Self {
        self.settings.split = policy;
        self
    }

    /// Largest response body read, per page (default 64 MiB); a larger one is a decode error.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_body_bytes = bytes;
        self
    }

    /// How many more times a page is fetched when its 2xx body cannot be decoded (default 2;
    /// 0 turns it off).
    ///
    /// A proxy that cuts a body short behind a consistent `Content-Length`, or an upstream
    /// glitch, yields invalid JSON or a conversation without a `conversationId` once; every
    /// request the client sends is a read-only query, so sending it again is safe. Retries
    /// wait 250 ms, then twice as long each time, and are counted in
    /// [`ClientStats::decode_retries`](super::ClientStats::decode_retries). When they are
    /// spent the page is an [`Error::Decode`]. This covers details query pages, job status
    /// polls and job result pages (not the job submission, which would start a second job);
    /// a body over [`max_body_bytes`](Self::max_body_bytes) is not fetched again.
    pub fn decode_retries(mut self, retries: u32) -> Self {
        self.settings.decode_retries = retries;
        self
    }

    /// How long before expiry a token is refreshed (default 60 s).
    pub fn refresh_before(mut self, lead: Duration) -> Self {
        self.settings.refresh_before = lead;
        self
    }

    /// Conversations per page of async job results (default and largest: 1,000).
    ///
    /// The jobs API pages its results by cursor with its own `pageSize`, ten times the details
    /// query's limit; [`page_size`](Self::page_size) applies to the details query only.
    pub fn job_page_size(mut self, size: u32) -> Self {
        self.settings.job_page_size = size;
        self
    }

    /// First and longest wait between polls of an async job's status (default 1 s and 30 s),
    /// and how long to wait for it overall (default 6 h).
    pub fn job_polling(mut self, initial: Duration, max: Duration, timeout: Duration) -> Self {
        self.settings.job_poll_initial = initial;
        self.settings.job_poll_max = max.max(initial);
        self.settings.job_timeout = timeout;
        self
    }

    /// Builds the client.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if a setting is out of range (page size, split policy).
    pub fn build(self) -> Result<Client, Error> {
        if self.settings.page_size == 0 || self.settings.page_size > MAX_PAGE_SIZE {
            return Err(Error::config(format!(
                "page size {} is out of range 1..={MAX_PAGE_SIZE}",
                self.settings.page_size
            )));
        }
        let jobs = self.settings.job_page_size;
        if jobs == 0 || jobs > MAX_JOB_PAGE_SIZE {
            return Err(Error::config(format!(
                "job page size {jobs} is out of range 1..={MAX_JOB_PAGE_SIZE}"
            )));
        }
        let split = self.settings.split;
        if split.max_results == 0 || split.max_results > crate::details::MAX_RESULTS {
            return Err(Error::config(format!(
                "split max_results {} is out of range 1..={}",
                split.max_results,
                crate::details::MAX_RESULTS
            )));
        }
        super::stack::build(self)
    }

    /// Builds a client that sends every request to `http` (tests of the paging logic).
    #[cfg(test)]
    pub(crate) fn build_with(self, http: super::HttpService) -> Client {
        super::stack::with_service(self, http)
    }
}
