//! Sending one API request through the stack and classifying its outcome.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use keel_layers::auth::TokenError;
use keel_layers::backoff::RetrySafe;
use tower::ServiceExt;

use super::stack::BodyTooLarge;
use super::Client;
use crate::error::{ApiErrorBody, BoxError, Error};

/// Whether the stack may send a request again after a failure that leaves it unknown whether
/// the server acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Read-only: sending it twice is harmless.
    Safe,
    /// It changes server state (a job submission): see [`Client::submit`].
    Unsafe,
}

/// Longest error body kept for parsing the Genesys error fields.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Wait before the first fetch again of an undecodable body; doubled for each further one.
pub(crate) const DECODE_RETRY_DELAY: Duration = Duration::from_millis(250);

impl Client {
    /// Sends a read-only request like [`Client::send`] and decodes the 2xx body with `decode`.
    ///
    /// A body `decode` rejects with [`Error::Decode`] is fetched again, up to the builder's
    /// `decode_retries` more times, after [`DECODE_RETRY_DELAY`] doubled each time; then that
    /// error is returned. Errors of `send` itself (a body over the size cap included) are
    /// returned at once: the stack already retried what is worth retrying.
    pub(crate) async fn fetch_decoded<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        decode: impl Fn(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let body = body.map(Bytes::from);
        let mut retries = 0;
        let mut delay = DECODE_RETRY_DELAY;
        loop {
            let bytes = self
                .send_bytes(method.clone(), path, body.clone(), Repeat::Safe)
                .await?;
            match decode(&bytes) {
                Err(e @ Error::Decode { .. }) if retries < self.inner.settings.decode_retries => {
                    tracing::warn!(error = %e, retry = retries + 1, "undecodable answer, sending the request again");
                    retries += 1;
                    self.inner.stats.count_decode_retry();
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                other => return other,
            }
        }
    }

    /// Sends a request to `path` (absolute, under the API base URL) and returns the body of a
    /// 2xx answer. With [`Repeat::Safe`] the stack also retries transport failures, timeouts
    /// and 502/504 (a read-only query); with [`Repeat::Unsafe`] only what the server answered
    /// without acting on it (429, 503, 401 replays).
    pub(super) async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        repeat: Repeat,
    ) -> Result<Bytes, Error> {
        let endpoint = path.split('?').next().unwrap_or(path);
        let uri = self.inner.env.api_endpoint(path)?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        if repeat == Repeat::Safe {
            req = req.extension(RetrySafe);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::config(format!("invalid request to {endpoint}: {e}")))?;
        let res = match self.inner.http.clone().oneshot(req).await {
            Ok(res) => res,
            Err(e) => return Err(self.classify(endpoint, e)),
        };
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, endpoint, &bytes))
    }

    fn classify(&self, endpoint: &str, err: BoxError) -> Error {
        let client_id = self.inner.client_id.clone();
        if let Some(token) = keel_layers::error_chain::find::<TokenError>(err.as_ref()) {
            return match token {
                TokenError::Rejected { .. } => Error::Credentials {
                    client_id,
                    source: Some(Box::new(token.clone())),
                },
                other => Error::Token {
                    client_id,
                    source: Box::new(other.clone()),
                },
            };
        }
        if let Some(too_large) = keel_layers::error_chain::find::<BodyTooLarge>(err.as_ref()) {
            return Error::decode(endpoint, too_large.to_string());
        }
        Error::Transport {
            endpoint: endpoint.to_owned(),
            source: err,
        }
    }
}

