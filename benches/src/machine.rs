//! The machine a run measured: cores, CPU model and compiler, printed above every table.
//!
//! # Example
//!
//! ```
//! let m = keel_bench::machine::Machine::detect();
//! assert!(m.cores >= 1);
//! ```

use std::process::Command;

/// What the figures of a run depend on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// `rustc --version`.
    pub rustc: String,
}

impl Machine {
    /// Reads the machine's description; unknown parts read `unknown`.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Self { cores, cpu, rustc }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} cores, {}, {}", self.cores, self.cpu, self.rustc)
    }
}
