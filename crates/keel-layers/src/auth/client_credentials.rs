use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use rand::Rng as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};
use zeroize::{Zeroize, Zeroizing};

use super::origin::is_loopback_host;
use super::token::bearer_header;
use super::{FetchFuture, Token, TokenError, TokenSource};

/// The OAuth 2.0 client-credentials grant (RFC 6749 §4.4) over any tower HTTP service.
///
/// Each fetch sends `POST token_url` with `Authorization: Basic base64(client_id:secret)`
/// (marked sensitive) and the form `grant_type=client_credentials` (plus `scope` when set),
/// and reads `access_token`, `token_type` (must be `bearer` when present) and `expires_in`
/// from a JSON answer, with the body capped at [`body_limit`](ClientCredentials::body_limit).
///
/// - A 400 or 401 answer means the credentials were refused: [`TokenError::Rejected`], with
///   the server's `error` and `error_description`, and no retry.
/// - A 429 or 5xx answer, a transport error or an attempt timeout is transient: the request is
///   retried with jittered exponential backoff (half fixed, half random, honouring a longer
///   `Retry-After`), at most [`max_attempts`](ClientCredentials::max_attempts) times and within
///   [`max_elapsed`](ClientCredentials::max_elapsed) in all. The defaults (10 attempts, 30 s,
///   0.5 s doubling to 8 s, 10 s per attempt) ride out a token endpoint that is down for
///   more than 10 seconds. Past the limits: [`TokenError::Unavailable`].
/// - The token URL must be `https`, or `http` to a loopback host
///   ([`TokenError::InsecureTokenUrl`] otherwise).
///
/// The secret is held in a [`SecretString`]; `Debug` prints `[redacted]` for it and no error
/// or log line carries it or a token.
pub struct ClientCredentials<S> {
    service: Mutex<S>,
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    token_url: Uri,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    max_attempts: u32,
    max_elapsed: Duration,
    base_delay: Duration,
    max_delay: Duration,
    attempt_timeout: Duration,
    body_limit: usize,
}

impl<S> ClientCredentials<S> {
    /// Sets up the grant against `token_url` with the client's id and secret, sending its
    /// requests through `service`.
    pub fn new(
        token_url: Uri,
        client_id: impl Into<String>,
        client_secret: SecretString,
        service: S,
    ) -> Self {
        ClientCredentials {
            service: Mutex::new(service),
            config: Arc::new(Config {
                token_url,
                client_id: client_id.into(),
                client_secret,
                scope: None,
                max_attempts: 10,
                max_elapsed: Duration::from_secs(30),
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(8),
                attempt_timeout: Duration::from_secs(10),
                body_limit: 64 * 1024,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Requests this `scope` (space-separated scopes) with each token.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.config_mut().scope = Some(scope.into());
        self
    }

    /// At most this many requests per fetch, the first included (default 10; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config_mut().max_attempts = attempts.max(1);
        self
    }

    /// No retry starts after this much time since the fetch began (default 30 s).
    pub fn max_elapsed(mut self, max: Duration) -> Self {
        self.config_mut().max_elapsed = max;
        self
    }

    /// Backoff after the first transient failure is `base`, doubling up to `max` (defaults
    /// 0.5 s and 8 s); each wait is half that fixed and half random.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        let config = self.config_mut();
        config.base_delay = base;
        config.max_delay = max.max(base);
        self
    }

    /// Each request (answer and body included) may take this long (default 10 s).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().attempt_timeout = timeout;
        self
    }

    /// Token response bodies longer than this are refused (default 64 KiB).
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.config_mut().body_limit = limit;
        self
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Uri {
        &self.config.token_url
    }
}

impl<S, ResB> TokenSource for ClientCredentials<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError>,
{
    fn fetch(&self) -> FetchFuture {
        let service = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(fetch_with_retries(service, Arc::clone(&self.config)))
    }
}

