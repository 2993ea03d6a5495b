//! What is worth retrying: statuses, transport failures, and the per-request opt-in.

use std::error::Error;
use std::io;

use crate::error_chain::chain;

/// Request extension: this request is safe to send again even if the server may have
/// seen it, so 502, 504 and transport failures are retried for it.
///
/// 429 and 503 are retried for every request (the server says it did not process it);
/// the rest are opt-in, per policy ([`BackoffPolicy::retry_gateway_errors`],
/// [`BackoffPolicy::retry_transport_errors`]) or per request with this marker, e.g. for a
/// read-only `POST` such as an analytics query.
///
/// ```
/// use keel_layers::backoff::RetrySafe;
///
/// let req = http::Request::post("https://api.example.test/analytics/query")
///     .extension(RetrySafe)
///     .body(String::from("{}"))
///     .unwrap();
/// assert!(req.extensions().get::<RetrySafe>().is_some());
/// ```
///
/// [`BackoffPolicy::retry_gateway_errors`]: super::BackoffPolicy::retry_gateway_errors
/// [`BackoffPolicy::retry_transport_errors`]: super::BackoffPolicy::retry_transport_errors
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetrySafe;

/// Whether an error means the connection failed before a response arrived: refused,
/// reset, aborted, closed, or a message cut short.
///
/// Walks the whole [`source`](Error::source) chain, so it sees through client and
/// `BoxError` wrappers to the `std::io::Error` underneath (and, with the `hyper` feature, a
/// `hyper::Error` for a connection closed before a complete response). Timeouts
/// are not transport failures here: the server may still be working on the request.
///
/// ```
/// use std::io;
/// use keel_layers::backoff::is_transport_error;
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert!(is_transport_error(&refused));
/// assert!(!is_transport_error(&io::Error::from(io::ErrorKind::InvalidData)));
/// ```
pub fn is_transport_error(err: &(dyn Error + 'static)) -> bool {
    chain(err).any(|err| {
        err.downcast_ref::<io::Error>()
            .is_some_and(|io| is_transport_kind(io.kind()))
            || is_hyper_transport_error(err)
    })
}

/// hyper reports a connection closed before a complete response without an `io::Error`
/// underneath: with the `hyper` feature its error type is recognised too.
#[cfg(feature = "hyper")]
fn is_hyper_transport_error(err: &(dyn Error + 'static)) -> bool {
    err.downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled())
}

#[cfg(not(feature = "hyper"))]
fn is_hyper_transport_error(_: &(dyn Error + 'static)) -> bool {
    false
}

/// Whether an error means an attempt ran out of time: tower's and tokio's timeout errors,
/// or an `io::ErrorKind::TimedOut` anywhere in the [`source`](Error::source) chain.
///
/// The server may still have been working on such a request, so it is retried only where
/// transport failures are (per policy or per request with [`RetrySafe`]): repeating it must
/// be harmless.
///
/// ```
/// use keel_layers::backoff::is_timeout_error;
///
/// let elapsed: tower::BoxError = Box::new(tower::timeout::error::Elapsed::new());
/// assert!(is_timeout_error(elapsed.as_ref()));
/// assert!(!is_timeout_error(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
/// ```
pub fn is_timeout_error(err: &(dyn Error + 'static)) -> bool {
    chain(err).any(|err| {
        err.is::<tower::timeout::error::Elapsed>()
            || err.is::<tokio::time::error::Elapsed>()
            || err
                .downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
    })
}

fn is_transport_kind(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error")]
    struct Wrapper(#[source] io::Error);

    #[test]
    fn finds_io_kinds_through_the_source_chain() {
        let wrapped = Wrapper(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(is_transport_error(&wrapped));
        let boxed: tower::BoxError = Box::new(wrapped);
        assert!(is_transport_error(boxed.as_ref()));
    }

    #[test]
    fn other_errors_are_not_transport_failures() {
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::Other,
        ] {
            assert!(
                !is_transport_error(&Wrapper(io::Error::from(kind))),
                "{kind:?}"
            );
        }
        let plain: tower::BoxError = "nope".into();
        assert!(!is_transport_error(plain.as_ref()));
    }

    #[test]
    fn finds_timeouts_through_the_source_chain() {
        let wrapped = Wrapper(io::Error::from(io::ErrorKind::TimedOut));
        assert!(is_timeout_error(&wrapped));
        let elapsed: tower::BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert!(is_timeout_error(elapsed.as_ref()));
        let plain: tower::BoxError = "nope".into();
        assert!(!is_timeout_error(plain.as_ref()));
        assert!(!is_timeout_error(&Wrapper(io::Error::from(
            io::ErrorKind::ConnectionReset
        ))));
    }
}
