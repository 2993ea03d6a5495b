//! Measurement 5: peak resident memory of an export, small against large.
//!
//! The export runs as a child process, so its peak RSS is its own: the bench binary itself in
//! its hidden `export-child` mode, which does what `genesys-export`'s `main` does (a
//! multi-thread runtime running [`genesys_export::run`] on the parsed arguments). Using
//! itself rather than a `genesys-export` found on disk guarantees the child runs the library
//! built with this bench, never a stale binary. The parent samples `VmHWM` from
//! `/proc/<pid>/status` every few milliseconds until the child exits; the export also reports
//! its own `VmHWM` at the end, in its summary.
//!
//! # Example
//!
//! ```no_run
//! use keel_bench::memory::{export_command, peak_rss};
//!
//! let mut cmd = export_command(&["--sim", "--sim-conversations", "1000"]).unwrap();
//! let run = peak_rss(&mut cmd).unwrap();
//! assert!(run.status.success());
//! println!("{} MiB", run.peak_polled as f64 / 1048576.0);
//! ```

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// NOTE: the program's own parser, included rather than made public API for this harness.
#[path = "../../crates/genesys-export/src/vm_hwm.rs"]
mod vm_hwm;
use tower::BoxError;
use vm_hwm::parse_vm_hwm;

/// How the child was run and what it used.
#[derive(Debug)]
pub struct ChildRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// Highest `VmHWM` the parent read, bytes.
    pub peak_polled: u64,
    /// The `peak memory: X MiB` of the export's own summary, bytes, when it printed one.
    pub peak_reported: Option<u64>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Its stderr.
    pub stderr: String,
}

/// A command running `genesys-export` with `args`, as this binary's `export-child` mode.
///
/// # Errors
///
/// When the running executable cannot be found.
pub fn export_command(args: &[&str]) -> Result<Command, BoxError> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("export-child").arg("--").args(args);
    Ok(cmd)
}

/// Runs `cmd` to completion, sampling its `VmHWM` every 2 ms.
///
/// # Errors
///
/// When the child cannot be spawned or waited for.
pub fn peak_rss(cmd: &mut Command) -> Result<ChildRun, BoxError> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            peak = peak.max(parse_vm_hwm(&text).unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let stderr = reader.join().unwrap_or_default();
    let peak_reported = reported_peak(&stderr);
    Ok(ChildRun {
        status,
        peak_polled: peak,
        peak_reported,
        elapsed,
        stderr,
    })
}

/// The `peak memory: X MiB` line of an export's summary, in bytes.
pub fn reported_peak(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("peak memory:"))
        .and_then(|v| v.trim().trim_end_matches("MiB").trim().parse::<f64>().ok())
        .map(|mib| (mib * 1024.0 * 1024.0) as u64)
}

/// One export size and its peak memory.
#[derive(Debug, Clone)]
pub struct MemoryRow {
    /// Conversations exported.
    pub conversations: u64,
    /// Wall time of the child.
    pub elapsed: Duration,
    /// Peak RSS sampled by the parent, bytes.
    pub peak_polled: u64,
    /// Peak RSS the export reported, bytes.
    pub peak_reported: Option<u64>,
}

/// Exports `conversations` (faults off, no page latency, to stdout, which is `/dev/null`) in
/// a child process
/// and returns its peak memory.
///
/// # Errors
///
/// When the child cannot run or the export fails.
pub fn measure(conversations: u64) -> Result<MemoryRow, BoxError> {
    let n = conversations.to_string();
    let mut cmd = export_command(&[
        "--sim",
        "--sim-no-faults",
        "--sim-conversations",
        &n,
        "--sim-page-latency",
        "0ms",
        "--progress",
        "quiet",
    ])?;
    let run = peak_rss(&mut cmd)?;
    if !run.status.success() {
        return Err(format!(
            "export of {n} failed ({}): {}",
            run.status,
            run.stderr.trim()
        )
        .into());
    }
    if !run.stderr.contains(&format!("{n} conversations")) {
        return Err(format!(
            "export of {n} did not report {n} conversations: {}",
            run.stderr.trim()
        )
        .into());
    }
    Ok(MemoryRow {
        conversations,
        elapsed: run.elapsed,
        peak_polled: run.peak_polled,
        peak_reported: run.peak_reported,
    })
}

/// The rows as a markdown table, with each row's peak against the first row's.
pub fn table(rows: &[MemoryRow]) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut out = String::from(
        "| conversations | wall time | peak RSS (sampled) | peak RSS (export's summary) | × first |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    let base = rows.first().map_or(1, |r| r.peak_polled.max(1));
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.2} s | {:.1} MiB | {} | {:.2} |\n",
            r.conversations,
            r.elapsed.as_secs_f64(),
            mib(r.peak_polled),
            r.peak_reported
                .map_or_else(|| "–".to_owned(), |b| format!("{:.1} MiB", mib(b))),
            r.peak_polled as f64 / base as f64
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_memory_of_the_export_summary() {
        let stderr = "genesys-export: 10 conversations, 1 pages to <stdout> in 0.01 s\n  \
                      token fetches: 1, 401 replays: 0, 429 waits: 0, other retries: 0\n  \
                      peak memory: 14.5 MiB\n";
        assert_eq!(reported_peak(stderr), Some((14.5 * 1024.0 * 1024.0) as u64));
        assert_eq!(reported_peak("no summary"), None);
    }

    #[test]
    fn peak_rss_samples_the_childs_vmhwm_until_it_exits() {
        // dd touches a 64 MiB buffer; whatever the sampling catches of it, a running process
        // has more than 1 MiB resident, and a wrong path or parse would read nothing.
        let mut cmd = Command::new("dd");
        cmd.args(["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
        let run = peak_rss(&mut cmd).unwrap();
        assert!(run.status.success());
        assert!(
            run.peak_polled > 1024 * 1024,
            "sampled {} bytes",
            run.peak_polled
        );
        assert!(
            run.stderr.contains("records in"),
            "dd's stderr is captured: {}",
            run.stderr
        );
    }
}
