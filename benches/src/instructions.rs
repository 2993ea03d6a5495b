//! Instructions per request under callgrind: the overhead figure that does not move with the
//! load of a shared machine.
//!
//! Wall-clock and even CPU-time figures drift when other work shares the cores; an
//! instruction count does not. Each client runs `bench one <client> N` under
//! `valgrind --tool=callgrind` for two request counts, and the difference of the two totals,
//! divided by the difference of the counts, is the cost of one request with start-up, warm-up
//! and the server's accept cancelled out. The kernel's share of a loopback round trip is not
//! counted. Skipped, with a note, when valgrind is not installed.
//!
//! # Example
//!
//! ```no_run
//! let rows = keel_bench::instructions::measure(&["bare", "keel"], 1_000, 3_000).unwrap();
//! println!("{}", keel_bench::instructions::table(&rows));
//! ```

use std::process::{Command, Stdio};

use tower::BoxError;

/// Instructions per request of one client.
#[derive(Debug, Clone)]
pub struct InstructionRow {
    /// The client (`bare`, `keel`, `keel-layers`, `reqwest`).
    pub client: &'static str,
    /// Instructions per request, client and server threads together.
    pub per_request: f64,
}

/// Whether `valgrind` can be run.
pub fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Instructions callgrind counted for `bench one <client> <requests>`.
///
/// # Errors
///
/// When valgrind or the child fails, or its output has no `Collected` line.
pub fn collected(client: &str, requests: u64) -> Result<u64, BoxError> {
    let dir = tempfile::tempdir()?;
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.path().join("callgrind.out").display()
        ))
        .arg(std::env::current_exe()?)
        .args(["one", client, &requests.to_string()])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!("callgrind run of {client} failed: {}", out.status).into());
    }
    parse_collected(&String::from_utf8_lossy(&out.stderr))
        .ok_or_else(|| format!("no instruction count in callgrind's output for {client}").into())
}

/// The instruction count of callgrind's `==PID== Collected : N` line.
pub fn parse_collected(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split_once("Collected :"))
        .and_then(|(_, n)| n.trim().parse().ok())
}

/// Instructions per request of each client, from runs of `low` and `high` requests.
///
/// # Errors
///
/// As [`collected`]; also when `high <= low`.
pub fn measure(
    clients: &[&'static str],
    low: u64,
    high: u64,
) -> Result<Vec<InstructionRow>, BoxError> {
    if high <= low {
        return Err("the high request count must exceed the low one".into());
    }
    clients
        .iter()
        .map(|&client| {
            let a = collected(client, low)?;
            let b = collected(client, high)?;
            Ok(InstructionRow {
                client,
                per_request: b.saturating_sub(a) as f64 / (high - low) as f64,
            })
        })
        .collect()
}

/// The rows as a markdown table, with each row against the first.
pub fn table(rows: &[InstructionRow]) -> String {
    let mut out = String::from(
        "| client | instructions/request | × bare | vs bare |\n|---|---:|---:|---:|\n",
    );
    let base = rows.first().map_or(1.0, |r| r.per_request.max(1.0));
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:+.0} |\n",
            r.client,
            r.per_request,
            r.per_request / base,
            r.per_request - base
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_collected_line_of_callgrind() {
        let stderr = "==12== Callgrind, a call-graph generating cache profiler\n\
                      ==12== Events    : Ir\n==12== Collected : 38597374\n==12== \n";
        assert_eq!(parse_collected(stderr), Some(38_597_374));
        assert_eq!(parse_collected("==12== Events : Ir\n"), None);
    }

    #[test]
    fn per_request_is_relative_to_the_first_row() {
        let rows = [
            InstructionRow {
                client: "bare",
                per_request: 100.0,
            },
            InstructionRow {
                client: "keel",
                per_request: 125.0,
            },
        ];
        let t = table(&rows);
        assert!(t.contains("| keel | 125 | 1.250 | +25 |"), "{t}");
    }
}
