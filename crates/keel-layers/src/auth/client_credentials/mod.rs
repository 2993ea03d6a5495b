use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use secrecy::SecretString;
use tower::{BoxError, Service};

use super::origin::is_loopback_host;
use super::{FetchFuture, TokenError, TokenSource};

mod fetch;
mod response;

/// The OAuth 2.0 client-credentials grant (RFC 6749 §4.4) over any tower HTTP service.
///
/// Each fetch sends `POST token_url` with `Authorization: Basic base64(client_id:secret)`
/// (marked sensitive) and the form `grant_type=client_credentials` (plus `scope` when set),
/// and reads `access_token` (one or more visible ASCII characters, RFC 6749 `VSCHAR` without
/// the space), `token_type` (must be `bearer`, in any case, when present) and `expires_in`
/// from a JSON answer, with the body capped at [`body_limit`](ClientCredentials::body_limit).
/// A success answer that is not such a token response is a
/// [`TokenError::InvalidResponse`](super::TokenError::InvalidResponse) that never repeats the
/// token.
///
/// - A 400 or 401 answer means the credentials were refused: [`TokenError::Rejected`](super::TokenError::Rejected), with
///   the server's `error` and `error_description`, and no retry.
/// - A 429 or 5xx answer, a transport error or an attempt timeout is transient: the request is
///   retried with jittered exponential backoff (half fixed, half random, honouring a longer
///   `Retry-After`), at most [`max_attempts`](ClientCredentials::max_attempts) times and within
///   [`max_elapsed`](ClientCredentials::max_elapsed) in all. The defaults (10 attempts, 30 s,
///   0.5 s doubling to 8 s, 10 s per attempt) ride out a token endpoint that is down for
///   more than 10 seconds. Past the limits: [`TokenError::Unavailable`](super::TokenError::Unavailable).
/// - The token URL must be `https`, or `http` to a loopback host
///   ([`TokenError::InsecureTokenUrl`](super::TokenError::InsecureTokenUrl) otherwise, from
///   [`try_new`](ClientCredentials::try_new) or [`check`](ClientCredentials::check), else at
///   the first fetch); [`allow_plain_http`](ClientCredentials::allow_plain_http) opts in to
///   plain `http` inside a private network.
///
/// The secret is held in a [`SecretString`]; `Debug` prints `[redacted]` for it and no error
/// or log line carries it or a token.
pub struct ClientCredentials<S, B = Full<Bytes>> {
    service: Mutex<S>,
    config: Arc<Config>,
    body: PhantomData<fn() -> B>,
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
    allow_plain_http: bool,
}

impl Config {
    /// Whether credentials may be sent to the token URL: `https`, `http` to a loopback host,
    /// or `http` anywhere once [`allow_plain_http`](ClientCredentials::allow_plain_http).
    fn check_url(&self) -> Result<(), TokenError> {
        let url = &self.token_url;
        let secure = match url.scheme_str() {
            Some("https") => url.host().is_some(),
            Some("http") => url
                .host()
                .is_some_and(|host| self.allow_plain_http || is_loopback_host(host)),
            _ => false,
        };
        if secure {
            Ok(())
        } else {
            Err(TokenError::InsecureTokenUrl)
        }
    }
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
            body: PhantomData,
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
                allow_plain_http: false,
            }),
        }
    }

    /// [`new`](Self::new), with the token URL checked now rather than at the first fetch.
    ///
    /// # Errors
    ///
    /// [`TokenError::InsecureTokenUrl`] when the URL is not `https`, nor `http` to a loopback
    /// host (for plain `http` in a private network, use [`new`](Self::new), then
    /// [`allow_plain_http`](Self::allow_plain_http) and [`check`](Self::check)).
    pub fn try_new(
        token_url: Uri,
        client_id: impl Into<String>,
        client_secret: SecretString,
        service: S,
    ) -> Result<Self, TokenError> {
        let grant = Self::new(token_url, client_id, client_secret, service);
        grant.check()?;
        Ok(grant)
    }
}

impl<S, B> ClientCredentials<S, B> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Sends the token requests with bodies of type `B2` (built from the form's `Bytes`), so
    /// the grant can share one HTTP client with the API when that client's body type is not
    /// `Full<Bytes>` (the default).
    pub fn request_body<B2: From<Bytes>>(self) -> ClientCredentials<S, B2> {
        ClientCredentials {
            service: self.service,
            config: self.config,
            body: PhantomData,
        }
    }

    /// Checks the token URL as a fetch would: `https`, or `http` to a loopback host, or
    /// `http` anywhere after [`allow_plain_http`](Self::allow_plain_http).
    ///
    /// # Errors
    ///
    /// [`TokenError::InsecureTokenUrl`] otherwise.
    pub fn check(&self) -> Result<(), TokenError> {
        self.config.check_url()
    }

    /// Allows a plain `http` token URL to any host, for a private network whose traffic never
    /// leaves machines you control (a docker-compose `http://auth:8080`). The client secret
    /// and the tokens then travel unencrypted: never the default, never for the internet.
    ///
    /// ```
    /// use http_body_util::Full;
    /// use keel_layers::auth::{ClientCredentials, TokenError};
    /// use secrecy::SecretString;
    /// # let http = tower::service_fn(|_: http::Request<Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::io::Error>(http::Response::new(Full::new(bytes::Bytes::new())))
    /// # });
    /// let url: http::Uri = "http://auth:8080/oauth/token".parse().unwrap();
    /// let refused = ClientCredentials::try_new(url.clone(), "id", SecretString::from("s"), http.clone());
    /// assert!(matches!(refused, Err(TokenError::InsecureTokenUrl)));
    ///
    /// let grant = ClientCredentials::new(url, "id", SecretString::from("s"), http).allow_plain_http();
    /// assert!(grant.check().is_ok());
    /// ```
    pub fn allow_plain_http(mut self) -> Self {
        self.config_mut().allow_plain_http = true;
        self
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

impl<S, B, ResB> TokenSource for ClientCredentials<S, B>
where
    B: From<Bytes> + Send + 'static,
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
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
        Box::pin(fetch::fetch_with_retries::<S, B, ResB>(
            service,
            Arc::clone(&self.config),
        ))
    }
}

impl<S, B> fmt::Debug for ClientCredentials<S, B> {
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
