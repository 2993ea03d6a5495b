//! Sending a request that starts something on the server (a details job) without repeating
//! it blindly.
//!
//! A read can be sent again whenever an attempt fails. A `POST …/details/jobs` cannot: each
//! one the server acts on starts a job, and an org runs only a few at once. So the stack
//! repeats it only where the server provably did not act on it: 429 and 503 (answered before
//! a job exists) and 401 replays. Here, a connection that could not be opened (nothing was
//! sent) is tried again after a short wait. After an ambiguous failure (a timeout, a
//! connection reset or closed after the request went out, a 502/504 from a gateway) the job
//! may or may not exist: the request is sent once more, with a WARN that a job may have been
//! started twice, and a second ambiguous failure is returned to the caller.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use keel_layers::backoff::{is_timeout_error, is_transport_error};

use super::request::Repeat;
use super::Client;
use crate::error::Error;

/// Attempts made again after connection failures that sent nothing.
pub(crate) const UNSENT_RETRIES: u32 = 4;

/// Wait before the first attempt after a connection failure; doubled for each further one.
pub(crate) const UNSENT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// What a failed attempt says about whether the server acted on the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// The connection was never opened: nothing reached the server.
    NotSent,
    /// The request may have reached the server and been acted on.
    Unknown,
    /// The server answered (or the failure is not about delivery): not sent again here.
    Final,
}

impl Client {
    /// Sends a `POST` that starts something on the server and returns the body of its 2xx
    /// answer, repeating it only as the module docs describe.
    pub(crate) async fn submit(&self, path: &str, body: Vec<u8>) -> Result<Bytes, Error> {
        let body = Bytes::from(body);
        let mut unsent = 0;
        let mut delay = UNSENT_RETRY_DELAY;
        let mut repeated_unknown = false;
        loop {
            let err = match self
                .send_bytes(Method::POST, path, Some(body.clone()), Repeat::Unsafe)
                .await
            {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            match delivery(&err) {
                Delivery::NotSent if unsent < UNSENT_RETRIES => {
                    unsent += 1;
                    tracing::info!(
                        error = %err,
                        retry = unsent,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "submission did not reach the server, sending it again"
                    );
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Delivery::Unknown if !repeated_unknown => {
                    repeated_unknown = true;
                    tracing::warn!(
                        error = %err,
                        endpoint = path,
                        "submission failed after it may have reached the server; sending it \
                         once more, so the server may have started it twice"
                    );
                }
                _ => return Err(err),
            }
        }
    }
}

fn delivery(err: &Error) -> Delivery {
    match err {
        Error::Transport { source, .. } => {
            let source: &(dyn StdError + 'static) = &**source;
            if never_sent(source) {
                Delivery::NotSent
            } else if is_transport_error(source) || is_timeout_error(source) {
                Delivery::Unknown
            } else {
                Delivery::Final
            }
        }
        Error::Api { status, .. }
            if *status == StatusCode::BAD_GATEWAY || *status == StatusCode::GATEWAY_TIMEOUT =>
        {
            Delivery::Unknown
        }
        _ => Delivery::Final,
    }
}

/// Whether `err` says the connection could not be opened: hyper-util's connect error, or a
/// refused connection (only a connect is refused).
fn never_sent(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if client.is_connect() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BoxError;

    fn transport(source: BoxError) -> Error {
        Error::Transport {
            endpoint: "/api/v2/x".into(),
            source,
        }
    }

    #[test]
    fn refused_connections_were_not_sent_and_resets_timeouts_and_gateway_errors_are_unknown() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(delivery(&transport(refused.into())), Delivery::NotSent);
        for kind in [io::ErrorKind::ConnectionReset, io::ErrorKind::UnexpectedEof] {
            let e = transport(io::Error::from(kind).into());
            assert_eq!(delivery(&e), Delivery::Unknown, "{kind:?}");
        }
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(delivery(&transport(elapsed)), Delivery::Unknown);
        let other: BoxError = "tls handshake refused the certificate".into();
        assert_eq!(delivery(&transport(other)), Delivery::Final);
        for (status, want) in [
            (StatusCode::BAD_GATEWAY, Delivery::Unknown),
            (StatusCode::GATEWAY_TIMEOUT, Delivery::Unknown),
            (StatusCode::TOO_MANY_REQUESTS, Delivery::Final),
            (StatusCode::BAD_REQUEST, Delivery::Final),
        ] {
            let e = Error::Api {
                status,
                endpoint: "/api/v2/x".into(),
                body: Default::default(),
            };
            assert_eq!(delivery(&e), want, "{status}");
        }
    }
}
