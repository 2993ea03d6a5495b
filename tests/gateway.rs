//! The axum gateway example (`examples/axum_gateway.rs`) over real loopback HTTP, in front of
//! a scripted upstream that plays the API and its token endpoint and records what reached it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{any, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use keel::backoff::BackoffPolicy;
use secrecy::SecretString;
use tokio::net::TcpListener;

#[allow(dead_code)]
#[path = "../examples/axum_gateway.rs"]
mod axum_gateway;

const SECRET: &str = "gateway-secret-value";

/// One request that reached the upstream API.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Upstream {
    tokens_issued: AtomicU32,
    reject_credentials: bool,
    seen: Mutex<Vec<Seen>>,
    calls: AtomicU32,
}

impl Upstream {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn token(State(up): State<Arc<Upstream>>) -> Response {
    if up.reject_credentials {
        return Response::builder()
            .status(401)
            .body(Body::from(r#"{"error":"invalid_client"}"#))
            .unwrap();
    }
    let n = up.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let body = format!(r#"{{"access_token":"token-{n}","token_type":"bearer","expires_in":3600}}"#);
    Response::new(Body::from(body))
}

/// Records the request (body read in full), then answers by path:
/// - `/api/echo`: 200 with the body, hop-by-hop headers and session cookies of its own;
/// - `/api/revoking`: 401 to `token-1`, else 200 with the body;
/// - `/api/limited`: 429 `Retry-After: 0` to the first call, else 200;
/// - `/api/hang`: never answers;
/// - `/api/unauthorized`: always 401.
async fn api(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts.uri.path().to_owned();
    up.seen.lock().unwrap().push(Seen {
        path_and_query: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let call = up.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let auth = parts
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let response = Response::builder();
    let response = match path.as_str() {
        "/api/echo" => response
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic realm=upstream")
            .header("set-cookie", "upstream-session=s-1; HttpOnly; Secure")
            .header("set-cookie", "lb=node-2")
            .header("x-end-to-end", "kept"),
        "/api/revoking" if auth.as_deref() == Some("Bearer token-1") => response.status(401),
        "/api/limited" if call == 1 => response.status(429).header("retry-after", "0"),
        "/api/hang" => std::future::pending().await,
        "/api/unauthorized" => response.status(401),
        _ => response,
    };
    response.body(Body::from(body)).unwrap()
}

/// Streams the request body back as the response body, chunk by chunk.
async fn stream(req: Request) -> Response {
    Response::new(req.into_body())
}

async fn spawn(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn start_upstream(up: Arc<Upstream>) -> String {
    let router = Router::new()
        .route("/oauth/token", post(token))
        .route("/api/stream", any(stream))
        .route("/api/{*path}", any(api))
        .with_state(up);
    spawn(router).await
}

fn config(api_url: &str, token_base: &str) -> axum_gateway::GatewayConfig {
    axum_gateway::GatewayConfig {
        api_url: api_url.to_owned(),
        token_url: format!("{token_base}/oauth/token"),
        client_id: "gateway-client".to_owned(),
        client_secret: SecretString::from(SECRET),
        replay_cap: 64 * 1024,
        attempt_timeout: Duration::from_secs(30),
        backoff: BackoffPolicy::default(),
        forwarding: keel::gateway::Forwarding::Replace,
    }
}

async fn start_gateway(config: axum_gateway::GatewayConfig) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum_gateway::router(config).unwrap();
    tokio::spawn(axum_gateway::serve(
        listener,
        router,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

fn client<B>() -> Client<HttpConnector, B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(req: http::Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
    let response = client().request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn caller_credentials_and_hop_by_hop_headers_stay_on_the_caller_side() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let req = http::Request::post(format!("{gateway}/api/echo?x=1"))
        .header("authorization", "Bearer caller-token")
        .header("cookie", "session=caller")
        .header("proxy-authorization", "Basic Y2FsbGVy")
        .header("connection", "x-caller-hop")
        .header("x-caller-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("x-request-id", "r-1")
        .body(Full::new(Bytes::from_static(b"{\"q\":1}")))
        .unwrap();
    let (parts, body) = send(req).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "{\"q\":1}");

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/api/echo?x=1");
    let h = &seen[0].headers;
    assert_eq!(h["authorization"], "Bearer token-1");
    assert_eq!(h["host"], upstream.trim_start_matches("http://"));
    assert_eq!(h["x-request-id"], "r-1");
    for gone in [
        "cookie",
        "proxy-authorization",
        "x-caller-hop",
        "keep-alive",
        "te",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the API");
    }
    assert!(
        h.get_all("connection")
            .iter()
            .all(|v| !v.to_str().unwrap().contains("x-caller-hop")),
        "the caller's Connection header reached the API"
    );

    for gone in [
        "x-upstream-hop",
        "keep-alive",
        "proxy-authenticate",
        "set-cookie",
    ] {
        assert!(
            !parts.headers.contains_key(gone),
            "{gone} reached the caller"
        );
    }
    assert_eq!(parts.headers["x-end-to-end"], "kept");
    assert_eq!(up.tokens_issued.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_and_response_bodies_stream_through_chunk_by_chunk() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(1);
    let body = StreamBody::new(Box::pin(tokio_stream_from(rx)));
    let req = http::Request::post(format!("{gateway}/api/stream"))
        .body(body)
        .unwrap();
    let response = tokio::spawn(client().request(req));

    // Each chunk must come back before the next one is sent: a gateway that buffered
    // either body would never answer the first.
    tx.send(Ok(http_body::Frame::data(Bytes::from("chunk-1"))))
        .await
        .unwrap();
    let response = within(response).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    for n in 1..=3 {
        let frame = within(body.frame()).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), format!("chunk-{n}"));
        if n < 3 {
            let next = Bytes::from(format!("chunk-{}", n + 1));
            tx.send(Ok(http_body::Frame::data(next))).await.unwrap();
        }
    }
    drop(tx);
    assert!(
        within(body.frame()).await.is_none(),
        "the body ends with the request's"
    );
}

#[tokio::test]
async fn a_rejected_token_is_replaced_and_the_streamed_body_replayed() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let chunks = ["{\"page\":", "1,", "\"size\":100}"]
        .map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(c))));
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let req = http::Request::post(format!("{gateway}/api/revoking"))
        .header("authorization", "Bearer caller-token")
        .body(body)
        .unwrap();
    let response = client().request(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed, "{\"page\":1,\"size\":100}");

    let seen = up.seen();
    let auths: Vec<_> = seen
        .iter()
        .map(|s| s.headers["authorization"].clone())
        .collect();
    assert_eq!(auths, ["Bearer token-1", "Bearer token-2"]);
    assert!(seen.iter().all(|s| s.body == "{\"page\":1,\"size\":100}"));
    assert_eq!(up.tokens_issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_over_the_replay_cap_is_forwarded_once_whole() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let mut cfg = config(&upstream, &upstream);
    cfg.replay_cap = 16;
    let gateway = start_gateway(cfg).await;

    let big = Bytes::from(vec![b'x'; 100_000]);
    let chunks: Vec<_> = big
        .chunks(10_000)
        .map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let req = http::Request::post(format!("{gateway}/api/revoking"))
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let response = client().request(req).await.unwrap();
    // The body could not be kept, so the 401 comes back as it is rather than a replay with
    // a partial or empty body.
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, big);
}

#[tokio::test]
async fn a_429_is_waited_out_before_the_caller_sees_an_answer() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let req = http::Request::post(format!("{gateway}/api/limited"))
        .body(Full::new(Bytes::from_static(b"query")))
        .unwrap();
    let (parts, body) = send(req).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "query");
    assert_eq!(up.seen().len(), 2);
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_is_a_504() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let mut cfg = config(&upstream, &upstream);
    cfg.attempt_timeout = Duration::from_millis(200);
    let gateway = start_gateway(cfg).await;

    let req = http::Request::get(format!("{gateway}/api/hang"))
        .body(Full::default())
        .unwrap();
    let (parts, body) = send(req).await;
    assert_eq!(parts.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(String::from_utf8_lossy(&body).contains("gateway.upstream.timeout"));
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gateway = start_gateway(config(&dead, &upstream)).await;

    let req = http::Request::get(format!("{gateway}/api/v2/users"))
        .body(Full::default())
        .unwrap();
    let (parts, body) = send(req).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    assert!(String::from_utf8_lossy(&body).contains("gateway.upstream.error"));
}

#[tokio::test]
async fn rejected_gateway_credentials_are_a_502_that_names_no_secret() {
    let up = Arc::new(Upstream {
        reject_credentials: true,
        ..Upstream::default()
    });
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let req = http::Request::get(format!("{gateway}/api/v2/users"))
        .body(Full::default())
        .unwrap();
    let (parts, body) = send(req).await;
    assert_eq!(parts.status, StatusCode::BAD_GATEWAY);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("gateway.token.unavailable"), "{body}");
    assert!(!body.contains(SECRET));
    assert!(
        up.seen().is_empty(),
        "nothing reached the API without a token"
    );
}

#[tokio::test]
async fn only_api_paths_are_forwarded() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let req = http::Request::post(format!("{gateway}/oauth/token"))
        .body(Full::default())
        .unwrap();
    let (parts, _) = send(req).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    assert_eq!(up.tokens_issued.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn paths_with_dot_segments_or_ambiguous_encodings_are_a_400_and_never_forwarded() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    for path in [
        "/api/../oauth/token",
        "/api/v2/../../oauth/token",
        "/api/%2e%2e/oauth/token",
        "/api/%2E%2e/oauth/token",
        "/api/.%2E/oauth/token",
        "/api/%2e./oauth/token",
        "/api/%252e%252e/oauth/token",
        "/api/..;x/oauth/token",
        "/api/v2/..%2f..%2foauth/token",
        "/api/v2%2F..%2F..%2Foauth/token",
        "/api/..%5coauth/token",
        "/api/./echo",
        "/api/%2e/echo",
        "/x/../api/echo",
        "/oauth/../api/echo",
    ] {
        let req = http::Request::get(format!("{gateway}{path}"))
            .body(Full::default())
            .unwrap();
        let (parts, body) = send(req).await;
        assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains("gateway.path.rejected"),
            "{path}"
        );
    }
    assert!(up.seen().is_empty(), "a refused path reached the API");
    assert_eq!(up.tokens_issued.load(Ordering::SeqCst), 0);

