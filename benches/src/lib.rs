//! keel's performance harness: the stack's cost against a bare hyper-util client and against
//! reqwest-middleware, measured side by side in one run.
//!
//! Every measurement runs its contenders in the same process, in alternating rounds, and
//! reports absolute figures together with ratios against the baseline of that same run: on a
//! small shared machine absolute numbers drift from run to run, ratios much less. Nothing here
//! asserts a timing; the binary prints tables that `BENCHMARKS.md` records.
//!
//! Run everything with `cargo run --release -p keel-bench --bin bench -- all`; see
//! `BENCHMARKS.md` at the repository root for the figures and the machine they came from.
//!
//! # Example
//!
//! ```
//! use keel_bench::load::median;
//! assert_eq!(median(&[1.0, 5.0, 2.0]), 2.0);
//! ```

pub mod alloc_counter;
pub mod allocs;
pub mod clients;
pub mod export;
pub mod fleet;
pub mod instructions;
pub mod load;
pub mod machine;
pub mod memory;
pub mod overhead;
pub mod release;
pub mod server;
pub mod sim;
pub mod single_flight;
