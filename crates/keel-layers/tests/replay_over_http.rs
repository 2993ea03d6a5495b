//! Over real loopback HTTP/1: a server that answers 401 after reading only the first chunk
//! of a streaming request body (linkerd2-proxy#3216) gets the whole body, once, on the
//! replay with a fresh token.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_layers::auth::{
    token_source_fn, BearerLayer, Origin, RefreshOn401Layer, Token, TokenCache,
};
use keel_layers::replay::ReplayBodyLayer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tower::{ServiceBuilder, ServiceExt};

type Chunk = Result<Frame<Bytes>, Infallible>;
type ChannelBody = StreamBody<futures_util::stream::BoxStream<'static, Chunk>>;

fn channel_body() -> (mpsc::UnboundedSender<Chunk>, ChannelBody) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (
        tx,
        StreamBody::new(Box::pin(stream) as futures_util::stream::BoxStream<'static, Chunk>),
    )
}

fn chunk(s: &'static str) -> Chunk {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

#[derive(Default)]
struct Seen {
    attempts: Vec<Option<String>>,
    replayed_body: Option<Bytes>,
}

async fn serve(
    listener: TcpListener,
    seen: Arc<Mutex<Seen>>,
    first_answered: Arc<Mutex<Option<oneshot::Sender<()>>>>,
) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let seen = Arc::clone(&seen);
        let first_answered = Arc::clone(&first_answered);
        let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
            let seen = Arc::clone(&seen);
            let first_answered = Arc::clone(&first_answered);
            async move {
                let auth = req
                    .headers()
                    .get(AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_owned());
                let first = auth.as_deref() == Some("Bearer token-1");
                seen.lock().unwrap().attempts.push(auth);
                let mut body = req.into_body();
                let status = if first {
                    // Read one chunk, then refuse the token before the rest was sent.
                    let _ = body.frame().await;
                    if let Some(tx) = first_answered.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    StatusCode::UNAUTHORIZED
                } else {
                    let bytes = body.collect().await?.to_bytes();
                    seen.lock().unwrap().replayed_body = Some(bytes);
                    StatusCode::OK
                };
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = status;
                Ok::<_, hyper::Error>(response)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

#[tokio::test]
async fn early_401_on_a_streaming_body_is_replayed_with_every_byte_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (answered_tx, answered_rx) = oneshot::channel();
    tokio::spawn(serve(
        listener,
        Arc::clone(&seen),
        Arc::new(Mutex::new(Some(answered_tx))),
    ));

    let issued = Arc::new(AtomicU32::new(0));
    let tokens = TokenCache::new(token_source_fn(move || {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Token::bearer(&format!("token-{n}"), None) }
    }));
    let refresh = RefreshOn401Layer::new(tokens.clone());
    let replays = refresh.stats();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(1024))
        .layer(refresh)
        .layer(BearerLayer::new(
            tokens.clone(),
            Origin::parse(&origin).unwrap(),
        ))
        .service(client);

    let (tx, body) = channel_body();
    tx.send(chunk("chunk-1;")).unwrap();
    let request = Request::post(format!("{origin}/upload"))
        .body(body)
        .unwrap();
    let call = tokio::spawn(svc.oneshot(request));

    // The rest of the body is produced only after the server has refused the first attempt.
    answered_rx.await.unwrap();
    tx.send(chunk("chunk-2;")).unwrap();
    tx.send(chunk("chunk-3")).unwrap();
    drop(tx);

    let response = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the replay finished")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.attempts,
        [
            Some("Bearer token-1".to_owned()),
            Some("Bearer token-2".to_owned())
        ]
    );
    assert_eq!(
        seen.replayed_body.as_deref(),
        Some(&b"chunk-1;chunk-2;chunk-3"[..])
    );
    assert_eq!(replays.replays(), 1);
    assert_eq!(tokens.stats().fetches, 2);
}