    // Dots that are not whole segments are ordinary names, and the query is not a path.
    let req = http::Request::get(format!("{gateway}/api/echo/a..b/...?next=/../x"))
        .body(Full::default())
        .unwrap();
    let (parts, _) = send(req).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(up.seen()[0].path_and_query, "/api/echo/a..b/...?next=/../x");
}

fn claiming_an_address(gateway: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("{gateway}/api/echo"))
        .header("x-forwarded-for", "203.0.113.66")
        .header("forwarded", "for=203.0.113.66")
        .header("x-real-ip", "203.0.113.66")
        .header("x-forwarded-host", "admin.internal")
        .body(Full::default())
        .unwrap()
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn by_default_the_api_sees_the_callers_peer_address_not_what_it_claims() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    let (parts, _) = send(claiming_an_address(&gateway)).await;
    assert_eq!(parts.status, StatusCode::OK);
    let h = &up.seen()[0].headers;
    assert_eq!(values(h, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(values(h, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(values(h, "forwarded"), ["for=127.0.0.1"]);
    assert!(!h.contains_key("x-forwarded-host"));
}

#[tokio::test]
async fn behind_trusted_proxies_the_peer_address_is_appended_to_the_chain() {
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let mut cfg = config(&upstream, &upstream);
    cfg.forwarding = keel::gateway::Forwarding::Append;
    let gateway = start_gateway(cfg).await;

    let (parts, _) = send(claiming_an_address(&gateway)).await;
    assert_eq!(parts.status, StatusCode::OK);
    let h = &up.seen()[0].headers;
    assert_eq!(values(h, "x-forwarded-for"), ["203.0.113.66, 127.0.0.1"]);
    assert_eq!(values(h, "forwarded"), ["for=203.0.113.66, for=127.0.0.1"]);
    assert_eq!(values(h, "x-real-ip"), ["203.0.113.66"]);
    assert_eq!(values(h, "x-forwarded-host"), ["admin.internal"]);
}

/// A caller can provoke upstream 401s at will; they must not make the gateway fetch a token
/// per request: at most one refresh per rejected token, and refreshes at least the token
/// cache's invalidation floor (1 s by default) apart, however many callers provoke them.
#[tokio::test]
async fn caller_provoked_401s_cause_at_most_one_token_fetch_per_floor() {
    const FLOOR: Duration = Duration::from_secs(1);
    let up = Arc::new(Upstream::default());
    let upstream = start_upstream(up.clone()).await;
    let gateway = start_gateway(config(&upstream, &upstream)).await;

    // 10 callers, each sending 5 requests one after another: 50 provoked 401s.
    let started = std::time::Instant::now();
    let callers = (0..10).map(|_| {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                let req = http::Request::get(format!("{gateway}/api/unauthorized"))
                    .body(Full::default())
                    .unwrap();
                let (parts, _) = send(req).await;
                assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
            }
        })
    });
    for caller in callers.collect::<Vec<_>>() {
        caller.await.unwrap();
    }
    let floors = started.elapsed().as_secs_f64() / FLOOR.as_secs_f64();
    let fetches = up.tokens_issued.load(Ordering::SeqCst);
    // NOTE: the first token, plus at most one per floor elapsed, plus the one at the end.
    assert!(
        (fetches as f64) <= 2.0 + floors.floor(),
        "50 caller-provoked 401s caused {fetches} token fetches in {floors:.1} floors"
    );
}

/// Fails the test instead of hanging it when the gateway buffers a streamed body.
async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("no progress within 10 s: is a body being buffered?")
}

fn tokio_stream_from<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}
