//! The gateway never forwards a caller's credentials: the upstream sees the gateway's own
//! token (for its origin) or nothing, never the caller's `Authorization`, `Cookie` or
//! `Proxy-Authorization`, whatever their case or number. Nor does a caller see the upstream's
//! session: its `Set-Cookie` headers stay with the gateway.

#![cfg(feature = "gateway")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel::auth::{ClientCredentials, Origin, TokenCache};
use keel::backoff::BackoffPolicy;
use keel::gateway::{GatewayLayer, Upstream};
use keel::replay::ReplayBody;
use keel::ServiceBuilderExt;
use keel_sim::Simulator;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A loopback upstream that answers 200 with session cookies of its own and records each
/// request's headers.
async fn upstream() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    log.lock().unwrap().push(req.headers().clone());
                    let response = Response::builder()
                        .header(SET_COOKIE, "upstream-session=UPSTREAM-SESSION-1; HttpOnly")
                        .header("Set-Cookie", "lb-affinity=UPSTREAM-NODE-2; Path=/")
                        .body(Full::new(Bytes::from("ok")));
                    async { Ok::<_, hyper::Error>(response.unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn caller_request() -> Request<Full<Bytes>> {
    Request::get("http://gateway.internal/api/v2/users?pageSize=1")
        .header("authorization", "Bearer CALLER-TOKEN-1")
        .header("Authorization", "Basic Q0FMTEVSOnNlY3JldA==")
        .header("cookie", "session=CALLER-COOKIE")
        .header("proxy-authorization", "Basic CALLER-PROXY")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn assert_no_caller_credentials(headers: &http::HeaderMap) {
    let all = format!("{headers:?}");
    for leaked in [
        "CALLER-TOKEN-1",
        "Q0FMTEVSOnNlY3JldA",
        "CALLER-COOKIE",
        "CALLER-PROXY",
    ] {
        assert!(
            !all.contains(leaked),
            "the upstream saw the caller's {leaked}: {all}"
        );
    }
    assert!(headers.get(COOKIE).is_none());
    assert!(headers.get(PROXY_AUTHORIZATION).is_none());
}

fn assert_no_upstream_session(headers: &http::HeaderMap) {
    let all = format!("{headers:?}");
    assert!(
        !all.contains("UPSTREAM-SESSION-1") && !all.contains("UPSTREAM-NODE-2"),
        "the caller saw the upstream's cookies: {all}"
    );
    assert!(headers.get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn the_upstream_gets_the_gateways_token_never_the_callers() {
    let sim = Simulator::builder().conversations(1).start().await.unwrap();
    let (addr, seen) = upstream().await;
    let base = format!("http://{addr}");
    let tokens = TokenCache::new(ClientCredentials::new(
        sim.token_url().parse().unwrap(),
        sim.client_id(),
        SecretString::from(sim.client_secret()),
        HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>(),
    ));
    let http = HyperClient::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let gateway = ServiceBuilder::new()
        .layer(GatewayLayer::new(
            Upstream::new(&base.parse().unwrap()).unwrap(),
        ))
        .replay_body(64 * 1024)
        .refresh_on_401(tokens.clone())
        .backoff(BackoffPolicy::default())
        .bearer(tokens, Origin::parse(&base).unwrap())
        .service(http);
    let res = gateway.oneshot(caller_request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_no_upstream_session(res.headers());
    res.into_body().collect().await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let values: Vec<_> = seen[0].get_all(AUTHORIZATION).iter().collect();
    assert_eq!(values.len(), 1, "one Authorization: the gateway's");
    assert!(
        values[0].to_str().unwrap().starts_with("Bearer sim-"),
        "{values:?}"
    );
    assert_no_caller_credentials(&seen[0]);
}

#[tokio::test]
async fn without_a_token_of_its_own_the_gateway_forwards_no_authorization() {
    let (addr, seen) = upstream().await;
    let base = format!("http://{addr}");
    let http = HyperClient::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    // No bearer layer: the gateway holds no token for this upstream.
    let gateway = ServiceBuilder::new()
        .layer(GatewayLayer::new(
            Upstream::new(&base.parse().unwrap()).unwrap(),
        ))
        .replay_body(64 * 1024)
        .service(http);
    let res = gateway.oneshot(caller_request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_no_upstream_session(res.headers());
    res.into_body().collect().await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].get(AUTHORIZATION).is_none(), "{:?}", seen[0]);
    assert_no_caller_credentials(&seen[0]);
}
