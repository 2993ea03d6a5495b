//! Secrets stay secret: the client secret, the access tokens the simulator issued and any
//! `Authorization` value never reach a log line (at TRACE), an error message, a `Debug`
//! output, the export's output or checkpoint, or the binary's stdout and stderr; tokens go only
//! to the origin they were issued for, and never over plain http to a non-loopback host.
//!
//! This is its own test binary because it installs a global TRACE subscriber (a thread-local
//! one would miss events from runtime worker threads and cache callsites as disabled).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use genesys_export::{self as export, Args};
use http::{header::AUTHORIZATION, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_genesys::{Credentials, Environment};
use keel_layers::auth::TokenSource;
use keel_layers::auth::{
    BearerLayer, ClientCredentials, Origin, OriginError, TokenCache, TokenError,
};
use keel_sim::{Fault, RetryAfterFormat, SimHandle, Simulator};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

const CLIENT_ID: &str = "secrets-client";
const SECRET: &str = "Xq9-SECRET-MARKER-7f3a1c";
const WRONG_SECRET: &str = "Wr0ng-SECRET-MARKER-b2e4";
const INTERVAL: &str = "2026-01-01T00:00:00.000Z/2026-01-02T00:00:00.000Z";

#[path = "support/capture.rs"]
mod capture;
use capture::Capture;

/// Installs (once) a TRACE subscriber for every target, writing to a buffer.
fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(Capture::install)
}

/// Where `text` holds a token of the simulator's shape (`sim-` and 40 hex digits).
fn find_sim_token(text: &str) -> Option<&str> {
    text.match_indices("sim-").find_map(|(i, _)| {
        let rest = &text[i + 4..];
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        (hex >= 40).then(|| &text[i..i + 4 + hex])
    })
}

/// Fails naming `what` if `text` holds a secret, a simulator token or an `Authorization` value.
fn assert_clean(what: &str, text: &str) {
    let basic = |secret: &str| base64(format!("{CLIENT_ID}:{secret}").as_bytes());
    for (name, needle) in [
        ("the client secret", SECRET.to_owned()),
        ("the wrong client secret", WRONG_SECRET.to_owned()),
        ("a Basic credential", basic(SECRET)),
        ("a Basic credential", basic(WRONG_SECRET)),
        ("an Authorization value", "Bearer sim-".to_owned()),
        ("an Authorization value", "bearer sim-".to_owned()),
    ] {
        if let Some(at) = text.find(&needle) {
            let from = at.saturating_sub(200);
            panic!(
                "{what} holds {name} at byte {at}: …{}…",
                &text[from..(at + 60).min(text.len())]
            );
        }
    }
    if let Some(token) = find_sim_token(text) {
        panic!(
            "{what} holds a token the simulator issued: {}…",
            &token[..12]
        );
    }
}

/// Standard base64 with padding (the form of a Basic credential).
fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn args(sim: &SimHandle, out: &Path) -> Args {
    let base = sim.base_url();
    Args::try_parse_from([
        "genesys-export",
        "--api-url",
        &base,
        "--login-url",
        &base,
        "--interval",
        INTERVAL,
        "--page-size",
        "20",
        // NOTE: one page at a time, so the 3 malformed answers are the attempts at one page.
        "--prefetch",
        "1",
        "--request-timeout",
        "5s",
        "--progress",
        "log",
        "--log-every",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--resume",
    ])
    .unwrap()
}

