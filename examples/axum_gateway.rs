//! An axum gateway in front of Genesys Cloud (or keel-sim) that holds the credentials.
//!
//! Internal callers (scripts, services, the official Genesys SDKs with their host pointed
//! here) send plain requests to `/api/*` without credentials. The gateway forwards each one
//! through a keel stack: the caller's `Authorization` and `Cookie` are dropped, the gateway's
//! own token is attached (fetched once, refreshed ahead of expiry and on a 401, and the
//! request replayed), 429/503 are waited out, hop-by-hop headers are removed both ways, the
//! upstream's `Set-Cookie` never reaches callers, and request and response bodies stream
//! through (request bodies are kept up to a cap so they can be replayed). One token cache
//! serves every request, so a burst of 401s for one token causes one refresh.
//!
//! A path with a dot segment or an ambiguous encoding (`/api/../oauth/token`,
//! `/api/%2e%2e/…`, `%2f`) is answered `400` before routing, so it can never leave `/api/`.
//! What callers claim in `X-Forwarded-For`, `Forwarded` and `X-Real-IP` is replaced with
//! their peer address (`--forwarding append` when the gateway sits behind proxies you trust).
//!
//! A fleet of gateways (replicas behind a load balancer) shares one OAuth client through
//! Redis with `--redis URL` (or `KEEL_REDIS_URL`; the password only from
//! `KEEL_REDIS_PASSWORD`): one token fetch per token lifetime for all of them, and a 429 seen
//! by one holds the others. The keys are named from the token URL and the client id, as
//! `genesys-export --redis` names them, so gateways and exports of one client share too.
//!
//! `GET /metrics` serves the layers' counters (token fetches, invalidations, 401 replays,
//! retries by cause, 429 gate closures, give-ups) in the Prometheus text format. No label
//! carries a token, a secret or a caller's string.
//!
//! Logs go to stderr (`RUST_LOG`, default `info`), coloured only when stderr is a terminal
//! and `NO_COLOR` is unset or empty.
//!
//! ```sh
//! # against an in-process keel-sim
//! cargo run --example axum_gateway -- --sim
//! # against a real org
//! GENESYS_CLIENT_ID=… GENESYS_CLIENT_SECRET=… \
//!   cargo run --example axum_gateway -- --environment mypurecloud.ie --listen 127.0.0.1:8080
//! # then, with no credentials:
//! curl -X POST http://127.0.0.1:8080/api/v2/analytics/conversations/details/query \
//!   -H 'content-type: application/json' \
//!   -d '{"interval":"2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"}'
//! ```

