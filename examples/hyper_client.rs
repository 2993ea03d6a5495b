//! The keel stack on a plain hyper-util client, paging the Genesys Cloud conversation-details
//! query with `keel::paginate`.
//!
//! The client is an ordinary `hyper_util::client::legacy::Client` (rustls, so it also talks
//! to a real org); `keel::KeelLayer` puts the whole stack on top of it, and
//! `PageStream::items()` reads the pages as one stream of conversations, with `?` throughout. With no URL
//! given, the example starts a keel-sim simulator in-process that revokes each token after a
//! few requests and answers one request with 429, so the output shows the stack at work.
//!
//! ```sh
//! cargo run --example hyper_client
//! GENESYS_CLIENT_ID=… GENESYS_CLIENT_SECRET=… cargo run --example hyper_client -- \
//!   --api-url https://api.mypurecloud.ie --login-url https://login.mypurecloud.ie
//! ```

use std::time::Duration;

use clap::Parser;
use futures_util::TryStreamExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use keel::auth::{ClientCredentials, Origin, SecretString, TokenCache};
use keel::backoff::BackoffPolicy;
use keel::body::{BodyExt, Bytes, Full, Limited, ReplayBody};
use keel::http::{header, Request};
use keel::paginate::{FetchError, Fetched, PageStream};
use keel::KeelLayer;
use serde_json::{json, Value};
use tower::{BoxError, Layer, ServiceExt};

/// Largest response body read per page.
const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;
const PAGE_SIZE: u64 = 100;

/// Where to export from.
#[derive(Debug)]
pub(crate) struct Target {
    /// API base URL, e.g. `https://api.mypurecloud.com`.
    pub(crate) api_url: String,
    /// Login base URL, e.g. `https://login.mypurecloud.com`.
    pub(crate) login_url: String,
    /// OAuth client id.
    pub(crate) client_id: String,
    /// OAuth client secret.
    pub(crate) client_secret: SecretString,
    /// The query's interval, `START/END` in ISO-8601.
    pub(crate) interval: String,
}

/// What the run fetched, and what the layers did for it.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Conversation ids, in the order the pages came.
    pub(crate) conversation_ids: Vec<String>,
    /// Pages fetched.
    pub(crate) pages: u64,
    /// Tokens fetched from the token endpoint.
    pub(crate) token_fetches: u64,
    /// Requests replayed after a 401.
    pub(crate) replays_after_401: u64,
    /// Waits after a 429.
    pub(crate) waits_after_429: u64,
}

/// Pages the details query of `target.interval` to the end through the keel stack.
pub(crate) async fn run(target: Target) -> Result<Summary, BoxError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let token_url = format!("{}/oauth/token", target.login_url.trim_end_matches('/'));
    let token_http: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(https.clone());
    let tokens = TokenCache::new(ClientCredentials::new(
        token_url.parse()?,
        target.client_id,
        target.client_secret,
        token_http,
    ))
    .refresh_before(Duration::from_secs(60));

    let backoff = BackoffPolicy::default();
    let backoff_stats = backoff.stats();
    let layer = KeelLayer::new(tokens.clone(), Origin::parse(&target.api_url)?)
        .replay_cap(64 * 1024)
        .backoff(backoff);
    let replays = layer.refresh_stats();
    let api_http: HyperClient<_, ReplayBody<Full<Bytes>>> =
        HyperClient::builder(TokioExecutor::new()).build(https);
    let client = layer.layer(api_http);

    let url = format!(
        "{}/api/v2/analytics/conversations/details/query",
        target.api_url.trim_end_matches('/')
    );
    let interval = target.interval;
    let fetch = |page: u64| {
        let client = client.clone();
        let body = json!({
            "interval": interval,
            "order": "asc",
            "orderBy": "conversationStart",
            "paging": { "pageSize": PAGE_SIZE, "pageNumber": page },
        });
        let request = Request::post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())));
        async move {
            let response = client.oneshot(request?).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_PAGE_BYTES)
                .collect()
                .await?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("page {page}: the API answered {status}").into());
            }
            let mut page: Value = serde_json::from_slice(&body)?;
            let total = page["totalHits"].as_u64();
            let conversations = match page["conversations"].take() {
                Value::Array(items) => items,
                _ => Vec::new(),
            };
            Ok::<_, FetchError>(Fetched::new(conversations).with_total(total))
        }
    };

    let mut conversations = PageStream::page_numbers(PAGE_SIZE, fetch)
        .prefetch(4)
        .items();
    let mut conversation_ids = Vec::new();
    while let Some(conversation) = conversations.try_next().await? {
        let id = conversation["conversationId"]
            .as_str()
            .ok_or("no conversationId")?;
        conversation_ids.push(id.to_owned());
    }
    Ok(Summary {
        conversation_ids,
        pages: conversations.get_ref().pages_yielded(),
        token_fetches: tokens.stats().fetches,
        replays_after_401: replays.replays(),
        waits_after_429: backoff_stats.throttled_waits(),
    })
}

/// A simulator that revokes each token after 5 requests and answers the 3rd request 429.
pub(crate) async fn start_sim() -> Result<keel_sim::SimHandle, BoxError> {
    Ok(keel_sim::Simulator::builder()
        .conversations(2_000)
        .revoke_after_requests(5)
        .fault(
            3,
            keel_sim::Fault::TooManyRequests {
                retry_after_secs: 1,
            },
        )
        .start()
        .await?)
}

/// Command line of the example.
#[derive(Debug, Parser)]
struct Args {
    /// API base URL; without it, a keel-sim simulator is started in-process.
    #[arg(long)]
    api_url: Option<String>,
    /// Login base URL (default: the API URL with `api.` replaced by `login.`).
    #[arg(long)]
    login_url: Option<String>,
    /// Interval of the query, START/END.
    #[arg(long, default_value = "2026-01-01T00:00:00Z/2026-01-08T00:00:00Z")]
    interval: String,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let (target, sim) = match args.api_url {
        Some(api_url) => {
            let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
            let login_url = args
                .login_url
                .unwrap_or_else(|| api_url.replacen("//api.", "//login.", 1));
            let target = Target {
                api_url,
                login_url,
                client_id: var("GENESYS_CLIENT_ID")?,
                client_secret: SecretString::from(var("GENESYS_CLIENT_SECRET")?),
                interval: args.interval,
            };
            (target, None)
        }
        None => {
            let sim = start_sim().await?;
            println!("started keel-sim at {}", sim.base_url());
            let target = Target {
                api_url: sim.base_url(),
                login_url: sim.base_url(),
                client_id: sim.client_id().to_owned(),
                client_secret: SecretString::from(sim.client_secret().to_owned()),
                interval: args.interval,
            };
            (target, Some(sim))
        }
    };
    let summary = run(target).await?;
    println!(
        "{} conversations in {} pages; {} token fetches, {} replays after 401, {} waits after 429",
        summary.conversation_ids.len(),
        summary.pages,
        summary.token_fetches,
        summary.replays_after_401,
        summary.waits_after_429
    );
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok(())
}