async fn faulty_sim(format: RetryAfterFormat) -> SimHandle {
    Simulator::builder()
        .conversations(150)
        .data_span(Duration::from_secs(86_400))
        .credentials(CLIENT_ID, SECRET)
        .token_outage_requests(1)
        .retry_after_format(format)
        .faults([
            (2, Fault::RevokeToken),
            (
                4,
                Fault::TooManyRequests {
                    retry_after_secs: 1,
                },
            ),
            (
                5,
                Fault::TooManyRequests {
                    retry_after_secs: 1,
                },
            ),
            (7, Fault::Unavailable),
            (9, Fault::Drop),
            (11, Fault::TruncatedBody),
            // Malformed on every attempt (the first and its 2 decode retries): stops the run.
            (13, Fault::MalformedJson),
            (14, Fault::MalformedJson),
            (15, Fault::MalformedJson),
        ])
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_export_at_trace_leaks_no_secret_or_token_anywhere() {
    let capture = logs();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = String::new();

    for format in [RetryAfterFormat::Seconds, RetryAfterFormat::HttpDate] {
        let sim = faulty_sim(format).await;
        let out = dir.path().join(format!("{format:?}.ndjson"));
        let creds = || Credentials::new(CLIENT_ID, SecretString::from(SECRET));
        seen.push_str(&format!("{:?}\n", creds()));

        // The page malformed on every attempt stops the first run; the second resumes to the end.
        let first = export::run_with_credentials(args(&sim, &out), creds()).await;
        let err = first.expect_err("a malformed page stops the export");
        seen.push_str(&format!("{}\n{err:?}\n", err.report()));
        let checkpoint = dir.path().join(format!("{format:?}.ndjson.checkpoint"));
        seen.push_str(&std::fs::read_to_string(&checkpoint).unwrap());
        let summary = export::run_with_credentials(args(&sim, &out), creds())
            .await
            .expect("the resumed export completes");
        seen.push_str(&format!("{summary}\n{summary:?}\n"));
        let written = std::fs::read_to_string(&out).unwrap();
        let truth: Vec<String> = sim
            .ground_truth(&serde_json::json!({ "interval": INTERVAL }))
            .unwrap()
            .collect();
        assert_eq!(written.lines().count(), truth.len());
        seen.push_str(&written);

        let s = sim.stats();
        assert!(
            s.tokens_issued >= 3,
            "tokens were revoked and replaced: {s:?}"
        );
        assert!(
            s.revoked_token >= 1 && s.rate_limited >= 2 && s.unavailable >= 1,
            "{s:?}"
        );
        assert!(
            s.dropped >= 1 && s.truncated >= 1 && s.malformed >= 3,
            "{s:?}"
        );
        assert!(s.token_unavailable >= 1, "{s:?}");
    }

    // A rejected credential: exit code 3, and neither secret in the message.
    let sim = faulty_sim(RetryAfterFormat::Seconds).await;
    let out = dir.path().join("rejected.ndjson");
    let err = export::run_with_credentials(
        args(&sim, &out),
        Credentials::new(CLIENT_ID, SecretString::from(WRONG_SECRET)),
    )
    .await
    .expect_err("a wrong secret is rejected");
    assert_eq!(
        err.exit_code(),
        export::EXIT_CREDENTIALS,
        "{}",
        err.report()
    );
    seen.push_str(&format!("{}\n{err:?}\n", err.report()));
    assert!(sim.stats().token_rejections >= 1);

    // The detector finds a real simulator token (so its silence below means something).
    let token = fetch_token_directly(&sim).await;
    assert_eq!(
        find_sim_token(&format!("x {token} y")),
        Some(token.as_str())
    );

    let logs = capture.text();
    assert!(
        logs.contains("TRACE") && logs.contains("DEBUG") && logs.contains("401"),
        "the subscriber captured the run at TRACE ({} bytes)",
        logs.len()
    );
    assert_clean("the TRACE logs", &logs);
    assert_clean(
        "errors, Debug output, summaries, checkpoints and output files",
        &seen,
    );
}

/// Gets a token from the simulator with a plain client (test-only): a sample of what a
/// leaked token would look like.
async fn fetch_token_directly(sim: &SimHandle) -> String {
    let http = HyperClient::builder(TokioExecutor::new()).build_http();
    let source = ClientCredentials::new(
        sim.token_url().parse().unwrap(),
        sim.client_id(),
        SecretString::from(sim.client_secret()),
        http,
    );
    let token = source.fetch().await.unwrap();
    let value = token.header_value().to_str().unwrap().to_owned();
    value.strip_prefix("Bearer ").unwrap().to_owned()
}

/// A loopback server that answers 200 and records the `Authorization` header of each request.
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let auth = req
                        .headers()
                        .get(AUTHORIZATION)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    log.lock().unwrap().push(auth);
                    async { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("ok")))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn tokens_go_only_to_the_origin_they_were_issued_for() {
    let sim = Simulator::builder().conversations(1).start().await.unwrap();
    let (api, api_seen) = recorder().await;
    let (other, other_seen) = recorder().await;
    let http = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let tokens = TokenCache::new(ClientCredentials::new(
        sim.token_url().parse().unwrap(),
        sim.client_id(),
        SecretString::from(sim.client_secret()),
        http.clone(),
    ));
    let origin = Origin::parse(&format!("http://{api}")).unwrap();
    let client = ServiceBuilder::new()
        .layer(BearerLayer::new(tokens, origin))
        .service(http);
    let get = |uri: String| {
        let client = client.clone();
        async move {
            let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
            let res = client.oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.into_body().collect().await.unwrap();
        }
    };
    get(format!("http://{api}/api/v2/users")).await;
    get(format!("http://{other}/api/v2/users")).await;
    // Same host, other port; and the same server under another host name.
    get(format!("http://127.0.0.1:{}/x", other.port())).await;
    get(format!("http://localhost:{}/x", api.port())).await;

    let api_seen = api_seen.lock().unwrap().clone();
    let other_seen = other_seen.lock().unwrap().clone();
    assert_eq!(api_seen.len(), 2);
    let sent = api_seen[0]
        .as_deref()
        .expect("the issuing origin gets the token");
    assert!(sent.starts_with("Bearer sim-"), "a real token was attached");
    assert_eq!(
        api_seen[1], None,
        "localhost is another origin than 127.0.0.1"
    );
    assert_eq!(other_seen, vec![None, None], "no token for another origin");
}

