//! Measurement 4: export throughput with and without prefetch, against keel-sim with a
//! per-page latency.
//!
//! Each run is `genesys-export --sim` (the library function the binary calls,
//! [`genesys_export::run`], with the binary's arguments) writing to a scratch file in memory: the
//! embedded simulator holds enough conversations for about 30 pages of 100 and adds a fixed
//! latency to every page. Prefetch 1 fetches page by page; the default keeps several pages in
//! flight. The ratio of their pages/s is what prefetch buys; the 429 counts show it does not
//! buy it by tripping the rate limit.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use keel_bench::export::export_once;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let summary = export_once(Duration::from_millis(50), 1, 300, false).await.unwrap();
//! assert_eq!(summary.conversations, 300);
//! # });
//! ```

use std::path::Path;
use std::time::Duration;

use clap::Parser as _;
use genesys_export::{run, Args, Summary};
use tempfile::NamedTempFile;
use tower::BoxError;

use crate::load::median;

/// The `genesys-export` arguments of one simulated export to `out`.
pub fn export_args(
    out: &Path,
    latency: Duration,
    prefetch: u32,
    conversations: u64,
    faults: bool,
) -> Vec<String> {
    let mut args: Vec<String> = ["genesys-export", "--sim", "--progress", "quiet"]
        .map(String::from)
        .to_vec();
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "--sim-conversations".into(),
        conversations.to_string(),
        "--sim-page-latency".into(),
        format!("{}ms", latency.as_millis()),
        "--prefetch".into(),
        prefetch.to_string(),
    ]);
    if !faults {
        args.push("--sim-no-faults".into());
    }
    args
}

/// A scratch output file, in memory (`/dev/shm`) where there is one, so that writing and the
/// export's final fsync cost no disk time. (`/dev/null` does not do: fsync refuses it.)
///
/// # Errors
///
/// When no temporary file can be created.
pub fn scratch_output() -> Result<NamedTempFile, BoxError> {
    let shm = Path::new("/dev/shm");
    let file = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("keel-bench-export")
            .tempfile_in(shm)
    } else {
        tempfile::Builder::new()
            .prefix("keel-bench-export")
            .tempfile()
    };
    Ok(file?)
}

/// Runs one export in this process and returns its summary.
///
/// # Errors
///
/// When the arguments do not parse or the export fails.
pub async fn export_once(
    latency: Duration,
    prefetch: u32,
    conversations: u64,
    faults: bool,
) -> Result<Summary, BoxError> {
    let out = scratch_output()?;
    let args = Args::try_parse_from(export_args(
        out.path(),
        latency,
        prefetch,
        conversations,
        faults,
    ))?;
    Ok(run(args).await?)
}

/// One line of the export table: one page latency, page by page against prefetching.
#[derive(Debug, Clone)]
pub struct ExportRow {
    /// Latency the simulator adds to every page.
    pub latency: Duration,
    /// Whether the simulator's faults (revocations, 429s, 503s, a reset) were on.
    pub faults: bool,
    /// Pages of one export.
    pub pages: u64,
    /// The prefetch of the second column.
    pub prefetch: u32,
    /// Median pages/s with prefetch 1.
    pub serial_pps: f64,
    /// Median pages/s with `prefetch`.
    pub prefetch_pps: f64,
    /// 429 waits with prefetch 1 (summed over runs).
    pub serial_429: u64,
    /// 429 waits with `prefetch` (summed over runs).
    pub prefetch_429: u64,
    /// Runs per setting.
    pub runs: usize,
}

impl ExportRow {
    /// Prefetch pages/s over page-by-page pages/s.
    pub fn ratio(&self) -> f64 {
        self.prefetch_pps / self.serial_pps
    }
}

fn pages_per_sec(s: &Summary) -> f64 {
    s.pages as f64 / s.elapsed.as_secs_f64()
}

/// Exports `conversations` at `latency` with prefetch 1 and `prefetch`, alternating, `runs`
/// times each.
///
/// # Errors
///
/// When an export fails.
pub async fn compare(
    latency: Duration,
    prefetch: u32,
    conversations: u64,
    faults: bool,
    runs: usize,
) -> Result<ExportRow, BoxError> {
    let (mut serial, mut ahead) = (Vec::new(), Vec::new());
    let (mut serial_429, mut prefetch_429, mut pages) = (0, 0, 0);
    for r in 0..runs {
        for first in [r % 2 == 0, r % 2 != 0] {
            let p = if first { 1 } else { prefetch };
            let s = export_once(latency, p, conversations, faults).await?;
            if s.conversations != conversations {
                return Err(format!(
                    "export wrote {} of {conversations} conversations",
                    s.conversations
                )
                .into());
            }
            pages = s.pages;
            if p == 1 {
                serial.push(pages_per_sec(&s));
                serial_429 += s.waits_429;
            } else {
                ahead.push(pages_per_sec(&s));
                prefetch_429 += s.waits_429;
            }
        }
    }
    Ok(ExportRow {
        latency,
        faults,
        pages,
        prefetch,
        serial_pps: median(&serial),
        prefetch_pps: median(&ahead),
        serial_429,
        prefetch_429,
        runs,
    })
}

/// The rows as a markdown table.
pub fn table(rows: &[ExportRow]) -> String {
    let mut out = String::from(
        "| page latency | sim faults | pages | runs | prefetch 1 pages/s | prefetch N pages/s | N | × prefetch 1 | 429 waits (1 / N) |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} ms | {} | {} | {} | {:.1} | {:.1} | {} | {:.2} | {} / {} |\n",
            r.latency.as_millis(),
            if r.faults { "on" } else { "off" },
            r.pages,
            r.runs,
            r.serial_pps,
            r.prefetch_pps,
            r.prefetch,
            r.ratio(),
            r.serial_429,
            r.prefetch_429
        ));
    }
    out
}
