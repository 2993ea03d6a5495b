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

use tokio::runtime::{Handle, RuntimeFlavor};
use tower::BoxError;

use crate::alloc_counter::thread_allocations;
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
    if Handle::current().runtime_flavor() != RuntimeFlavor::CurrentThread {
        return Err("allocation counts need a current-thread runtime".into());
    }
    let mut rows: Vec<AllocRow> = Vec::new();
    for c in contenders {
        warm_up(&c.target, 1, 50).await?;
        let mut target = c.target.clone();
        let mut best: Option<(u64, u64)> = None;
        for _ in 0..3 {
            let before = thread_allocations();
            for _ in 0..requests {
                target.call().await?;
            }
            let used = thread_allocations().since(before);
            if best.is_none_or(|(a, _)| used.allocs < a) {
                best = Some((used.allocs, used.reallocs));
            }
        }
        let (allocs, reallocs) = best.unwrap_or_default();
        let allocs = allocs as f64 / requests as f64;
        let base = rows.first().map_or(allocs, |b| b.allocs);
        rows.push(AllocRow {
            name: c.name,
            allocs,
            reallocs: reallocs as f64 / requests as f64,
            extra_allocs: allocs - base,
        });
    }
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
