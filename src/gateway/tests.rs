use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

use super::{Gateway, GatewayBody, Upstream};
use crate::auth::TokenError;

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
