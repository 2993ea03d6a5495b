use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};
use zeroize::Zeroizing;

use super::response::{parse_token, rejected};
use super::Config;
use crate::auth::{Token, TokenError};
use crate::hints::parse_retry_after;
use crate::jitter::equal_jitter;

pub(super) async fn fetch_with_retries<S, B, ResB>(
    service: S,
    config: Arc<Config>,
) -> Result<Token, TokenError>
where
    B: From<Bytes>,
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body,
    ResB::Error: Into<BoxError>,
{
    config.check_url()?;
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = tokio::time::timeout(
            config.attempt_timeout,
            attempt_once::<S, B, ResB>(service.clone(), &config),
        )
        .await;
        let (error, retry_after) = match outcome {
            Ok(Ok(token)) => return Ok(token),
            Ok(Err(failure)) => failure,
            Err(_) => (TokenError::Timeout(config.attempt_timeout), None),
        };
        if !error.is_transient() {
            return Err(error);
        }
        let delay = backoff_delay(&config, attempt).max(retry_after.unwrap_or_default());
        if attempt >= config.max_attempts
            || started.elapsed().saturating_add(delay) > config.max_elapsed
        {
            return Err(TokenError::Unavailable {
                attempts: attempt,
                last: Box::new(error),
            });
        }
        tracing::debug!(attempt, ?delay, %error, "token request failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

fn backoff_delay(config: &Config, attempt: u32) -> Duration {
    equal_jitter(
        config.base_delay,
        config.max_delay,
        attempt,
        &mut rand::rng(),
    )
}

type Failure = (TokenError, Option<Duration>);

async fn attempt_once<S, B, ResB>(service: S, config: &Config) -> Result<Token, Failure>
where
    B: From<Bytes>,
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body,
    ResB::Error: Into<BoxError>,
{
    let sent_at = Instant::now();
    let request = token_request::<B>(config);
    let response = service
        .oneshot(request)
        .await
        .map_err(|e| (TokenError::Transport(Arc::new(e.into())), None))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = Limited::new(response.into_body(), config.body_limit)
        .collect()
        .await;
    let body = match body {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err((
                TokenError::BodyTooLarge {
                    limit: config.body_limit,
                },
                None,
            ))
        }
        Err(e) if status.is_success() => return Err((TokenError::Transport(Arc::new(e)), None)),
        // NOTE: the body of a failure answer is only informative; its status decides.
        Err(_) => Bytes::new(),
    };
    match status {
        s if s.is_success() => parse_token(&body, sent_at).map_err(|e| (e, None)),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => Err((
            rejected(status, &body, config.client_secret.expose_secret()),
            None,
        )),
        s => Err((TokenError::Status(s), retry_after)),
    }
}

fn token_request<B: From<Bytes>>(config: &Config) -> Request<B> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &config.scope {
        form.push(("scope", scope));
    }
    let form = serde_urlencoded::to_string(form).unwrap_or_default();
    let mut request = Request::new(B::from(Bytes::from(form)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = config.token_url.clone();
    let headers = request.headers_mut();
    headers.insert(AUTHORIZATION, basic_auth(config));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    request
}

fn basic_auth(config: &Config) -> HeaderValue {
    let pair = Zeroizing::new(format!(
        "{}:{}",
        config.client_id,
        config.client_secret.expose_secret()
    ));
    let mut value = Zeroizing::new(String::from("Basic "));
    base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut value);
    let mut header = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
        .expect("base64 is always a valid header value");
    header.set_sensitive(true);
    header
}