use std::ffi::OsStr;
use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{Extensions, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use keel::auth::{ClientCredentials, Origin, TokenCache, TokenSource};
use keel::backoff::BackoffPolicy;
use keel::gateway::{check_path, Forwarding, GatewayLayer, Upstream};
use keel::genesys::Environment;
use keel::ServiceBuilderExt as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::SecretString;
use tower::{BoxError, ServiceBuilder};

/// What the gateway forwards to and how.
#[derive(Debug)]
pub(crate) struct GatewayConfig {
    /// Base URL of the API (`https://api.mypurecloud.com`, or keel-sim's base URL).
    pub(crate) api_url: String,
    /// The OAuth token endpoint (`https://login.mypurecloud.com/oauth/token`).
    pub(crate) token_url: String,
    /// OAuth client id of the gateway.
    pub(crate) client_id: String,
    /// OAuth client secret of the gateway.
    pub(crate) client_secret: SecretString,
    /// Largest request body kept for a replay; larger bodies are forwarded once.
    pub(crate) replay_cap: usize,
    /// Time limit of one attempt, until the upstream's response headers (then `504`).
    pub(crate) attempt_timeout: Duration,
    /// How 429/503 are waited out.
    pub(crate) backoff: BackoffPolicy,
    /// What the API is told about the caller's address.
    pub(crate) forwarding: Forwarding,
}

impl GatewayConfig {
    /// A gateway for the API of `env`, with the defaults below.
    pub(crate) fn new(env: &Environment, client_id: String, client_secret: SecretString) -> Self {
        let login = env.login_url().to_string();
        GatewayConfig {
            api_url: env.api_url().to_string(),
            token_url: format!("{}/oauth/token", login.trim_end_matches('/')),
            client_id,
            client_secret,
            replay_cap: 1024 * 1024,
            attempt_timeout: Duration::from_secs(60),
            backoff: BackoffPolicy::default(),
            forwarding: Forwarding::Replace,
        }
    }
}

/// The gateway's router: `/api/*` forwarded through the keel stack; anything else 404; a
/// path with a dot segment or an ambiguous encoding 400, whatever its route.
///
/// Must be called within a tokio runtime. The caller's peer address is read from axum's
/// `ConnectInfo<SocketAddr>` (see [`serve`]).
pub(crate) fn router(config: GatewayConfig) -> Result<Router, BoxError> {
    router_in_fleet(config, None)
}

/// The names under which every process of one OAuth client shares its token and its rate
/// state (the same as `genesys-export --redis`): the token URL or API URL, and the client id.
pub(crate) fn fleet_names(token_url: &str, api_url: &str, client_id: &str) -> (String, String) {
    (
        format!("genesys-token {token_url} {client_id}"),
        format!("genesys-rate {api_url} {client_id}"),
    )
}

/// [`router`], sharing the token and the 429 gate with the other gateways (and exports) of
/// the same client through `redis` when given.
pub(crate) fn router_in_fleet(
    config: GatewayConfig,
    redis: Option<&keel_redis::RedisConfig>,
) -> Result<Router, BoxError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    // NOTE: the token endpoint gets its own pool, so tokens never share a connection with
    // the traffic of callers.
    let token_http: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(https.clone());
    let api_http = HyperClient::builder(TokioExecutor::new()).build(https);

    let (token_name, rate_name) =
        fleet_names(&config.token_url, &config.api_url, &config.client_id);
    let grant: Box<dyn TokenSource> = Box::new(ClientCredentials::new(
        config.token_url.parse()?,
        config.client_id,
        config.client_secret,
        token_http,
    ));
    let mut backoff = config.backoff;
    let tokens = match redis {
        Some(redis) => {
            let conn = redis.connect()?;
            backoff = backoff.rate_state(keel_redis::RedisRateState::new(conn.clone(), &rate_name));
            TokenCache::new(keel_redis::RedisTokenSource::new(grant, conn, &token_name))
        }
        None => TokenCache::new(grant),
    };
    let api: http::Uri = config.api_url.parse()?;
    let upstream = GatewayLayer::new(Upstream::new(&api)?)
        .forwarding(config.forwarding)
        .peer_addr(connect_info);
    let gateway = ServiceBuilder::new()
        .layer(upstream)
        .replay_body(config.replay_cap)
        .refresh_on_401(tokens.clone())
        .backoff(backoff)
        .bearer(tokens, Origin::from_uri(&api)?)
        .timeout(config.attempt_timeout)
        .service(api_http);
    // NOTE: the layer wraps every route and the fallback, so no path reaches a route (or
    // the upstream) before it is checked.
    let metrics = prometheus();
    Ok(Router::new()
        .route_service("/api/{*path}", gateway)
        .route(
            "/metrics",
            axum::routing::get(move || std::future::ready(metrics.render())),
        )
        .layer(middleware::from_fn(refuse_unsafe_paths)))
}

/// The process's Prometheus recorder, installed as the `metrics` facade's global recorder on
/// first use (every router of the process renders the same counters).
pub(crate) fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // NOTE: if the program installed a recorder of its own, that one keeps the
            // counters and /metrics shows none.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The peer address axum's `into_make_service_with_connect_info` put in the request.