fn api_error(status: StatusCode, endpoint: &str, body: &[u8]) -> Error {
    let body = &body[..body.len().min(ERROR_BODY_LIMIT)];
    let body = serde_json::from_slice::<ApiErrorBody>(body).unwrap_or_default();
    Error::Api {
        status,
        endpoint: endpoint.to_owned(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_the_genesys_fields() {
        let body = br#"{"message":"Pagination may not exceed 100000 results.","code":"bad.request","status":400,"contextId":"ctx-1","details":[]}"#;
        let err = api_error(StatusCode::BAD_REQUEST, "/api/v2/x", body);
        let Error::Api { status, body, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(body.code.as_deref(), Some("bad.request"));
        assert_eq!(body.context_id.as_deref(), Some("ctx-1"));
        assert_eq!(body.status, Some(400));
        assert!(err.to_string().contains("Pagination may not exceed"));
        let err = api_error(StatusCode::BAD_GATEWAY, "/api/v2/x", b"<html>");
        assert!(matches!(err, Error::Api { ref body, .. } if body.message.is_none()));
    }
}

#[cfg(test)]
mod decode_retry_tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use http::Response;
    use secrecy::SecretString;
    use tokio::time::Instant;
    use tower::util::BoxCloneSyncService;

    use super::*;
    use crate::{Credentials, Environment};

    /// What the fake API saw: when each request came and its body.
    type Seen = Arc<Mutex<Vec<(Instant, Bytes)>>>;

    /// A client over a fake API answering 200 with `bodies` in turn (the last one forever).
    fn fake_client(bodies: &[&'static str], retries: Option<u32>) -> (Client, Seen) {
        let bodies = Arc::new(Mutex::new(bodies.iter().copied().collect::<VecDeque<_>>()));
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let svc = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let (bodies, log) = (bodies.clone(), log.clone());
            async move {
                let sent = req.into_body().collect().await?.to_bytes();
                log.lock().unwrap().push((Instant::now(), sent));
                let mut bodies = bodies.lock().unwrap();
                let body = if bodies.len() > 1 {
                    bodies.pop_front().unwrap()
                } else {
                    bodies[0]
                };
                Ok::<_, BoxError>(Response::new(Full::new(Bytes::from_static(
                    body.as_bytes(),
                ))))
            }
        });
        let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
        let mut b = Client::builder(env, Credentials::new("fake", SecretString::from("unused")));
        if let Some(n) = retries {
            b = b.decode_retries(n);
        }
        (b.build_with(BoxCloneSyncService::new(svc)), seen)
    }

    async fn fetch(client: &Client) -> Result<serde_json::Value, Error> {
        client
            .fetch_decoded(
                Method::POST,
                "/api/v2/x",
                Some(b"{\"q\":1}".to_vec()),
                |b| {
                    serde_json::from_slice(b).map_err(|e| Error::decode("/api/v2/x", e.to_string()))
                },
            )
            .await
    }

    fn waits(seen: &Seen) -> Vec<Duration> {
        let seen = seen.lock().unwrap();
        seen.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_undecodable_body_is_fetched_again_with_the_same_request_after_a_short_wait() {
        let (client, seen) = fake_client(&["{\"a\":", "{\"a\":1}"], None);
        assert_eq!(fetch(&client).await.unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(waits(&seen), [DECODE_RETRY_DELAY]);
        let seen = seen.lock().unwrap();
        assert!(seen.iter().all(|(_, body)| body == &b"{\"q\":1}"[..]));
        assert_eq!(client.stats().decode_retries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn spent_decode_retries_end_in_the_decode_error_after_doubling_waits() {
        let (client, seen) = fake_client(&["not json"], None);
        let err = fetch(&client).await.unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert_eq!(
            waits(&seen),
            [DECODE_RETRY_DELAY, DECODE_RETRY_DELAY * 2],
            "two retries by default"
        );
        assert_eq!(client.stats().decode_retries, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn decode_retries_are_configurable_and_zero_sends_once() {
        let (client, seen) = fake_client(&["not json"], Some(0));
        assert!(matches!(fetch(&client).await, Err(Error::Decode { .. })));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(client.stats().decode_retries, 0);

        let (client, seen) = fake_client(&["not json"], Some(4));
        assert!(matches!(fetch(&client).await, Err(Error::Decode { .. })));
        assert_eq!(seen.lock().unwrap().len(), 5);
        assert_eq!(client.stats().decode_retries, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_other_than_decode_are_not_fetched_again() {
        let (client, seen) = fake_client(&["{}"], None);
        let err = client
            .fetch_decoded(Method::GET, "/api/v2/x", None, |_| -> Result<(), Error> {
                Err(Error::config("not a decode error"))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