async fn fetch_with_retries<S, ResB>(service: S, config: Arc<Config>) -> Result<Token, TokenError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body,
    ResB::Error: Into<BoxError>,
{
    let url = &config.token_url;
    let secure = match url.scheme_str() {
        Some("https") => true,
        Some("http") => url.host().is_some_and(is_loopback_host),
        _ => false,
    };
    if !secure {
        return Err(TokenError::InsecureTokenUrl);
    }
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = tokio::time::timeout(
            config.attempt_timeout,
            attempt_once(service.clone(), &config),
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
        if attempt >= config.max_attempts || started.elapsed() + delay > config.max_elapsed {
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
    let exp = config.base_delay.saturating_mul(1 << (attempt - 1).min(20));
    let ceiling = exp.min(config.max_delay);
    let half = ceiling / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

type Failure = (TokenError, Option<Duration>);

async fn attempt_once<S, ResB>(service: S, config: &Config) -> Result<Token, Failure>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body,
    ResB::Error: Into<BoxError>,
{
    let sent_at = Instant::now();
    let request = token_request(config);
    let response = service
        .oneshot(request)
        .await
        .map_err(|e| (TokenError::Transport(Arc::new(e.into())), None))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
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
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => Err((rejected(status, &body), None)),
        s => Err((TokenError::Status(s), retry_after)),
    }
}

fn token_request(config: &Config) -> Request<Full<Bytes>> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = &config.scope {
        form.push(("scope", scope));
    }
    let form = serde_urlencoded::to_string(form).unwrap_or_default();
    let mut request = Request::new(Full::new(Bytes::from(form)));
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

fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<ExpiresIn>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Seconds(u64),
    Fractional(f64),
    Text(String),
}

impl ExpiresIn {
    fn seconds(&self) -> Option<u64> {
        match self {
            ExpiresIn::Seconds(s) => Some(*s),
            ExpiresIn::Fractional(f) if f.is_finite() && *f >= 0.0 => Some(*f as u64),
            ExpiresIn::Fractional(_) => None,
            ExpiresIn::Text(t) => t.trim().parse().ok(),
        }
    }
}

fn parse_token(body: &[u8], sent_at: Instant) -> Result<Token, TokenError> {
    // NOTE: serde_json's message may quote the input, so only its position is reported.
    let mut parsed: TokenResponse = serde_json::from_slice(body).map_err(|e| {
        TokenError::InvalidResponse(format!(
            "not a token response ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let result = (|| {
        if let Some(kind) = &parsed.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(TokenError::InvalidResponse(format!(
                    "unsupported token type {:?}",
                    truncate(kind)
                )));
            }
        }
        if parsed.access_token.is_empty() {
            return Err(TokenError::InvalidResponse("empty access token".into()));
        }
        let expires_in = match &parsed.expires_in {
            None => None,
            Some(e) => Some(Duration::from_secs(e.seconds().ok_or_else(|| {
                TokenError::InvalidResponse("expires_in is not a number of seconds".into())
            })?)),
        };
        let header = bearer_header(&parsed.access_token)?;
        // NOTE: the lifetime counts from when the request was sent, erring on the early side.
        Ok(Token::new(header, expires_in.map(|d| sent_at + d)))
    })();
    parsed.access_token.zeroize();
    result
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn rejected(status: StatusCode, body: &[u8]) -> TokenError {
    let parsed: OAuthError = serde_json::from_slice(body).unwrap_or_default();
    TokenError::Rejected {
        status,
        error: parsed
            .error
            .as_deref()
            .map_or_else(|| "unknown".into(), truncate),
        description: parsed.error_description.as_deref().map(truncate),
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 256;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl<S> fmt::Debug for ClientCredentials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("ClientCredentials")
            .field("token_url", &c.token_url)
            .field("client_id", &c.client_id)
            .field("client_secret", &format_args!("[redacted]"))
            .field("scope", &c.scope)
            .field("max_attempts", &c.max_attempts)
            .field("max_elapsed", &c.max_elapsed)
            .finish_non_exhaustive()
    }
}