fn connect_info(extensions: &Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

/// `400` for a path that could be resolved outside the route it matched.
async fn refuse_unsafe_paths(req: Request, next: Next) -> Response {
    match check_path(req.uri().path()) {
        Ok(()) => next.run(req).await,
        Err(err) => {
            let body =
                format!(r#"{{"status":400,"code":"gateway.path.rejected","message":"{err}"}}"#);
            let json = [(http::header::CONTENT_TYPE, "application/json")];
            (StatusCode::BAD_REQUEST, json, body).into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, with each caller's peer
/// address available to the router.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether log lines may carry ANSI colours: only on a terminal, and not when `NO_COLOR`
/// is set to anything but the empty string (<https://no-color.org>).
pub(crate) fn ansi_colours(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// `--forwarding`: what the API is told about the caller's address.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ForwardingArg {
    /// Replace what callers claim with their peer address.
    Replace,
    /// Append the peer address to what callers (trusted proxies) sent.
    Append,
    /// Send no address at all.
    Remove,
}

impl From<ForwardingArg> for Forwarding {
    fn from(arg: ForwardingArg) -> Self {
        match arg {
            ForwardingArg::Replace => Forwarding::Replace,
            ForwardingArg::Append => Forwarding::Append,
            ForwardingArg::Remove => Forwarding::Remove,
        }
    }
}

/// Command line of the example.
#[derive(Debug, Parser)]
struct Args {
    /// Forward to a keel-sim simulator started in this process (no account needed).
    #[arg(long, conflicts_with = "environment")]
    sim: bool,
    /// Genesys Cloud region domain, e.g. mypurecloud.com, mypurecloud.ie, usw2.pure.cloud.
    #[arg(long, default_value = "mypurecloud.com")]
    environment: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// What the API is told about the caller's address (`X-Forwarded-For`, `Forwarded`,
    /// `X-Real-IP`).
    #[arg(long, value_enum, default_value = "replace")]
    forwarding: ForwardingArg,
    /// Share the token and the 429 gate with the other gateways of this client through this
    /// Redis (default `KEEL_REDIS_URL`; the password only in `KEEL_REDIS_PASSWORD`).
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// The Redis configuration of `--redis` or the environment, with the ACL user and password
/// from the environment only.
fn redis_config(url: Option<&str>) -> Result<Option<keel_redis::RedisConfig>, BoxError> {
    let Some(url) = url else {
        return Ok(keel_redis::RedisConfig::from_env()?);
    };
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    if authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    {
        return Err(
            "--redis: no password on the command line: put it in KEEL_REDIS_PASSWORD".into(),
        );
    }
    let mut config = keel_redis::RedisConfig::new(SecretString::from(url.to_owned()))?;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(user) = var(keel_redis::config::USERNAME_ENV) {
        config = config.username(user);
    }
    if let Some(password) = var(keel_redis::config::PASSWORD_ENV) {
        config = config.password(SecretString::from(password));
    }
    Ok(Some(config))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let no_color = std::env::var_os("NO_COLOR");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(ansi_colours(
            std::io::stderr().is_terminal(),
            no_color.as_deref(),
        ))
        .init();
    let (mut config, sim) = if args.sim {
        let sim = keel_sim::Simulator::builder().start().await?;
        let env = Environment::custom(&sim.base_url(), &sim.base_url())?;
        let secret = SecretString::from(sim.client_secret().to_owned());
        let config = GatewayConfig::new(&env, sim.client_id().to_owned(), secret);
        (config, Some(sim))
    } else {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let id = var(keel::genesys::client::CLIENT_ID_VAR)?;
        let secret = SecretString::from(var(keel::genesys::client::CLIENT_SECRET_VAR)?);
        (
            GatewayConfig::new(&Environment::region(&args.environment)?, id, secret),
            None,
        )
    };
    config.forwarding = args.forwarding.into();
    println!("forwarding /api/* to {}", config.api_url);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    println!("gateway listening on http://{local}");
    tracing::info!(listen = %local, upstream = %config.api_url, "gateway listening");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let app = match redis_config(args.redis.as_deref())? {
        Some(redis) => {
            println!("sharing the token and the rate budget through redis");
            router_in_fleet(config, Some(&redis))?
        }
        None => router(config)?,
    };
    serve(listener, app, shutdown).await?;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(())
}
