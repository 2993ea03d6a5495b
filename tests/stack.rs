//! `KeelLayer`: the whole stack in order, with a service type a struct can name.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream;
use http_body::Frame;
use http_body_util::StreamBody;
use keel::auth::{token_source_fn, Origin, Token, TokenCache};
use keel::backoff::BackoffPolicy;
use keel::body::{BodyExt, Bytes, Full, ReplayBody};
use keel::http::{Request, Response, StatusCode};
use keel::{KeelLayer, KeelService};
use tower::{BoxError, Layer, Service, ServiceExt};

type Streaming = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A scripted API: 401 for `token-1`, one 429, then 200; records what each attempt carried.
#[derive(Clone, Default)]
struct Api {
    seen: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Service<Request<ReplayBody<Streaming>>> for Api {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReplayBody<Streaming>>) -> Self::Future {
        let seen = self.seen.clone();
        Box::pin(async move {
            let token = req.headers()["authorization"].to_str()?.to_owned();
            let body = req.into_body().collect().await?.to_bytes();
            let attempt = {
                let mut seen = seen.lock().unwrap();
                seen.push((token.clone(), body));
                seen.len()
            };
            let status = match (attempt, token.as_str()) {
                (_, "Bearer token-1") => StatusCode::UNAUTHORIZED,
                (2, _) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::OK,
            };
            Ok(Response::builder()
                .status(status)
                .header("retry-after", "3")
                .body(Full::new(Bytes::new()))?)
        })
    }
}

/// The type a user stores (in an axum `State`, say): no five-deep type to spell.
struct AppState {
    api: KeelService<Api>,
}

#[tokio::test(start_paused = true)]
async fn keel_layer_refreshes_backs_off_and_replays_a_streaming_body_in_one_call() {
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let tokens = TokenCache::new(token_source_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Token::bearer(&format!("token-{n}"), None) }
    }));
    let policy = BackoffPolicy::default();
    let backoff = policy.stats();
    let layer = KeelLayer::new(tokens, Origin::parse("https://api.example.com").unwrap())
        .replay_cap(1024)
        .backoff(policy);
    let refresh = layer.refresh_stats();
    let api = Api::default();
    let state = AppState {
        api: layer.layer(api.clone()),
    };

    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from_static(b"{\"page\":"))),
        Ok(Frame::data(Bytes::from_static(b"1}"))),
    ];
    let request = Request::post("https://api.example.com/api/v2/query")
        .body(StreamBody::new(stream::iter(chunks)))
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = state.api.oneshot(request).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let seen = api.seen.lock().unwrap().clone();
    let tokens_sent: Vec<_> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        tokens_sent,
        ["Bearer token-1", "Bearer token-2", "Bearer token-2"]
    );
    for (_, body) in &seen {
        assert_eq!(body, "{\"page\":1}", "every attempt carried the whole body");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(refresh.replays(), 1);
    assert_eq!(backoff.throttled_waits(), 1);
    assert_eq!(
        started.elapsed().as_secs(),
        3,
        "waited what Retry-After said"
    );
}

#[tokio::test]
async fn keel_layer_sends_the_token_to_its_origin_only() {
    let tokens = TokenCache::new(token_source_fn(|| async { Token::bearer("t", None) }));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let api = tower::service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        record
            .lock()
            .unwrap()
            .push(req.headers().contains_key("authorization"));
        async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::new()))) }
    });
    let client =
        KeelLayer::new(tokens, Origin::parse("https://api.example.com").unwrap()).layer(api);
    for uri in [
        "https://api.example.com/a",
        "https://elsewhere.example.com/a",
    ] {
        let request = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
        client.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), [true, false]);
}
