use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

use crate::{Gateway, GatewayBody, Upstream};
use keel_layers::auth::TokenError;

fn upstream() -> Upstream {
    Upstream::new(&"https://api.example.com".parse().unwrap()).unwrap()
}

async fn call<S>(gateway: Gateway<S>, req: Request<Full<Bytes>>) -> (StatusCode, String)
where
    Gateway<S>: tower::Service<
        Request<Full<Bytes>>,
        Response = Response<GatewayBody>,
        Error = std::convert::Infallible,
    >,
{
    let response = gateway.oneshot(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get() -> Request<Full<Bytes>> {
    Request::get("http://gw.local/api/v2/users")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_timeout_below_is_a_504() {
    let inner = ServiceBuilder::new()
        .timeout(Duration::from_millis(1))
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            std::future::pending::<Result<Response<Full<Bytes>>, BoxError>>().await
        }));
    let (status, body) = call(Gateway::new(inner, upstream()), get()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("gateway.upstream.timeout"), "{body}");
}

#[tokio::test]
async fn a_token_failure_is_a_502_that_says_so_without_details() {
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, BoxError>(Box::new(TokenError::source_error(
            "vault said: secret-detail",
        )))
    });
    let (status, body) = call(Gateway::new(inner, upstream()), get()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("gateway.token.unavailable"), "{body}");
    assert!(!body.contains("secret-detail"));
}

#[tokio::test]
async fn any_other_failure_is_a_502() {
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, BoxError>("connection refused".into())
    });
    let (status, body) = call(Gateway::new(inner, upstream()), get()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("gateway.upstream.error"), "{body}");
}

#[tokio::test]
async fn the_inner_service_sees_the_rewritten_request_and_the_caller_a_clean_response() {
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        assert_eq!(req.uri(), "https://api.example.com/api/v2/users");
        assert_eq!(req.headers()["host"], "api.example.com");
        assert!(!req.headers().contains_key("authorization"));
        assert!(!req.headers().contains_key("cookie"));
        let response = Response::builder()
            .header("set-cookie", "upstream-session=1")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("transfer-encoding", "chunked")
            .header("x-kept", "1")
            .body(Full::new(Bytes::from("ok")))?;
        Ok::<_, BoxError>(response)
    });
    let mut req = get();
    req.headers_mut()
        .insert("authorization", "Bearer caller".parse().unwrap());
    req.headers_mut()
        .insert("cookie", "session=caller".parse().unwrap());
    let response = Gateway::new(inner, upstream()).oneshot(req).await.unwrap();
    let headers = response.headers();
    assert!(headers.contains_key("x-kept"));
    for gone in ["connection", "x-hop", "transfer-encoding", "set-cookie"] {
        assert!(!headers.contains_key(gone), "{gone} reached the caller");
    }
}

#[tokio::test]
async fn a_dot_segment_is_a_400_and_never_reaches_the_inner_service() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::from("forwarded")))) }
    });
    let gateway = Gateway::new(inner, upstream());
    for path in [
        "/api/../oauth/token",
        "/api/%2e%2e/oauth/token",
        "/api/.%2E/oauth/token",
        "/api/v2/..%2F..%2Foauth/token",
        "/api/%252e%252e/oauth/token",
    ] {
        let req = Request::get(format!("http://gw.local{path}"))
            .body(Full::default())
            .unwrap();
        let (status, body) = call(gateway.clone(), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("gateway.path.rejected"), "{path}: {body}");
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (status, body) = call(gateway, get()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "forwarded"));
}

/// Answers with the request's forwarding headers, one `name: value` per line.
fn forwarding_echo(
) -> impl tower::Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = BoxError> + Clone
{
    service_fn(|req: Request<Full<Bytes>>| async move {
        let mut lines = Vec::new();
        for name in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            for value in req.headers().get_all(name) {
                lines.push(format!("{name}: {}", value.to_str()?));
            }
        }
        Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(lines.join("\n")))))
    })
}

fn claiming(peer: Option<std::net::SocketAddr>) -> Request<Full<Bytes>> {
    let mut req = Request::get("http://gw.local/api/v2/users")
        .header("x-forwarded-for", "203.0.113.66")
        .header("forwarded", "for=203.0.113.66")
        .header("x-real-ip", "203.0.113.66")
        .body(Full::default())
        .unwrap();
    if let Some(peer) = peer {
        req.extensions_mut().insert(peer);
    }
    req
}

#[tokio::test]
async fn by_default_the_callers_claims_are_replaced_with_its_peer_address() {
    let peer = "192.0.2.10:50123".parse().unwrap();
    let gateway = Gateway::new(forwarding_echo(), upstream());
    let (_, seen) = call(gateway.clone(), claiming(Some(peer))).await;
    assert_eq!(
        seen,
        "x-forwarded-for: 192.0.2.10\nforwarded: for=192.0.2.10\nx-real-ip: 192.0.2.10"
    );
    let (_, seen) = call(gateway, claiming(None)).await;
    assert_eq!(
        seen, "",
        "no peer known: nothing the caller claimed is passed on"
    );
}

#[derive(Clone)]
struct ConnectInfo(std::net::SocketAddr);

#[tokio::test]
async fn append_extends_the_chains_with_the_peer_read_where_the_server_put_it() {
    let layer = super::GatewayLayer::new(upstream())
        .forwarding(super::Forwarding::Append)
        .peer_addr(|ext| ext.get::<ConnectInfo>().map(|c| c.0));
    let gateway = tower::Layer::layer(&layer, forwarding_echo());
    let mut req = claiming(None);
    req.extensions_mut()
        .insert(ConnectInfo("192.0.2.10:50123".parse().unwrap()));
    let (_, seen) = call(gateway, req).await;
    assert_eq!(
        seen,
        "x-forwarded-for: 203.0.113.66, 192.0.2.10\n\
         forwarded: for=203.0.113.66, for=192.0.2.10\n\
         x-real-ip: 203.0.113.66"
    );
}

#[tokio::test]
async fn remove_passes_on_no_address_at_all() {
    let layer = super::GatewayLayer::new(upstream()).forwarding(super::Forwarding::Remove);
    let gateway = tower::Layer::layer(&layer, forwarding_echo());
    let (_, seen) = call(gateway, claiming(Some("192.0.2.10:1".parse().unwrap()))).await;
    assert_eq!(seen, "");
}
