//! Counters of everything the simulator served, and their snapshot [`SimStats`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// A snapshot of the simulator's counters (also served as JSON at `GET /__stats`).
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[non_exhaustive]
        pub struct SimStats {
            $( $(#[$doc])* pub $name: u64, )*
            /// Counters per OAuth client, by client id (every configured client, also idle).
            #[serde(default)]
            pub clients: BTreeMap<String, ClientStats>,
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $( pub(crate) $name: AtomicU64, )*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> SimStats {
                SimStats { $( $name: self.$name.load(Relaxed), )* clients: BTreeMap::new() }
            }
        }
    };
}

counters! {
    /// Requests to `POST /oauth/token`.
    token_requests,
    /// Tokens issued.
    tokens_issued,
    /// Token requests refused with 400/401 (bad credentials, bad grant).
    token_rejections,
    /// Token requests answered 503 (token outage).
    token_unavailable,
    /// Requests under `/api/`.
    api_requests,
    /// 401 responses served (API).
    unauthorized,
    /// 429 responses served.
    rate_limited,
    /// 503 responses served (API and token endpoint).
    unavailable,
    /// Other scripted error statuses served.
    other_errors,
    /// 400 responses served by the API (validation).
    bad_requests,
    /// 404 responses served.
    not_found,
    /// Connections closed without a response.
    dropped,
    /// Responses whose body was cut short.
    truncated,
    /// 200 responses with a malformed JSON body.
    malformed,
    /// API requests that arrived before a `Retry-After` deadline the simulator had given
    /// (kept globally, not per client).
    early_requests,
    /// Conversation-details query pages served (200).
    pages_served,
    /// Async job result pages served (200).
    job_pages_served,
    /// User list pages served (200).
    user_pages_served,
    /// Conversations sent in details pages and job result pages.
    conversations_served,
    /// Async jobs created.
    jobs_created,
    /// Requests being handled right now (all endpoints).
    in_flight,
    /// Highest number of requests handled at once.
    peak_in_flight,
    /// API requests without a bearer token.
    no_token,
    /// API requests with a token the simulator never issued.
    unknown_token,
    /// API requests with a token past its advertised expiry.
    expired_token,
    /// API requests with a token the simulator revoked early (by time, count or fault).
    revoked_token,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Marks a request in flight until the guard drops.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Relaxed);
        InFlight(self)
    }
}

/// Decrements `in_flight` on drop.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// What the simulator counted for one OAuth client (in [`SimStats::clients`], and from
/// [`crate::SimHandle::client_stats`]), across all its tokens and connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ClientStats {
    /// Tokens granted to this client by `POST /oauth/token`.
    pub token_grants: u64,
    /// API requests carrying a valid token of this client (before the rate limit).
    pub api_requests: u64,
    /// 429s from this client's rate-limit bucket.
    pub rate_limited: u64,
    /// 401s for an expired or revoked token of this client (the revocation fault included).
    pub unauthorized: u64,
    /// Distinct tokens of this client refused as revoked (by time, count, fault or
    /// [`crate::SimHandle::revoke_all_tokens`]), each counted once, at its first refusal: a
    /// fleet sharing tokens well needs at most one new grant per revoked token (plus one per
    /// token lifetime).
    pub revoked_tokens: u64,
}

/// The live counters behind a [`ClientStats`].
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) token_grants: AtomicU64,
    pub(crate) api_requests: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) revoked_tokens: AtomicU64,
}

impl ClientCounters {
    pub(crate) fn snapshot(&self) -> ClientStats {
        ClientStats {
            token_grants: self.token_grants.load(Relaxed),
            api_requests: self.api_requests.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            unauthorized: self.unauthorized.load(Relaxed),
            revoked_tokens: self.revoked_tokens.load(Relaxed),
        }
    }
}
