//! Measures how many token-authenticated details-query pages per second keel-sim serves on
//! loopback, with a plain hyper-util client and N concurrent requesters.
//!
//! `cargo run --release -p keel-sim --example sim_throughput -- --concurrency 32 --seconds 5`
//! (add `--url http://127.0.0.1:PORT` to measure a separately running `keel-sim` binary).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_sim::Simulator;

/// keel-sim throughput measurement.
#[derive(Debug, Parser)]
struct Args {
    /// Concurrent requesters (each keeps one request in flight).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measurement time, seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// `paging.pageSize` of each request.
    #[arg(long, default_value_t = 1)]
    page_size: u64,
    /// Measure this running simulator instead of an in-process one (credentials sim-client /
    /// sim-secret).
    #[arg(long)]
    url: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let (base, _sim) = match &args.url {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let sim = Simulator::builder()
                .conversations(200_000)
                .start()
                .await
                .unwrap();
            (sim.base_url(), Some(sim))
        }
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http();

    let basic = base64::engine::general_purpose::STANDARD.encode("sim-client:sim-secret");
    let req = Request::post(format!("{base}/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .unwrap();
    let resp = client.request(req).await.expect("token request");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let token: serde_json::Value = serde_json::from_slice(&body).expect("token json");
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().expect("access_token")
    );

    let body = Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "interval": "2026-01-01T00:00:00Z/2026-01-08T00:00:00Z",
            "paging": {"pageSize": args.page_size, "pageNumber": 1},
        }))
        .unwrap(),
    );
    let uri = format!("{base}/api/v2/analytics/conversations/details/query");
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (client, uri, bearer, body) =
                (client.clone(), uri.clone(), bearer.clone(), body.clone());
            let (done, failed, bytes, stop) =
                (done.clone(), failed.clone(), bytes.clone(), stop.clone());
            let page_count = (200_000 / args.page_size).clamp(1, 1000);
            tokio::spawn(async move {
                let mut n = w as u64;
                while !stop.load(Relaxed) {
                    n += 1;
                    let page = (n % page_count) + 1;
                    let body = if page == 1 {
                        body.clone()
                    } else {
                        let text = String::from_utf8_lossy(&body)
                            .replace("\"pageNumber\":1", &format!("\"pageNumber\":{page}"));
                        Bytes::from(text)
                    };
                    let req = Request::builder()
                        .method(Method::POST)
                        .uri(&uri)
                        .header("authorization", &bearer)
                        .header("content-type", "application/json")
                        .body(Full::new(body))
                        .unwrap();
                    match client.request(req).await {
                        Ok(resp) if resp.status() == StatusCode::OK => {
                            let b = resp.into_body().collect().await.map(|c| c.to_bytes().len());
                            match b {
                                Ok(len) => {
                                    done.fetch_add(1, Relaxed);
                                    bytes.fetch_add(len as u64, Relaxed);
                                }
                                Err(_) => {
                                    failed.fetch_add(1, Relaxed);
                                }
                            }
                        }
                        _ => {
                            failed.fetch_add(1, Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Relaxed);
    let elapsed = started.elapsed();
    for w in workers {
        let _ = w.await;
    }
    let ok = done.load(Relaxed);
    println!(
        "keel-sim throughput: {:.0} pages/s ({} ok, {} failed, {:.1} MB/s, page size {}, concurrency {}, {:.1} s, {})",
        ok as f64 / elapsed.as_secs_f64(),
        ok,
        failed.load(Relaxed),
        bytes.load(Relaxed) as f64 / elapsed.as_secs_f64() / 1e6,
        args.page_size,
        args.concurrency,
        elapsed.as_secs_f64(),
        if args.url.is_some() { "separate process" } else { "in-process server" },
    );
}
