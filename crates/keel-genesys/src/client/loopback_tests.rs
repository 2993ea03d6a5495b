//! The assembled stack over real loopback HTTP against a small hand-made server: gzip, the
//! body cap, what reaches the wire.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

use crate::{Client, ConversationQuery, Credentials, Environment, Error};

/// Requests the server saw: (path, accept-encoding, authorization).
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// Serves a token and details pages of `total` conversations of about `padding` bytes each,
/// gzip-compressed when asked.
async fn server(total: usize, padding: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let svc = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let h = |name| {
                req.headers()
                    .get(name)
                    .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
            };
            let path = req.uri().path().to_owned();
            log.lock().unwrap().push((
                path.clone(),
                h(header::ACCEPT_ENCODING),
                h(header::AUTHORIZATION),
            ));
            let body = if path == "/oauth/token" {
                r#"{"access_token":"tok-1","token_type":"bearer","expires_in":3600}"#.to_owned()
            } else {
                let q: serde_json::Value =
                    serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes())
                        .unwrap();
                let size = q["paging"]["pageSize"].as_u64().unwrap() as usize;
                let number = q["paging"]["pageNumber"].as_u64().unwrap() as usize;
                let conversations: Vec<String> = ((number - 1) * size..(number * size).min(total))
                    .map(|i| {
                        format!(
                            r#"{{"conversationId":"c-{i}","padding":"{}"}}"#,
                            "x".repeat(padding)
                        )
                    })
                    .collect();
                format!(
                    r#"{{"totalHits":{total},"conversations":[{}]}}"#,
                    conversations.join(",")
                )
            };
            let mut res = Response::new(Full::new(Bytes::from(body)));
            res.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            *res.status_mut() = StatusCode::OK;
            Ok::<_, Infallible>(res)
        }
    });
    let svc = ServiceBuilder::new()
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .service(svc);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = svc.clone();
            let svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, seen)
}

fn client(url: &str, max_body: usize) -> Client {
    let env = Environment::custom(url, url).unwrap();
    let creds = Credentials::new("id", SecretString::from("s3cret"));
    Client::builder(env, creds)
        .max_body_bytes(max_body)
        .build()
        .unwrap()
}

fn query() -> ConversationQuery {
    ConversationQuery::new("2026-01-01/2026-01-02".parse().unwrap())
}

#[tokio::test]
async fn gzip_pages_are_asked_for_and_decompressed() {
    let (url, seen) = server(20, 200).await;
    let pages: Vec<_> = client(&url, 1 << 20)
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].conversations.len(), 20);
    assert!(pages[0].conversations[3]
        .get()
        .starts_with(r#"{"conversationId":"c-3""#));
    let seen = seen.lock().unwrap();
    let api: Vec<_> = seen.iter().filter(|s| s.0.starts_with("/api/")).collect();
    assert_eq!(api.len(), 1);
    assert!(
        api[0].1.as_deref().unwrap_or("").contains("gzip"),
        "{api:?}"
    );
    assert_eq!(api[0].2.as_deref(), Some("Bearer tok-1"));
    let token: Vec<_> = seen.iter().filter(|s| s.0 == "/oauth/token").collect();
    assert_eq!(token.len(), 1);
    assert!(
        token[0].2.as_deref().unwrap().starts_with("Basic "),
        "client credentials use basic auth"
    );
}

#[tokio::test]
async fn a_page_over_the_body_cap_is_a_decode_error_and_not_retried() {
    let (url, seen) = server(100, 200).await;
    let err = client(&url, 8 * 1024)
        .conversation_details(query())
        .try_next()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode { reason, .. } if reason.contains("8192")),
        "{err:?}"
    );
    let api = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.0.starts_with("/api/"))
        .count();
    assert_eq!(api, 1);
}
