//! The typed errors of the Genesys client.
//!
//! Every failure of a client call is one [`Error`]; [`Error::kind`] sorts them into the few
//! classes a batch job reports differently (the `genesys-export` binary maps each
//! [`ErrorKind`] to an exit code). No error ever holds a secret: the credentials error names
//! the client id only, and API errors keep the status and the Genesys error body fields.
//!
//! # Example
//!
//! ```
//! use keel_genesys::{Environment, Error, ErrorKind};
//!
//! let err = Environment::custom("http://example.com", "https://login.example.com").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Usage);
//! assert!(matches!(err, Error::Config(_)));
//! assert!(err.to_string().contains("plain http"));
//! ```

use http::StatusCode;

use crate::details::Checkpoint;
use crate::models::Interval;

/// A boxed error from a lower layer (transport, TLS, timeout).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The class of an [`Error`], for exit codes and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input or configuration given by the caller (interval, page size, URL, env var).
    Usage,
    /// The token endpoint rejected the client credentials.
    Credentials,
    /// The API answered with an error status, after any retries.
    Api,
    /// The request could not be sent or the response not received (connect, TLS, timeout).
    Transport,
    /// The API answered with a body that is not what it should be.
    Decode,
    /// The result set changed while it was being paged.
    ResultSetChanged,
}

/// The error body Genesys sends with an error status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorBody {
    /// Human readable message, e.g. `"Pagination may not exceed 100000 results."`.
    #[serde(default)]
    pub message: Option<String>,
    /// Machine readable code, e.g. `"bad.request"`.
    #[serde(default)]
    pub code: Option<String>,
    /// The status Genesys put in the body.
    #[serde(default)]
    pub status: Option<u16>,
    /// The correlation id to quote to Genesys support.
    #[serde(default)]
    pub context_id: Option<String>,
}

/// An error from the Genesys client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input or configuration (never contains a secret).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The token endpoint rejected the client credentials (names the client id only).
    #[error("credentials rejected for client id {client_id:?}")]
    Credentials {
        /// The OAuth client id whose credentials were rejected.
        client_id: String,
        /// The rejection as reported by the token layer (no secret).
        #[source]
        source: Option<BoxError>,
    },

    /// The token could not be fetched for a reason other than a rejection.
    #[error("could not fetch an access token for client id {client_id:?}")]
    Token {
        /// The OAuth client id.
        client_id: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },

    /// The API answered with an error status after any retries.
    #[error("api error {status} on {endpoint}: {}", body.message.as_deref().unwrap_or("no message"))]
    Api {
        /// The HTTP status of the final answer.
        status: StatusCode,
        /// The endpoint path (no query string, no host).
        endpoint: String,
        /// The Genesys error body fields (empty if the body was not the usual error shape).
        body: ApiErrorBody,
    },

    /// The request could not be sent or the response not received.
    #[error("transport error on {endpoint}")]
    Transport {
        /// The endpoint path.
        endpoint: String,
        /// The underlying error (connect, TLS, timeout, body read).
        #[source]
        source: BoxError,
    },

    /// A response body was malformed (on every attempt: see
    /// [`ClientBuilder::decode_retries`](crate::ClientBuilder::decode_retries)) or too large;
    /// the page it belongs to was not yielded.
    #[error("malformed response from {endpoint}: {reason}")]
    Decode {
        /// The endpoint path.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },

    /// `totalHits` changed between pages of one part of an export: the data under the
    /// interval is still changing. Pages yielded before this error are exact and unique.
    #[error(
        "result set changed while paging {interval}: totalHits went from {expected} to {actual}"
    )]
    ResultSetChanged {
        /// The part of the query interval whose results changed.
        interval: Interval,
        /// The `totalHits` the part started with.
        expected: u64,
        /// The `totalHits` a later page reported.
        actual: u64,
        /// Where to resume exactly: restarts the changed part, skipping the ids already
        /// yielded from it. `None` when those ids are not all known (the part had been resumed
        /// from a checkpoint mid-way): then re-export `interval` on its own.
        resume: Option<Box<Checkpoint>>,
    },

    /// An interval holds more results than the API can page, even split to one millisecond.
    #[error("interval {interval} has {total_hits} results and cannot be split further")]
    TooManyResults {
        /// The smallest interval tried.
        interval: Interval,
        /// Its `totalHits`.
        total_hits: u64,
    },

    /// The async job failed on the Genesys side.
    #[error("analytics job {job_id} failed: {}", reason.as_deref().unwrap_or("no reason given"))]
    JobFailed {
        /// The job id.
        job_id: String,
        /// The error message Genesys reported, if any.
        reason: Option<String>,
    },
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Usage,
            Error::Credentials { .. } => ErrorKind::Credentials,
            Error::Token { .. } | Error::Transport { .. } => ErrorKind::Transport,
            Error::Api { .. } | Error::TooManyResults { .. } | Error::JobFailed { .. } => {
                ErrorKind::Api
            }
            Error::Decode { .. } => ErrorKind::Decode,
            Error::ResultSetChanged { .. } => ErrorKind::ResultSetChanged,
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    pub(crate) fn decode(endpoint: &str, reason: impl Into<String>) -> Self {
        Error::Decode {
            endpoint: endpoint.to_owned(),
            reason: reason.into(),
        }
    }
}
