//! A stack with the bearer layer above refresh-on-401 never refreshes: the 401 reaches
//! `RefreshOn401` before `Bearer` has named the token it sent. That must not pass silently:
//! one WARN (per layer, not per request) says the layers are in the wrong order.
//!
//! Its own test binary: it installs a global subscriber (see `auth_logs.rs`).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use keel_layers::auth::{token_source_fn, Origin, Token, TokenCache};
use keel_layers::ServiceBuilderExt as _;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

#[path = "../../../tests/support/capture.rs"]
mod capture;
use capture::Capture;

const WARNING: &str = "is the bearer layer above refresh_on_401";

#[tokio::test]
async fn a_401_below_a_misordered_bearer_layer_warns_once() {
    let capture = Capture::install();
    let tokens = TokenCache::new(token_source_fn(|| async { Token::bearer("t", None) }));
    let api = service_fn(|_req: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        Ok::<_, BoxError>(response)
    });
    let client = ServiceBuilder::new()
        .bearer(
            tokens.clone(),
            Origin::parse("https://api.example.com").unwrap(),
        )
        .refresh_on_401(tokens.clone())
        .service(api);
    for _ in 0..3 {
        let request = Request::get("https://api.example.com/x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let logs = capture.text();
    let warnings: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(WARNING))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!(tokens.stats().fetches, 1, "never refreshed");
}
