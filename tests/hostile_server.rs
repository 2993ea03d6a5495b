//! Hostile servers: a body that never ends, a huge `Content-Length`, an answer that never
//! comes, a body that stalls half way. The client must stop each with a typed error, within
//! its timeouts, with memory bounded by its body cap: never hang, never buffer without end.
//!
//! The servers are raw TCP on loopback, so they can send what no well-behaved server would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use keel_genesys::{Client, ConversationQuery, Credentials, Environment, Error, ErrorKind};
use keel_layers::auth::{ClientCredentials, TokenError, TokenSource};
use keel_layers::backoff::BackoffPolicy;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN_JSON: &str =
    r#"{"access_token":"hostile-test-token","token_type":"bearer","expires_in":3600}"#;
const BODY_CAP: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_millis(400);

/// What the hostile API does after reading a request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// 200, chunked, 64 KiB chunks forever.
    EndlessChunked,
    /// 200 with `Content-Length: 10^15`, then bytes forever.
    HugeContentLength,
    /// Never answers (keeps the connection open).
    Silent,
    /// Headers for 1,000 bytes, 10 bytes of body, then nothing.
    StalledBody,
    /// A valid-looking answer one byte every 50 ms, forever (slowloris).
    Trickle,
}

/// Bytes the server managed to write to clients.
#[derive(Debug, Default)]
struct Written(AtomicU64);

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Serves `/oauth/token` properly (when `token_behaves`) and everything else per `behaviour`.
async fn hostile(behaviour: Behaviour, token_behaves: bool) -> (String, Arc<Written>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(Written::default());
    let count = written.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                if token_behaves && head.contains("/oauth/token") {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{TOKEN_JSON}",
                        TOKEN_JSON.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                    return;
                }
                misbehave(behaviour, stream, &count).await;
            });
        }
    });
    (base, written)
}

async fn misbehave(behaviour: Behaviour, mut stream: TcpStream, written: &Written) {
    let chunk = vec![b'x'; 64 * 1024];
    let send = |bytes: usize| written.0.fetch_add(bytes as u64, Ordering::Relaxed);
    match behaviour {
        Behaviour::EndlessChunked => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            while stream.write_all(&frame).await.is_ok() {
                send(chunk.len());
            }
        }
        Behaviour::HugeContentLength => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000000000000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while stream.write_all(&chunk).await.is_ok() {
                send(chunk.len());
            }
        }
        Behaviour::Silent => {
            // NOTE: holds the connection until the client gives up and closes it.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Behaviour::StalledBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"totalHits\"";
            let _ = stream.write_all(head.as_bytes()).await;
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        Behaviour::Trickle => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                if stream.write_all(b" ").await.is_err() {
                    return;
                }
                send(1);
            }
        }
    }
}

fn client(base: &str) -> Client {
    Client::builder(
        Environment::custom(base, base).unwrap(),
        Credentials::new("hostile", SecretString::from("hostile-secret")),
    )
    .request_timeout(TIMEOUT)
    .max_body_bytes(BODY_CAP)
    .prefetch(1)
    .backoff(BackoffPolicy::default().max_attempts(2))
    .build()
    .unwrap()
}

fn query() -> ConversationQuery {
    ConversationQuery::new("2026-01-01T00:00:00Z/2026-01-01T12:00:00Z".parse().unwrap())
}

/// Runs an export against `base` and returns its first error, and how long it took.
async fn first_error(base: &str) -> (Error, Duration) {
    let started = Instant::now();
    let mut export = std::pin::pin!(client(base).conversation_details(query()));
    let outcome = tokio::time::timeout(Duration::from_secs(20), export.next())
        .await
        .expect("the client gave up on its own, within its timeouts");
    match outcome {
        Some(Err(e)) => (e, started.elapsed()),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_at_the_size_cap() {
    let (base, written) = hostile(Behaviour::EndlessChunked, true).await;
    let before = vm_rss();
    let (err, took) = first_error(&base).await;
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
    let sent = written.0.load(Ordering::Relaxed);
    assert!(sent >= BODY_CAP as u64, "the server sent {sent} bytes");
    let grew = vm_rss().saturating_sub(before);
    assert!(
        grew < 64 << 20,
        "memory grew by {grew} bytes reading an endless body"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_not_trusted() {
    let (base, _) = hostile(Behaviour::HugeContentLength, true).await;
    let before = vm_rss();
    let (err, _) = first_error(&base).await;
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    let grew = vm_rss().saturating_sub(before);
    assert!(grew < 64 << 20, "memory grew by {grew} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    let (base, _) = hostile(Behaviour::Silent, true).await;
    let (err, took) = first_error(&base).await;
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(took >= TIMEOUT, "{took:?}");
    assert!(took < TIMEOUT * 10, "gave up after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_half_way_times_out() {
    let (base, _) = hostile(Behaviour::StalledBody, true).await;
    let (err, took) = first_error(&base).await;
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(took < TIMEOUT * 10, "gave up after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_bounded_by_the_request_timeout() {
    let (base, written) = hostile(Behaviour::Trickle, true).await;
    let (err, took) = first_error(&base).await;
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(
        written.0.load(Ordering::Relaxed) > 0,
        "the server did trickle"
    );
    assert!(took < TIMEOUT * 10, "gave up after {took:?}");
}

fn grant(
    base: &str,
) -> ClientCredentials<HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>>
{
    ClientCredentials::new(
        format!("{base}/oauth/token").parse().unwrap(),
        "hostile",
        SecretString::from("hostile-secret"),
        HyperClient::builder(TokioExecutor::new()).build_http(),
    )
    .attempt_timeout(TIMEOUT)
    .max_attempts(2)
    .backoff(Duration::from_millis(10), Duration::from_millis(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_never_answers_times_out() {
    let (base, _) = hostile(Behaviour::Silent, false).await;
    let started = Instant::now();
    let err = grant(&base).fetch().await.expect_err("no answer, no token");
    assert!(
        matches!(&err, TokenError::Unavailable { last, .. } if matches!(**last, TokenError::Timeout(_))),
        "{err:?}"
    );
    assert!(started.elapsed() < TIMEOUT * 10, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_token_response_is_cut_at_its_limit() {
    let (base, _) = hostile(Behaviour::EndlessChunked, false).await;
    let err = grant(&base)
        .body_limit(64 * 1024)
        .fetch()
        .await
        .expect_err("an endless body is no token");
    let text = format!("{err:?}");
    assert!(text.contains("BodyTooLarge"), "{text}");
}

/// The whole export job, too, stops on a silent API with a typed error (exit 4), not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_job_stops_on_a_silent_api() {
    use clap::Parser;
    let (base, _) = hostile(Behaviour::Silent, true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let args = genesys_export::Args::try_parse_from([
        "genesys-export",
        "--api-url",
        &base,
        "--login-url",
        &base,
        "--interval",
        "2026-01-01T00:00:00Z/2026-01-01T12:00:00Z",
        "--request-timeout",
        "300ms",
        "--progress",
        "quiet",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let creds = Credentials::new("hostile", SecretString::from("hostile-secret"));
    let run = genesys_export::run_with_credentials(args, creds);
    let err = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the job gave up by itself")
        .expect_err("nothing to export from a silent API");
    assert_eq!(
        err.exit_code(),
        genesys_export::EXIT_API,
        "{}",
        err.report()
    );
}