#[test]
fn plain_http_is_refused_for_credentials_and_tokens_unless_loopback() {
    for bad in [
        "http://example.com",
        "http://10.0.0.1:8080",
        "http://api.mypurecloud.com",
    ] {
        assert!(
            Environment::custom(bad, "https://login.example.com").is_err(),
            "api {bad}"
        );
        assert!(
            Environment::custom("https://api.example.com", bad).is_err(),
            "login {bad}"
        );
        assert!(
            matches!(Origin::parse(bad), Err(OriginError::InsecureHost(_))),
            "{bad}"
        );
    }
    for ok in ["http://127.0.0.1:1", "http://localhost:2", "http://[::1]:3"] {
        assert!(Environment::custom(ok, ok).is_ok(), "{ok}");
        assert!(Origin::parse(ok).is_ok(), "{ok}");
    }
    assert!(Environment::custom("https://api.example.com", "https://login.example.com").is_ok());
}

#[tokio::test]
async fn the_client_secret_is_never_sent_over_plain_http_to_a_remote_host() {
    let sent = Arc::new(Mutex::new(0u32));
    let count = sent.clone();
    let http = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        *count.lock().unwrap() += 1;
        async { Ok::<_, io::Error>(Response::new(Full::new(Bytes::new()))) }
    });
    let source = ClientCredentials::new(
        "http://login.example.com/oauth/token".parse().unwrap(),
        CLIENT_ID,
        SecretString::from(SECRET),
        http,
    );
    let err = source
        .fetch()
        .await
        .expect_err("plain http to a remote host");
    assert!(matches!(err, TokenError::InsecureTokenUrl), "{err:?}");
    assert_eq!(*sent.lock().unwrap(), 0, "nothing was sent");
    assert_clean("the error", &format!("{err} {err:?}"));
}

