//! A subscriber capturing everything at TRACE through a token fetch (with a transient
//! failure), a 401, the refresh and the replay never sees the client secret or a token.
//!
//! This is its own test binary because it installs a global subscriber: with a thread-local
//! one, callsites first hit by tests on other threads could be cached as disabled.
#![cfg(feature = "client-credentials")]

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use keel_layers::auth::{
    BearerLayer, ClientCredentials, Origin, RefreshOn401Layer, TokenCache, TokenError,
};
use secrecy::SecretString;
use tower::{Layer, ServiceExt};
use tower_test::mock;

const SECRET: &str = "s3cr3t-client-secret";

#[path = "../../../tests/support/capture.rs"]
mod capture;
use capture::Capture;

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

#[tokio::test(start_paused = true)]
async fn trace_logs_of_fetch_401_refresh_and_replay_hold_no_secret_or_token() {
    let capture = Capture::install();

    let (http, mut token_endpoint) = mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let source = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        "client-id",
        SecretString::from(SECRET),
        http,
    );
    tracing::info!(source = ?source, "client credentials configured");
    let tokens = TokenCache::new(source);
    let token_server = tokio::spawn(async move {
        let mut n = 0;
        while let Some((req, send)) = token_endpoint.next_request().await {
            tracing::info!(request = ?req, "token endpoint saw");
            n += 1;
            send.send_response(if n == 1 {
                respond(StatusCode::SERVICE_UNAVAILABLE, String::new())
            } else {
                let json = format!(r#"{{"access_token":"tok-secret-{n}","expires_in":3600}}"#);
                respond(StatusCode::OK, json)
            });
        }
    });

    let (api, mut api_handle) = mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let bearer = BearerLayer::new(
        tokens.clone(),
        Origin::parse("https://api.example.com").unwrap(),
    );
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let stats = refresh.stats();
    let svc = refresh.layer(bearer.layer(api));
    let request = Request::get("https://api.example.com/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let call = tokio::spawn(svc.oneshot(request));

    let (req, send) = api_handle.next_request().await.unwrap();
    tracing::info!(request = ?req, "api saw");
    send.send_response(respond(StatusCode::UNAUTHORIZED, String::new()));
    let (req, send) = api_handle.next_request().await.unwrap();
    tracing::info!(headers = ?req.headers(), "api saw");
    send.send_response(respond(StatusCode::OK, String::new()));
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(stats.replays(), 1);
    let token = tokens.token().await.unwrap();
    tracing::info!(response = ?response, token = ?token, tokens = ?tokens, "done");
    let rejected = TokenError::Rejected {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client".into(),
        description: None,
    };
    tracing::info!(error = %rejected, debug = ?rejected, "error");
    token_server.abort();

    let logs = capture.text();
    // The capture really saw the whole cycle ...
    for expected in [
        "fetching access token",
        "retrying",
        "access token fetched",
        "invalidated",
        "replaying",
        "[redacted]",
        "Sensitive",
    ] {
        assert!(
            logs.contains(expected),
            "missing {expected:?} in logs:\n{logs}"
        );
    }
    // ... and nothing secret.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("client-id:{SECRET}"));
    for secret in [SECRET, basic.as_str(), "tok-secret"] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into logs:\n{logs}"
        );
    }
}
