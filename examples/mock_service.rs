//! Unit-test your own keel stack: tower-test mocks in place of the API, paused tokio time in
//! place of the clock.
//!
//! The stack under test is the one you would put on a real hyper client. The mock is the API:
//! the test receives each request the stack sends, checks it, and answers it. Paused time
//! makes a 30-second `Retry-After` take no wall time and makes the wait exact, so the test
//! can assert it to the millisecond and never flakes.
//!
//! Two scenarios, each a function a `#[tokio::test(start_paused = true)]` would hold:
//! a revoked token (401, then 200 with a new token) and a rate limit (429 with
//! `Retry-After: 30`, then 200 exactly 30 s later).
//!
//! ```sh
//! cargo run --example mock_service
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel::auth::{token_source_fn, Origin, Token, TokenCache};
use keel::backoff::BackoffPolicy;
use keel::body::{BodyExt, Bytes, Full};
use keel::http::{Request, Response, StatusCode};
use keel::ServiceBuilderExt as _;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_test::mock;

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

const API: &str = "https://api.example.com";

/// What a scenario observed, for the caller to print or assert.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    /// Status the caller of the stack got.
    pub(crate) status: StatusCode,
    /// `Authorization` of each request that reached the API (the mock), in order.
    pub(crate) authorizations: Vec<String>,
    /// Virtual time from the first request reaching the API to the last.
    pub(crate) elapsed: Duration,
    /// Tokens fetched from the token source.
    pub(crate) token_fetches: u64,
}

/// A token source that hands out `token-1`, `token-2`, … (in a real stack:
/// `ClientCredentials`).
fn numbered_tokens() -> TokenCache {
    let issued = Arc::new(AtomicU32::new(0));
    TokenCache::new(token_source_fn(move || {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Token::bearer(&format!("token-{n}"), Some(Duration::from_secs(3600))) }
    }))
}

/// Your stack, as in production, over any inner service: here the mock.
fn client<S>(
    tokens: TokenCache,
    policy: BackoffPolicy,
    api: S,
) -> impl Service<Req, Response = Res, Error = BoxError, Future: Send> + Send
where
    S: Service<Req, Response = Res, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    ServiceBuilder::new()
        .refresh_on_401(tokens.clone())
        .backoff(policy)
        .bearer(tokens, Origin::parse(API).expect("valid origin"))
        .service(api)
}

fn respond(status: u16, headers: &[(&str, &str)]) -> Res {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

/// The next request the stack sends to the mock API, or an error if none comes within an
/// hour of (virtual) time: a stack that gave up would otherwise leave the test waiting.
async fn next_request(
    handle: &mut mock::Handle<Req, Res>,
) -> Result<(Req, mock::SendResponse<Res>), BoxError> {
    tokio::time::timeout(Duration::from_secs(3600), handle.next_request())
        .await
        .map_err(|_| "the stack sent no request within an hour")?
        .ok_or_else(|| "the stack was dropped".into())
}

fn authorization(req: &Req) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned()
}

/// The API rejects the first token (revoked early); the stack invalidates it, fetches a new
/// one and replays the request, and the caller gets the 200.
pub(crate) async fn revoked_token_is_refreshed() -> Result<Observed, BoxError> {
    let tokens = numbered_tokens();
    let (api, mut handle) = mock::pair::<Req, Res>();
    let stack = client(tokens.clone(), BackoffPolicy::default(), api);

    let request = Request::post(format!(
        "{API}/api/v2/analytics/conversations/details/query"
    ))
    .body(Full::new(Bytes::from_static(
        br#"{"interval":"2026-01-01/2026-01-02"}"#,
    )))?;
    let call = tokio::spawn(stack.oneshot(request));

    let mut authorizations = Vec::new();
    let (first, reply) = next_request(&mut handle).await?;
    let started = Instant::now();
    authorizations.push(authorization(&first));
    reply.send_response(respond(401, &[]));

    let (second, reply) = next_request(&mut handle).await?;
    authorizations.push(authorization(&second));
    reply.send_response(respond(200, &[]));
    // The replay carried the same body.
    let first = first.into_body().collect().await?.to_bytes();
    let second = second.into_body().collect().await?.to_bytes();
    assert_eq!(first, second);

    let response = call.await??;
    Ok(Observed {
        status: response.status(),
        authorizations,
        elapsed: started.elapsed(),
        token_fetches: tokens.stats().fetches,
    })
}

/// The API answers 429 with `Retry-After: 30`; the stack waits exactly 30 s (virtual time)
/// and sends the request again with the same token.
pub(crate) async fn rate_limit_waits_for_retry_after() -> Result<Observed, BoxError> {
    let tokens = numbered_tokens();
    let policy = BackoffPolicy::default();
    let stats = policy.stats();
    let (api, mut handle) = mock::pair::<Req, Res>();
    let stack = client(tokens.clone(), policy, api);

    let request = Request::get(format!("{API}/api/v2/users")).body(Full::new(Bytes::new()))?;
    let call = tokio::spawn(stack.oneshot(request));

    let mut authorizations = Vec::new();
    let (first, reply) = next_request(&mut handle).await?;
    let started = Instant::now();
    authorizations.push(authorization(&first));
    reply.send_response(respond(429, &[("retry-after", "30")]));

    // With paused time, the runtime jumps the clock to the backoff timer: no wall time.
    let (second, reply) = next_request(&mut handle).await?;
    authorizations.push(authorization(&second));
    reply.send_response(respond(200, &[]));

    let response = call.await??;
    assert_eq!(stats.throttled_waits(), 1);
    Ok(Observed {
        status: response.status(),
        authorizations,
        elapsed: started.elapsed(),
        token_fetches: tokens.stats().fetches,
    })
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), BoxError> {
    let refreshed = revoked_token_is_refreshed().await?;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert_eq!(
        refreshed.authorizations,
        ["Bearer token-1", "Bearer token-2"]
    );
    println!("401 then 200: {refreshed:?}");

    let throttled = rate_limit_waits_for_retry_after().await?;
    assert_eq!(throttled.status, StatusCode::OK);
    assert_eq!(throttled.elapsed, Duration::from_secs(30));
    println!("429 then 200: {throttled:?}");
    Ok(())
}