#[test]
fn the_client_secret_is_held_in_a_redacting_zeroizing_type() {
    fn zeroized_on_drop<T: secrecy::zeroize::ZeroizeOnDrop>(_: &T) {}
    fn exposed_only_on_purpose<T: secrecy::ExposeSecret<str>>(_: &T) {}
    let secret = SecretString::from(SECRET);
    zeroized_on_drop(&secret);
    exposed_only_on_purpose(&secret);
    assert!(!format!("{secret:?}").contains(SECRET));
    let creds = Credentials::new(CLIENT_ID, secret);
    assert_clean("Credentials' Debug", &format!("{creds:?} {creds:#?}"));
    let grant = ClientCredentials::new(
        "https://login.example.com/oauth/token".parse().unwrap(),
        CLIENT_ID,
        SecretString::from(SECRET),
        tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, io::Error>(Response::new(Full::new(Bytes::new())))
        }),
    );
    assert_clean("ClientCredentials' Debug", &format!("{grant:?} {grant:#?}"));
}

/// The `genesys-export` binary next to this test's own executable (built by
/// `cargo build -p genesys-export` or any workspace test run), if there.
fn export_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("genesys-export");
    bin.exists().then_some(bin)
}

/// Whether a missing binary must fail the test rather than skip it: in CI (`CI` set, as CI
/// services do) or with `KEEL_REQUIRE_EXPORT_BINARY=1` (as `.ci/run` sets).
fn binary_required(ci: Option<&str>, require: Option<&str>) -> bool {
    ci.is_some_and(|v| !v.is_empty() && v != "0" && v != "false") || require == Some("1")
}

#[test]
fn a_missing_binary_fails_in_ci_and_skips_elsewhere() {
    assert!(binary_required(Some("true"), None));
    assert!(binary_required(Some("1"), None));
    assert!(binary_required(None, Some("1")));
    assert!(!binary_required(None, None));
    assert!(!binary_required(Some(""), Some("0")));
    assert!(!binary_required(Some("false"), None));
}

/// The binary itself at `RUST_LOG=trace`, NDJSON to stdout: nothing secret on stdout or
/// stderr, through faults and a rejected credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_at_rust_log_trace_prints_no_secret_or_token() {
    let Some(bin) = export_binary() else {
        let var = |name| std::env::var(name).ok();
        assert!(
            !binary_required(
                var("CI").as_deref(),
                var("KEEL_REQUIRE_EXPORT_BINARY").as_deref()
            ),
            "genesys-export is not built next to this test and CI / KEEL_REQUIRE_EXPORT_BINARY=1 \
             require it: run `cargo build -p genesys-export --bin genesys-export` first"
        );
        eprintln!(
            "SKIPPED: genesys-export is not built; run `cargo build -p genesys-export --bin genesys-export` first"
        );
        return;
    };
    let sim = faulty_sim(RetryAfterFormat::HttpDate).await;
    let base = sim.base_url();
    let run = |secret: &'static str| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args([
            "--api-url",
            &base,
            "--login-url",
            &base,
            "--interval",
            INTERVAL,
            "--page-size",
            "20",
            "--prefetch",
            "1",
            "--progress",
            "log",
        ])
        .env("GENESYS_CLIENT_ID", CLIENT_ID)
        .env("GENESYS_CLIENT_SECRET", secret)
        .env("RUST_LOG", "trace")
        .kill_on_drop(true);
        async move { cmd.output().await.unwrap() }
    };
    // The page malformed on every attempt (requests 13 to 15) stops it with exit 4; everything
    // before is on stdout.
    let faulty = run(SECRET).await;
    let stdout = String::from_utf8_lossy(&faulty.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&faulty.stderr).into_owned();
    assert_eq!(faulty.status.code(), Some(4), "{stderr}");
    assert!(
        stdout.lines().count() >= 20,
        "pages were exported before the stop"
    );
    assert!(stderr.contains("TRACE"), "RUST_LOG=trace took effect");
    assert!(sim.stats().revoked_token >= 1 && sim.stats().rate_limited >= 2);
    assert_clean("the binary's stdout", &stdout);
    assert_clean("the binary's stderr", &stderr);

    let rejected = run(WRONG_SECRET).await;
    let stderr = String::from_utf8_lossy(&rejected.stderr).into_owned();
    assert_eq!(rejected.status.code(), Some(3), "{stderr}");
    assert_clean("the binary's stderr (rejected)", &stderr);
    assert_clean(
        "the binary's stdout (rejected)",
        &String::from_utf8_lossy(&rejected.stdout),
    );
}
