//! The Genesys Cloud client: the whole keel stack over a rustls hyper client.
//!
//! Building a [`Client`] assembles, outermost first: a replayable body (so any attempt can be
//! sent again), refresh-on-401 (a revoked token is replaced and the request replayed once),
//! backoff (429/503 with `Retry-After`; for the read-only queries also 502/504, transport
//! errors and timed-out attempts, while a job submission is repeated only as
//! [`details::jobs`](crate::details::jobs) says), bearer tokens from a single-flight cache fed by the client-credentials
//! grant against `login_url/oauth/token`, then tracing (no headers logged), a per-attempt
//! timeout and gzip decompression, over a hyper-util client with rustls (ring, bundled web
//! PKI roots; plain http only to loopback).
//!
//! Above the stack, a page answered 2xx whose body does not decode is fetched again a few
//! times before it is an error ([`ClientBuilder::decode_retries`]).
//!
//! # Example
//!
//! ```
//! use keel_genesys::{Client, Credentials, Environment};
//! use secrecy::SecretString;
//!
//! let env = Environment::region("mypurecloud.com").unwrap();
//! let creds = Credentials::new("client-id", SecretString::from("secret"));
//! # let rt = tokio::runtime::Runtime::new().unwrap();
//! # let _guard = rt.enter();
//! let client = Client::builder(env, creds).prefetch(4).build().unwrap();
//! assert_eq!(client.stats().token_fetches, 0);
//! ```

mod builder;
mod credentials;
mod request;
mod spawn;
mod stack;
mod stats;
mod submit;

use std::fmt;
use std::sync::Arc;

pub use builder::ClientBuilder;
pub use credentials::{Credentials, MissingVar, CLIENT_ID_VAR, CLIENT_SECRET_VAR};
pub use stats::ClientStats;

pub(crate) use builder::Settings;
pub(crate) use spawn::Spawned;
pub(crate) use stack::HttpService;

use crate::details::DetailsExport;
use crate::environment::Environment;
use crate::models::ConversationQuery;

/// A Genesys Cloud API client. Cheap to clone: clones share the token cache, the backoff
/// pacing gate, the connection pool and the stats.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) env: Environment,
    pub(crate) client_id: String,
    pub(crate) http: HttpService,
    pub(crate) settings: Settings,
    pub(crate) stats: stack::StatsHandles,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("env", &self.inner.env)
            .field("client_id", &self.inner.client_id)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for a client of `env` authenticating with `creds`.
    pub fn builder(env: Environment, creds: Credentials) -> ClientBuilder {
        ClientBuilder::new(env, creds)
    }

    /// The environment this client talks to.
    pub fn environment(&self) -> &Environment {
        &self.inner.env
    }

    /// Counters of the layers so far: token fetches and failures, 401 replays, 429 waits,
    /// other retries and pages fetched again after an undecodable body.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Exports the conversations of `query` with the synchronous details query, split into
    /// parts (see [`crate::details`]), pages prefetched, yielded in order.
    ///
    /// The query's `paging` page size is used if set, else the builder's; its page number is
    /// ignored. The order must be ascending by `conversationStart` (the default).
    pub fn conversation_details(&self, query: ConversationQuery) -> DetailsExport {
        DetailsExport::query(self.clone(), query)
    }

    /// Exports the conversations of `query` with the asynchronous jobs API: submits a job,
    /// polls it with backoff until it is fulfilled, then streams its results by cursor.
    pub fn conversation_details_job(&self, query: ConversationQuery) -> DetailsExport {
        DetailsExport::job(self.clone(), query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_exports_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Client>();
        send_sync::<ClientStats>();
        send::<DetailsExport>();
        send_sync::<crate::Error>();
    }
}

#[cfg(test)]
mod loopback_tests;
#[cfg(test)]
mod stack_tests;
