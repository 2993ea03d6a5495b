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

use std::fmt;

use http::StatusCode;

use crate::details::Checkpoint;
use crate::models::Interval;

/// A boxed error from a lower layer (transport, TLS, timeout).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Text from a server, displayed with its control characters escaped.
///
/// An error message, a job id or a decoder's complaint about a body can carry whatever the
/// server (or a proxy) sent: ANSI escape sequences that recolour or rewrite a terminal, a
/// carriage return that overwrites the line, bidirectional overrides that reorder it. Every
/// [`Error`] displays such text through `Escaped`, so a program that prints an error shows
/// `\u{1b}[2J` rather than clearing the screen; programs can wrap other text the same way.
///
/// # Example
///
/// ```
/// use keel_genesys::error::Escaped;
///
/// let shown = Escaped("bad\u{1b}[31m request\r\nnext").to_string();
/// assert_eq!(shown, r"bad\u{1b}[31m request\r\nnext");
/// assert_eq!(Escaped("Pagination may not exceed 100000 results.").to_string(),
///            "Pagination may not exceed 100000 results.");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(needs_escape) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// C0/C1 controls and DEL, and the Unicode bidirectional embedding, override and isolate
/// controls.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

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
    /// The result set changed while it was being paged, and the export could not ride it
    /// out (see [`Error::ResultSetChanged`]).
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
    #[error("api error {status} on {endpoint}: {}", Escaped(body.message.as_deref().unwrap_or("no message")))]
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
    #[error("malformed response from {endpoint}: {}", Escaped(reason))]
    Decode {
        /// The endpoint path.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },

    /// The results of one part of an export moved in a way the export could not ride out:
    /// conversations kept being removed while it was read again from its first page, or the
    /// part, resumed mid-way from a page checkpoint, changed without the ids already yielded
    /// from it at hand. (Results that grow are read on in order: growth alone never ends an
    /// export.) Pages yielded before this error are exact and unique.
    #[error(
        "result set changed while paging {interval}: totalHits went from {expected} to {actual}{}",
        if resume.is_some() && actual <= expected {
            "; conversations were removed from it while it was paged, and reading it again did not settle"
        } else {
            ""
        }
    )]
    ResultSetChanged {
        /// The part of the query interval whose results changed.
        interval: Interval,
        /// The `totalHits` the part had before (on its first page, or the page before).
        expected: u64,
        /// The `totalHits` a later page reported. Larger than `expected` when the part only
        /// grew.
        actual: u64,
        /// Where to resume exactly: reads the changed part again from its first page,
        /// skipping the ids already yielded from it. `None` when those ids are not all known
        /// (the part had been resumed from a checkpoint mid-way): the export engine then
        /// takes them from its sink ([`PageSink::committed_ids`](crate::sink::PageSink::committed_ids)).
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
    #[error("analytics job {} failed: {}", Escaped(job_id), Escaped(reason.as_deref().unwrap_or("no reason given")))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_displayed_with_its_control_characters_escaped() {
        let api = Error::Api {
            status: StatusCode::BAD_REQUEST,
            endpoint: "/api/v2/x".into(),
            body: ApiErrorBody {
                message: Some("bad\u{1b}[2J\rfake line\u{202e}txt\u{7f}".into()),
                ..ApiErrorBody::default()
            },
        };
        assert_eq!(
            api.to_string(),
            r"api error 400 Bad Request on /api/v2/x: bad\u{1b}[2J\rfake line\u{202e}txt\u{7f}"
        );
        let job = Error::JobFailed {
            job_id: "j\n1".into(),
            reason: Some("boom\u{9b}31m".into()),
        };
        assert_eq!(job.to_string(), r"analytics job j\n1 failed: boom\u{9b}31m");
        let decode = Error::decode("/api/v2/x", "invalid type: string \"\u{1b}]0;title\u{7}\"");
        assert!(!decode.to_string().chars().any(needs_escape), "{decode}");
    }

    #[test]
    fn text_without_controls_is_displayed_as_is() {
        let text = "Pagination may not exceed 100000 results. «ü» 日本";
        assert_eq!(Escaped(text).to_string(), text);
        assert_eq!(Escaped("").to_string(), "");
    }
}
