//! Measurement 2: allocator calls per request on the client's thread, in steady state.
//!
//! Needs [`CountingAlloc`](crate::alloc_counter::CountingAlloc) as the global allocator and a
//! current-thread runtime: the client's futures, hyper's connection tasks and keel's layers
//! then all run on the measuring thread, while the loopback server runs (and allocates) on its
//! own. Connections are opened by a warm-up first, so the count is the per-request cost.
//!
//! # Example
//!
//! ```
//! use keel_bench::allocs::measure;
//! use keel_bench::clients::{AnyTarget, BareTarget};
//! use keel_bench::overhead::Contender;
//! use keel_bench::server::LoopbackServer;
//!
//! let server = LoopbackServer::start().unwrap();
//! let bare = BareTarget::new(&server.url("/ping")).unwrap();
//! let contenders = vec![Contender::new("bare", AnyTarget::Bare(bare))];
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let rows = measure(&contenders, 10).await.unwrap();
//! assert_eq!(rows[0].extra_allocs, 0.0);
//! # });
//! ```

use keel_layers::auth::{BearerLayer, Origin, RefreshOn401Layer, TokenCache};
use keel_layers::backoff::{BackoffLayer, BackoffPolicy};
use tokio::runtime::{Handle, RuntimeFlavor};
use tower::{BoxError, ServiceBuilder};

use crate::clients::{hyper_client, KeelLayersTarget, KeelTarget, StackTarget};

use crate::alloc_counter::{thread_allocations, AllocCount};
use crate::load::{warm_up, Target};
use crate::overhead::Contender;

/// Allocations per request of one contender.
#[derive(Debug, Clone)]
pub struct AllocRow {
    /// The contender's name.
    pub name: &'static str,
    /// `alloc` calls per request.
    pub allocs: f64,
    /// `realloc` calls per request.
    pub reallocs: f64,
    /// `allocs` minus the baseline's (the first contender's).
    pub extra_allocs: f64,
}

/// Sends `requests` sequential requests through each contender (after a warm-up) and counts
/// the allocator calls on this thread; each contender is measured three times, keeping the
/// lowest count (a pool resize or a timer wheel growing is not a per-request cost).
///
/// # Errors
///
/// When not on a current-thread runtime, or when a request fails.
pub async fn measure(contenders: &[Contender], requests: u64) -> Result<Vec<AllocRow>, BoxError> {
    let mut rows: Vec<AllocRow> = Vec::new();
    for c in contenders {
        let per_request = count(&c.target, requests).await?;
        rows.push(row(c.name, per_request, rows.first()));
    }
    Ok(rows)
}

/// A table row for `name`, compared with `baseline` (itself when `None`).
pub fn row(
    name: &'static str,
    (allocs, reallocs): (f64, f64),
    baseline: Option<&AllocRow>,
) -> AllocRow {
    AllocRow {
        name,
        allocs,
        reallocs,
        extra_allocs: allocs - baseline.map_or(allocs, |b| b.allocs),
    }
}

/// `(allocs, reallocs)` per request of `target`: `requests` sequential requests after a
/// warm-up, lowest count of three passes.
///
/// # Errors
///
/// When not on a current-thread runtime, or when a request fails.
pub async fn count<T: Target>(target: &T, requests: u64) -> Result<(f64, f64), BoxError> {
    if Handle::current().runtime_flavor() != RuntimeFlavor::CurrentThread {
        return Err("allocation counts need a current-thread runtime".into());
    }
    warm_up(target, 1, 50).await?;
    let mut target = target.clone();
    let mut best: Option<AllocCount> = None;
    for _ in 0..3 {
        let before = thread_allocations();
        for _ in 0..requests {
            target.call().await?;
        }
        let used = thread_allocations().since(before);
        if best.is_none_or(|b| used.allocs < b.allocs) {
            best = Some(used);
        }
    }
    let best = best.unwrap_or_default();
    let n = requests.max(1) as f64;
    Ok((best.allocs as f64 / n, best.reallocs as f64 / n))
}

/// Allocations of keel's stack built up one layer at a time on a bare client (the first row),
/// from the innermost layer out, so each row's delta is the cost of the layer it adds.
///
/// # Errors
///
/// When not on a current-thread runtime, or when a request fails.
pub async fn keel_breakdown(
    url: &str,
    tokens: TokenCache,
    requests: u64,
) -> Result<Vec<AllocRow>, BoxError> {
    let origin = Origin::parse(url)?;
    let bearer = || BearerLayer::new(tokens.clone(), origin.clone());
    let backoff = || BackoffLayer::new(BackoffPolicy::default());
    let refresh = || RefreshOn401Layer::new(tokens.clone());
    let mut rows: Vec<AllocRow> = Vec::new();
    let client = StackTarget::new(hyper_client(), url)?;
    rows.push(row(
        "client as Service",
        count(&client, requests).await?,
        None,
    ));
    let s = ServiceBuilder::new()
        .layer(bearer())
        .service(hyper_client());
    let t = StackTarget::new(s, url)?;
    rows.push(row("+ Bearer", count(&t, requests).await?, rows.first()));
    let s = ServiceBuilder::new()
        .layer(backoff())
        .layer(bearer())
        .service(hyper_client());
    let t = StackTarget::new(s, url)?;
    rows.push(row("+ Backoff", count(&t, requests).await?, rows.first()));
    let s = ServiceBuilder::new()
        .layer(refresh())
        .layer(backoff())
        .layer(bearer())
        .service(hyper_client());
    let t = StackTarget::new(s, url)?;
    rows.push(row(
        "+ RefreshOn401",
        count(&t, requests).await?,
        rows.first(),
    ));
    let t = KeelLayersTarget::keel_layers(url, tokens.clone())?;
    rows.push(row(
        "+ ReplayBody (full stack, separate retry layers)",
        count(&t, requests).await?,
        rows.first(),
    ));
    let s = ServiceBuilder::new()
        .layer(backoff().replay_on(refresh()))
        .layer(bearer())
        .service(hyper_client());
    let t = StackTarget::new(s, url)?;
    rows.push(row(
        "Bearer + Backoff with refresh_on_401 (one loop)",
        count(&t, requests).await?,
        rows.first(),
    ));
    let t = KeelTarget::keel(url, tokens.clone())?;
    rows.push(row(
        "+ ReplayBody (full stack, one retry loop)",
        count(&t, requests).await?,
        rows.first(),
    ));
    Ok(rows)
}

/// The rows as a markdown table.
pub fn table(rows: &[AllocRow]) -> String {
    let mut out = String::from(
        "| client | allocs/request | reallocs/request | allocs vs bare |\n|---|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:+.2} |\n",
            r.name, r.allocs, r.reallocs, r.extra_allocs
        ));
    }
    out
}
