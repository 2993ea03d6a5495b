//! The auth suite: layers driven with tower-test mocks, time paused.
#![cfg_attr(not(feature = "client-credentials"), allow(unused_imports, dead_code))]

#[cfg(feature = "client-credentials")]
mod bearer;
mod cache;
#[cfg(feature = "client-credentials")]
mod client_credentials;
mod refresh;
#[cfg(feature = "client-credentials")]
mod secrets;
mod store;
mod streaming;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use secrecy::SecretString;
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt};
use tower_test::mock;

use super::*;

const SECRET: &str = "s3cr3t-client-secret";
const API: &str = "https://api.example.com";

type TokenHandle = mock::Handle<Request<Full<Bytes>>, Response<Full<Bytes>>>;
type TokenEndpoint = mock::Mock<Request<Full<Bytes>>, Response<Full<Bytes>>>;
type Api<B> = mock::Mock<Request<B>, Response<Full<Bytes>>>;

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn token_json(token: &str, expires_in: u64) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#),
    )
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    json(status, String::new())
}

/// A `ClientCredentials` over a tower-test mock token endpoint.
#[cfg(feature = "client-credentials")]
fn client_credentials() -> (ClientCredentials<TokenEndpoint>, TokenHandle) {
    let (service, handle) = mock::pair();
    let source = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        "client-id",
        SecretString::from(SECRET),
        service,
    );
    (source, handle)
}

/// A source that hands out `token-1`, `token-2`, … after `delay`, counting its calls.
fn counting_source(
    delay: Duration,
    expires_in: Option<Duration>,
) -> (impl TokenSource, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let source = token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Token::bearer(&format!("token-{n}"), expires_in)
        }
    });
    (source, calls)
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// Asserts that the mock sees no further request, however long we wait (time is paused).
async fn assert_no_more_requests<T, U>(handle: &mut mock::Handle<T, U>) {
    let next = tokio::time::timeout(Duration::from_secs(300), handle.next_request()).await;
    assert!(
        !matches!(next, Ok(Some(_))),
        "an unexpected request was sent"
    );
}

fn auth_header<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_owned())
}

type ApiHandle<B> = mock::Handle<Request<B>, Response<Full<Bytes>>>;

fn bearer_stack<B>(tokens: &TokenCache) -> (Bearer<Api<B>>, ApiHandle<B>) {
    let (api, handle) = mock::pair();
    let layer = BearerLayer::new(tokens.clone(), Origin::parse(API).unwrap());
    (layer.layer(api), handle)
}
