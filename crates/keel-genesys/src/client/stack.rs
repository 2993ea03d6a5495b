//! Assembles the tower stack of a [`Client`].
//!
//! Outermost first: refresh on 401 and backoff (one retry loop,
//! `BackoffLayer::replay_on`) → bearer → per-attempt timeout →
//! read the body (capped) → trace → gzip decompression → hyper-util client (rustls).
//! Reading the body inside the stack means a connection dropped mid-body is a transport error
//! the backoff layer retries, and the timeout covers the whole attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use keel_layers::auth::{
    BearerLayer, ClientCredentials, Origin, RefreshOn401Layer, RefreshStats, TokenCache,
    TokenSource,
};
use keel_layers::backoff::{BackoffLayer, BackoffStats};
use secrecy::ExposeSecret;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use super::{builder::ClientBuilder, Client, ClientStats, Inner};
use crate::error::{BoxError, Error};

/// The type-erased stack: a request with an in-memory body to a fully read response.
pub(crate) type HttpService =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, BoxError>;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A response body was larger than the configured cap.
#[derive(Debug, thiserror::Error)]
#[error("response body is larger than {limit} bytes")]
pub(crate) struct BodyTooLarge {
    pub(crate) limit: usize,
}

/// Handles on the layers' counters.
#[derive(Debug, Clone)]
pub(crate) struct StatsHandles {
    tokens: TokenCache,
    refresh: RefreshStats,
    backoff: BackoffStats,
    decode_retries: Arc<AtomicU64>,
}

impl StatsHandles {
    fn new(tokens: TokenCache, refresh: RefreshStats, backoff: BackoffStats) -> Self {
        Self {
            tokens,
            refresh,
            backoff,
            decode_retries: Arc::default(),
        }
    }

    /// Counts one request sent again after an undecodable 2xx body.
    pub(crate) fn count_decode_retry(&self) {
        self.decode_retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        let t = self.tokens.stats();
        ClientStats {
            token_fetches: t.fetches,
            token_failures: t.failures,
            replays_401: self.refresh.replays(),
            waits_429: self.backoff.throttled_waits(),
            other_retries: self
                .backoff
                .unavailable_retries()
                .saturating_add(self.backoff.other_retries()),
            decode_retries: self.decode_retries.load(Ordering::Relaxed),
        }
    }
}

fn connector() -> Result<Https, Error> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| Error::config(format!("tls setup failed: {e}")))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

pub(crate) fn build(b: ClientBuilder) -> Result<Client, Error> {
    let https = connector()?;
    // NOTE: the token endpoint gets its own pool: tokens never travel on API connections and
    // the grant's own retries stay independent of the API's backoff.
    let token_http: HyperClient<Https, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(https.clone());
    let api_http: HyperClient<Https, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(https);
    assemble(b, token_http, api_http)
}

/// The stack over any transport: `token_http` carries the client-credentials grant,
/// `api_http` the API requests (the network in [`build`], stand-ins in tests).
pub(crate) fn assemble<T, TB, A, AB>(
    b: ClientBuilder,
    token_http: T,
    api_http: A,
) -> Result<Client, Error>
where
    T: tower::Service<Request<Full<Bytes>>, Response = Response<TB>> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<BoxError>,
    TB: http_body::Body + Send + 'static,
    TB::Data: Send,
    TB::Error: Into<BoxError>,
    A: tower::Service<Request<Full<Bytes>>, Response = Response<AB>>
        + Clone
        + Send
        + Sync
        + 'static,
    A::Future: Send + 'static,
    A::Error: Into<BoxError>,
    AB: http_body::Body<Data = Bytes> + Send + 'static,
    AB::Error: Into<BoxError> + Send + Sync,
{
    let settings = b.settings;
    let token_url = b.env.token_url()?;
    let grant = ClientCredentials::new(
        token_url,
        b.creds.client_id(),
        secrecy::SecretString::from(b.creds.secret().expose_secret().to_owned()),
        token_http,
    );
    // NOTE: no invalidation floor: this client's callers cannot provoke 401s, so each one is
    // a real revocation, and pages in flight must get a fresh token at once (the floor is for
    // gateways, whose callers can).
    let grant: Box<dyn TokenSource> = Box::new(grant);
    let source = match b.wrap_tokens {
        Some(wrap) => wrap(grant),
        None => grant,
    };
    let tokens = TokenCache::new(source)
        .refresh_before(settings.refresh_before)
        .invalidation_floor(Duration::ZERO);
    let origin =
        Origin::from_uri(b.env.api_url()).map_err(|e| Error::config(format!("api url: {e}")))?;

    // NOTE: transport errors, timeouts and 502/504 are retried per request (`RetrySafe` on
    // the read-only queries), never for the whole policy: a job submission repeated after
    // such a failure may start a second job (see `submit.rs`).
    let mut policy = b
        .backoff
        .clone()
        .unwrap_or_default()
        .retry_transport_errors(false)
        .retry_gateway_errors(false);
    if let Some(set) = b.rate_state {
        policy = set(policy);
    }
    let backoff = BackoffLayer::new(policy);
    // NOTE: more than one replay: with several pages in flight, a replay's fresh token can
    // itself be revoked before the replay lands (each 401 invalidates only the token it names,
    // so this costs one refresh per revoked token, not one per request).
    let refresh = RefreshOn401Layer::new(tokens.clone()).max_replays(REPLAYS_ON_401);
    let stats = StatsHandles::new(tokens.clone(), refresh.stats(), backoff.stats());

    let limit = settings.max_body_bytes;
    let svc = ServiceBuilder::new()
        .layer(backoff.replay_on(refresh))
        .layer(BearerLayer::new(tokens, origin))
        .timeout(settings.request_timeout)
        .and_then(move |res: Response<_>| collect(res, limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::decompression::DecompressionLayer::new().gzip(true))
        .service(api_http.map_err(Into::<BoxError>::into))
        .map_err(BoxError::from);

    Ok(Client {
        inner: Arc::new(Inner {
            env: b.env,
            client_id: b.creds.client_id().to_owned(),
            http: BoxCloneSyncService::new(svc),
            settings,
            stats,
        }),
    })
}

/// How many times one request is replayed after 401s, each with a newer token.
const REPLAYS_ON_401: u32 = 3;

/// A client whose requests go to `http` instead of the network (tests of the paging logic).
#[cfg(test)]
pub(crate) fn with_service(b: ClientBuilder, http: HttpService) -> Client {
    use keel_layers::auth::{token_source_fn, TokenError};
    let tokens = TokenCache::new(token_source_fn(|| async {
        Err(TokenError::InvalidResponse("no tokens in this test".into()))
    }));
    let stats = StatsHandles::new(
        tokens.clone(),
        RefreshOn401Layer::new(tokens.clone()).stats(),
        BackoffLayer::new(Default::default()).stats(),
    );
    Client {
        inner: Arc::new(Inner {
            env: b.env,
            client_id: b.creds.client_id().to_owned(),
            http,
            settings: b.settings,
            stats,
        }),
    }
}

async fn collect<B>(res: Response<B>, limit: usize) -> Result<Response<Full<Bytes>>, BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = res.into_parts();
    let bytes = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            Box::new(BodyTooLarge { limit }) as BoxError
        } else {
            e
        }
    })?;
    Ok(Response::from_parts(parts, Full::new(bytes.to_bytes())))
}
